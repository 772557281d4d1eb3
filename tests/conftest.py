"""Fixtures: a control plane on SQLite and on PostgreSQL, and API clients acting as users."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select, text

from launchbay.control_plane import ControlPlane
from launchbay.http.app import create_app
from launchbay.settings import Settings
from launchbay.store.models import Base

POSTGRES_URL = os.environ.get("LAUNCHBAY_TEST_POSTGRES_URL")
ADMIN_EMAIL, ADMIN_PASSWORD = "admin@example.com", "admin-password-1"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """A fresh, empty database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'launchbay.db'}"
        return
    if not POSTGRES_URL:
        if os.environ.get("CI"):
            pytest.fail("LAUNCHBAY_TEST_POSTGRES_URL is not set; run the suite with `make test`")
        pytest.skip("no PostgreSQL configured; `make test` starts one")
    name = f"lb_test_{uuid.uuid4().hex[:12]}"
    server = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield f"{POSTGRES_URL.rsplit('/', 1)[0]}/{name}"
    with server.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    server.dispose()


@pytest.fixture
def settings(tmp_path: Any, database_url: str) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database_url,
                    login_max_failures=3, login_lockout_seconds=30)


@pytest.fixture
def cp(settings: Settings) -> Iterator[ControlPlane]:
    control_plane = ControlPlane(settings)
    yield control_plane
    control_plane.close()


@pytest.fixture
def client(cp: ControlPlane) -> TestClient:
    return TestClient(create_app(control_plane=cp))


class Api:
    """A TestClient acting with one bearer token (or none)."""

    def __init__(self, client: TestClient, token: str | None = None):
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


def login(client: TestClient, email: str, password: str) -> Api:
    response = client.post("/api/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    client.cookies.clear()  # these clients authenticate with their bearer token only
    return Api(client, response.json()["token"])


@pytest.fixture
def admin(client: TestClient) -> Api:
    """The first admin, owner of organization `Default`, logged in."""
    created = client.post("/api/bootstrap/auth/first-admin",
                          json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert created.status_code == 201, created.text
    api = login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    api.org_id = created.json()["organizationId"]  # type: ignore[attr-defined]
    api.user_id = created.json()["userId"]  # type: ignore[attr-defined]
    return api


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


def snapshot(cp: ControlPlane) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, minus activity stamps that reads may refresh."""
    skip = {"last_active_at", "last_used_at"}
    rows = {}
    with cp.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            cols = [c for c in table.columns if c.name not in skip]
            rows[table.name] = [tuple(r) for r in conn.execute(
                select(*cols).order_by(*table.primary_key.columns))]
    return rows


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(cp: ControlPlane) -> Iterator[str]:
    """The control plane served by uvicorn on a loopback port, for clients that need real HTTP."""
    import threading
    import time

    import uvicorn

    port = free_port()
    config = uvicorn.Config(create_app(control_plane=cp), host="127.0.0.1", port=port,
                            log_level="warning")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    uv.should_exit = True
    thread.join(10)
