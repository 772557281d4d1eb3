"""Previews of pull requests end to end: a repository served on loopback (`git daemon`), pull
request events sent exactly as GitHub sends them to a `launchbay serve` of its own, the
preview serving the pull request's head beside production; updated with it; gone with its
containers, route and environment when closed (even when the control plane is killed during
the cleanup) and when its time is over."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from typing import Any

import httpx

from launchbay import webhooks

import images
from docker_support import containers, eventually, remove_runtime, serve, via_url, wait
from git_support import Repository
from support import ADMIN_EMAIL, ADMIN_PASSWORD, Api, free_port, login


def _event(api: Api, repo: Repository, secret: str, action: str, number: int, sha: str,
           delivery: str) -> dict[str, Any]:
    """A pull request event as GitHub sends it, and what came of it once dispatched."""
    data = json.dumps({"action": action, "number": number, "pull_request": {
        "number": number, "head": {"ref": f"pr-{number}", "sha": sha,
                                   "repo": {"clone_url": repo.url}},
        "base": {"ref": "main", "repo": {"clone_url": repo.url}}},
        "repository": {"full_name": "t/app", "clone_url": repo.url}}).encode()
    sent = api.client.post("/api/integrations/github/source-events", content=data, headers={
        "Content-Type": "application/json", "X-GitHub-Event": "pull_request",
        "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": webhooks.sign(data, secret)})
    assert sent.status_code == 202, sent.text
    (event_id,) = sent.json()["sourceEventIds"]
    return {"id": event_id}


def _settled(api: Api, event_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (shown := api.get(f"/source-events/{event_id}"))["status"] == "accepted":
        assert time.monotonic() < deadline, shown
        time.sleep(0.2)
    return shown


def _preview(api: Api, resource: str, number: int) -> dict[str, Any]:
    (found,) = [p for p in api.get("/preview-environments", params={"resourceId": resource})[
        "items"] if p["source"]["pullRequestNumber"] == number]
    return found


def page(url: str) -> str:
    """What `url` (a generated host of the edge) serves, asked of Caddy on loopback."""
    def served() -> httpx.Response | None:
        answer = via_url(url, httpx.URL(url).port or 80)
        return answer if answer.status_code == 200 else None

    return eventually(served).text


def _gone(resource_id: str, timeout: float = 60) -> None:
    """The copy's containers are removed (by the engine, after the cleanup)."""
    deadline = time.monotonic() + timeout
    while containers(**{"launchbay.resource": resource_id}):
        assert time.monotonic() < deadline, "the preview's containers stayed"
        time.sleep(0.2)


