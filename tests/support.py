"""Helpers shared by the tests: API clients acting as users, and a view of the whole store."""

from __future__ import annotations

import os
import socket
import subprocess
from typing import Any

from sqlalchemy import select

from launchbay.control_plane import ControlPlane
from launchbay.store.models import Base

ADMIN_EMAIL, ADMIN_PASSWORD = "admin@example.com", "admin-password-1"


class Api:
    """A client (TestClient or httpx.Client) acting with one bearer token (or none)."""

    def __init__(self, client: Any, token: str | None = None):
        self.client, self.token = client, token

    def request(self, method: str, path: str, json: Any = None, **kw: Any) -> Any:
        headers = kw.pop("headers", {})
        if self.token:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        return self.client.request(method, f"/api{path}", json=json, headers=headers, **kw)

    def ok(self, method: str, path: str, json: Any = None, **kw: Any) -> Any:
        """The JSON of a 2xx answer; anything else fails the test with the body."""
        response = self.request(method, path, json, **kw)
        assert response.status_code < 300, (method, path, response.status_code, response.text)
        return response.json()

    def get(self, path: str, **kw: Any) -> Any:
        return self.ok("GET", path, **kw)

    def post(self, path: str, json: Any = None, **kw: Any) -> Any:
        return self.ok("POST", path, json or {}, **kw)


def login(client: Any, email: str, password: str) -> Api:
    response = client.post("/api/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    client.cookies.clear()  # these clients authenticate with their bearer token only
    return Api(client, response.json()["token"])


def add_member(inviter: Api, org_id: str, email: str, role: str) -> Api:
    """A new user who joined `org_id` through an invitation, logged in."""
    invitation = inviter.post(f"/organizations/{org_id}/invitations",
                              {"email": email, "role": role})
    accepted = inviter.client.post("/api/invitations/accept", json={
        "token": invitation["acceptToken"], "password": "member-password-1"})
    assert accepted.status_code == 200, accepted.text
    api = login(inviter.client, email, "member-password-1")
    api.member_id = accepted.json()["memberId"]  # type: ignore[attr-defined]
    api.user_id = accepted.json()["userId"]  # type: ignore[attr-defined]
    return api


def make_app(api: Api, image: str, *, name: str = "web", port: int | None = 8080,
             health: dict[str, Any] | None = None) -> dict[str, str]:
    """A project, an environment and a resource of `image`, ready to deploy."""
    project = api.post("/projects", {"name": f"{name}-project"})["id"]
    env = api.post("/environments", {"projectId": project, "name": "production",
                                     "kind": "production"})["id"]
    name_, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "")
    body: dict[str, Any] = {"projectId": project, "environmentId": env, "name": name,
                            "source": {"kind": "docker-image", "imageName": name_,
                                       "imageTag": tag or "latest"},
                            "networkProfile": {"internalPort": port} if port else {}}
    if health:
        body["healthPolicy"] = health
    resource = api.post("/resources", body)["id"]
    return {"project": project, "env": env, "resource": resource}


def snapshot(cp: ControlPlane) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, minus activity stamps that reads may refresh."""
    skip = {"last_active_at", "last_used_at", "last_used_address"}
    rows = {}
    with cp.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            cols = [c for c in table.columns if c.name not in skip]
            rows[table.name] = [tuple(r) for r in conn.execute(
                select(*cols).order_by(*table.primary_key.columns))]
    return rows


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """A helper process of a test (a mock DNS, an ACME server), its output discarded."""
    return subprocess.Popen(args, env={**os.environ, **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_until_up(url: str, proc: subprocess.Popen[bytes], within: float = 30) -> None:
    """Until a GET of `url` answers 200 from the helper process `proc` (which must not exit)."""
    import time

    import httpx

    deadline = time.monotonic() + within
    while True:
        try:
            if httpx.get(url).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert proc.poll() is None, f"{proc.args} exited"
        assert time.monotonic() < deadline, f"{url} did not answer"
        time.sleep(0.1)
