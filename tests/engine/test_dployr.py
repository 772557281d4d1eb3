"""The Dployr face against the real Docker engine: a Python app from a local git repository
with runtime, build and run commands and a port; an image; env changes; SSE logs."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from launchbay.settings import Settings

import images
from docker_support import body, edge_settings, eventually
from support import free_port
from test_builds import APP, repo

EDGE_HTTP = free_port()


@pytest.fixture
def settings(tmp_path, database_url, mock_dns) -> Settings:
    return edge_settings(tmp_path, database_url, mock_dns, EDGE_HTTP,
                         build_base_images={"python@3.11": images.ensure_python_base()})


def via_edge(host: str) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{EDGE_HTTP}/", headers={"Host": host}, timeout=5)




def face(api, method: str, path: str, json=None, **kw) -> httpx.Response:
    return api.client.request(method, f"/compat/dployr{path}", json=json,
                              headers={"Authorization": f"Bearer {api.token}"}, **kw)


def completed(api, name: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        d = next(d for d in face(api, "GET", "/deployments").json()["deployments"]
                 if d["config"]["name"] == name)
        if d["status"] in ("completed", "failed"):
            return d
        assert time.monotonic() < deadline, d
        time.sleep(0.2)


def test_python_app_from_git_with_commands_then_env_changes(api, tmp_path):
    repo(tmp_path / "py", {"requirements.txt": "\n", "server.py": APP.replace(
        '"%s\\n" % GREETING', '"%s %s\\n" % (GREETING, os.environ.get("MODE"))')})
    r = face(api, "POST", "/deployments", {
        "name": "pyapp", "user_id": "me", "source": "remote",
        "runtime": {"type": "python", "version": "3.11"},
        "remote": {"url": str(tmp_path / "py"), "branch": "main"},
        "build_cmd": "python -m py_compile server.py", "run_cmd": "python server.py",
        "port": 8000, "env_vars": {"MODE": "first"}, "domain": "pyapp.localhost"})
    assert r.status_code == 201, r.text
    d = completed(api, "pyapp")
    assert d["status"] == "completed", d
    assert d["config"]["runtime"] == {"type": "python", "version": "3.11"}
    assert d["config"]["remote"]["commit_hash"] and d["config"]["domain"] == "pyapp.localhost"
    service = face(api, "GET", "/services").json()["services"][0]
    assert service["status"] == "running" and service["runtime"] == "python"
    assert service["commit_hash"] == d["config"]["remote"]["commit_hash"]
    current = api.get("/deployments", params={"resourceId": service["id"]})["items"][0]
    assert body(current["directUrl"]) == "hello from python first\n"
    # ...and through its domain.
    assert eventually(lambda: via_edge("pyapp.localhost").text == "hello from python first\n")

    # The log stream of the deployment ends with `event: done`.
    with httpx.stream("GET", f"{api.client.base_url}/compat/dployr/logs/stream",
                      params={"token": api.token, "id": d["id"]}, timeout=30) as stream:
        assert stream.status_code == 200
        text = "".join(stream.iter_text())
    assert "data: built " in text and text.endswith("event: done\ndata: stream completed\n\n")

    patched = face(api, "PATCH", f"/services/{service['id']}", {"env_vars": {"MODE": "second"}})
    assert patched.status_code == 200
    deadline = time.monotonic() + 180
    while face(api, "GET", "/deployments").json()["deployments"][0]["status"] != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    current = api.get("/deployments", params={"resourceId": service["id"]})["items"][0]
    assert body(current["directUrl"]) == "hello from python second\n"


def test_an_image(api):
    r = face(api, "POST", "/deployments", {
        "name": "img", "user_id": "me", "source": "image", "runtime": {"type": "docker"},
        "image": "lbtest/hello:v2", "port": 8080})
    assert r.status_code == 201, r.text
    assert completed(api, "img", timeout=60)["status"] == "completed"
    service = face(api, "GET", "/services").json()["services"][0]
    assert service["image"] == "lbtest/hello:v2" and service["status"] == "running"
    current = api.get("/deployments", params={"resourceId": service["id"]})["items"][0]
    assert body(current["directUrl"]) == "hello v2\n"


def test_proxy_routes_added_by_hand(api, cp):
    """A route to a raw upstream is served by Caddy, and gone once removed."""
    r = face(api, "POST", "/deployments", {
        "name": "upstream", "user_id": "me", "source": "image", "runtime": {"type": "docker"},
        "image": "lbtest/hello:v1", "port": 8080})
    assert r.status_code == 201 and completed(api, "upstream", timeout=60)["status"] == "completed"
    service = face(api, "GET", "/services").json()["services"][0]
    port = api.get("/deployments", params={"resourceId": service["id"]})["items"][0]["hostPort"]
    before = face(api, "GET", "/proxy/status").json()
    assert before == {"status": "running"}

    added = face(api, "POST", "/proxy/add", {"domain": "by-hand.localhost",
                                             "upstream": f"http://127.0.0.1:{port}"})
    assert added.status_code == 201 and added.json() == {"message": "Route added successfully"}
    assert eventually(lambda: via_edge("by-hand.localhost").text == "hello v1\n")
    routes = cp.edge.caddy.config()["apps"]["http"]["servers"]["launchbay"]["routes"]
    assert any(route["match"][0]["host"] == ["by-hand.localhost"] and
               route["handle"][0]["upstreams"] == [{"dial": f"127.0.0.1:{port}"}]
               for route in routes)
    assert api.get("/proxy/routes")["items"][0]["upstream"] == f"http://127.0.0.1:{port}"
    status = face(api, "GET", "/system/status").json()
    assert status["proxy"] == {"status": "running", "routes": 2}  # generated host + by hand
    assert status["services"] == {"total": 1, "running": 1, "stopped": 0}
    assert status["status"] == "healthy"

    taken = face(api, "POST", "/proxy/add", {"domain": "by-hand.localhost",
                                             "upstream": "http://127.0.0.1:9"})
    assert taken.status_code == 409
    removed = face(api, "DELETE", "/proxy/remove", params={"domain": "by-hand.localhost"})
    assert removed.status_code == 200, removed.text
    assert removed.json() == {"message": "Route removed successfully"}
    assert eventually(lambda: via_edge("by-hand.localhost").status_code == 404)
    again = face(api, "DELETE", "/proxy/remove", params={"domain": "by-hand.localhost"})
    assert again.status_code == 404 and again.json()["code"] == "resource.not_found"


def test_doctor_restarts_a_stopped_caddy(admin, cp):
    """No engine runs in this control plane (no watcher either): only the doctor starts Caddy."""
    def doctor() -> dict:
        r = admin.client.post("/compat/dployr/system/doctor",
                              headers={"Authorization": f"Bearer {admin.token}"})
        assert r.status_code == 200, r.text
        return r.json()

    first = doctor()
    assert first["status"] == "ok", first
    assert "edge proxy: Caddy was not running: started it" in first["output"]
    assert "docker: engine reachable" in first["output"]
    assert "database: reachable, migrations current" in first["output"]
    os.kill(cp.edge.caddy.pid(), signal.SIGKILL)
    eventually(lambda: not cp.edge.caddy.alive())
    again = doctor()
    assert "edge proxy: Caddy was not running: started it" in again["output"], again
    assert cp.edge.caddy.alive()
    assert "Caddy running with its routes" in doctor()["output"]
    events = admin.get("/audit-events", params={"eventType": "system.doctor-ran"})["items"]
    assert len(events) == 3