def test_a_pull_request_previews_updates_and_cleans_up(tmp_path, repository: Repository):
    images.ensure("lbtest/hello:v1")
    dockerfile = "FROM lbtest/hello:v1\nCOPY site /www\n"
    repository.push({"Dockerfile": dockerfile, "site/index.html": "main\n"})
    port, edge = free_port(), free_port()
    settings = {"LAUNCHBAY_INSTANCE_REAP_SECONDS": "1", "LAUNCHBAY_EDGE_ENABLED": "true",
                "LAUNCHBAY_EDGE_BIND": "127.0.0.1", "LAUNCHBAY_EDGE_HTTP_PORT": str(edge),
                "LAUNCHBAY_EDGE_ADMIN": f"127.0.0.1:{free_port()}",
                "LAUNCHBAY_EDGE_DRAIN_SECONDS": "1"}
    proc = serve(tmp_path, port, **settings)
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    server_id = None
    try:
        http.post("/api/bootstrap/auth/first-admin",
                  json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
        api = login(http, ADMIN_EMAIL, ADMIN_PASSWORD)
        server_id = api.get("/servers")["items"][0]["id"]
        project = api.post("/projects", {"name": "shop"})["id"]
        env = api.post("/environments", {"projectId": project, "name": "production"})["id"]
        resource = api.post("/resources", {
            "projectId": project, "environmentId": env, "name": "web",
            "source": {"kind": "git", "locator": repository.url, "gitRef": "main"},
            "networkProfile": {"internalPort": 8080}})["id"]
        production = wait(api, api.post("/deployments", {
            "projectId": project, "environmentId": env, "resourceId": resource})["id"],
            timeout=120)
        assert production["status"] == "succeeded" and page(production["url"]) == "main\n"
        secret = api.post(f"/resources/{resource}/auto-deploy", {
            "mode": "enable", "policy": {"refs": ["main"]}})["webhookSecret"]

        # Opened: the pull request's head serves at the preview's own URL; production as it was.
        repository.git("checkout", "-q", "-b", "pr-1")
        _, head = repository.push({"site/index.html": "pull request one\n"}, branch="pr-1")
        opened = _settled(api, _event(api, repository, secret, "opened", 1, head, "p-1")["id"])
        assert opened["status"] == "dispatched", opened
        d = wait(api, opened["createdDeploymentIds"][0], timeout=120)
        assert d["status"] == "succeeded", (d["errorCode"], d["errorMessage"])
        preview = _preview(api, resource, 1)
        assert preview["status"] == "active" and preview["url"] == d["url"] != production["url"]
        assert preview["url"].startswith("http://web-pr-1-shop.")  # its own generated host
        assert page(preview["url"]) == "pull request one\n"
        assert page(production["url"]) == "main\n"
        copy = preview["previewResourceId"]

        # Synchronize: the new head serves in the same preview.
        _, head = repository.push({"site/index.html": "pull request two\n"}, branch="pr-1")
        moved = _settled(api, _event(api, repository, secret, "synchronize", 1, head, "p-2")["id"])
        d = wait(api, moved["createdDeploymentIds"][0], timeout=120)
        assert d["status"] == "succeeded" and d["resourceId"] == copy
        updated = _preview(api, resource, 1)
        assert updated["environmentId"] == preview["environmentId"]
        assert eventually(lambda: page(updated["url"]) == "pull request two\n")

        # Closed, and the control plane killed at once: after the restart, the preview's
        # containers and environment are gone, production serves.
        _event(api, repository, secret, "closed", 1, head, "p-3")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc = serve(tmp_path, port, **settings)
        deadline = time.monotonic() + 60
        while _preview(api, resource, 1)["status"] != "cleaned":
            assert time.monotonic() < deadline, _preview(api, resource, 1)
            time.sleep(0.2)
        _gone(copy)
        assert api.request("GET", f"/environments/{preview['environmentId']}").status_code == 404
        assert eventually(lambda: via_url(preview["url"], edge).status_code == 404)  # no route
        assert page(production["url"]) == "main\n"

        # A second pull request whose time is over: the periodic job cleans it up.
        repository.git("checkout", "-q", "main")
        repository.git("checkout", "-q", "-b", "pr-2")
        _, second = repository.push({"site/index.html": "pull request three\n"}, branch="pr-2")
        opened = _settled(api, _event(api, repository, secret, "opened", 2, second, "p-4")["id"])
        assert wait(api, opened["createdDeploymentIds"][0], timeout=120)["status"] == "succeeded"
        expiring = _preview(api, resource, 2)
        with sqlite3.connect(tmp_path / "data" / "launchbay.db") as db:
            db.execute("UPDATE preview_environments SET expires_at = '2000-01-01 00:00:00' "
                       "WHERE id = ?", (expiring["previewEnvironmentId"],))
        deadline = time.monotonic() + 30
        while (shown := _preview(api, resource, 2))["status"] != "cleaned":
            assert time.monotonic() < deadline, shown
            time.sleep(0.2)
        assert shown["cleanupReason"] == "expired"
        _gone(expiring["previewResourceId"])
        mine = containers(**{"launchbay.server": server_id})
        assert [c.labels["launchbay.resource"] for c in mine] == [resource]
    finally:
        proc.terminate()  # its Caddy goes with it (LAUNCHBAY_EDGE_STOP_ON_EXIT)
        proc.wait(20)
        if server_id:
            remove_runtime(server_id)
