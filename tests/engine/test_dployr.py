"""The Dployr face against the real Docker engine: a Python app from a local git repository
with runtime, build and run commands and a port; an image; env changes; SSE logs."""

from __future__ import annotations

import time

import httpx
import pytest

from launchbay.settings import Settings

import images
from docker_support import body
from test_builds import APP, repo


@pytest.fixture
def settings(tmp_path, database_url) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database_url, workers=2,
                    worker_poll_seconds=0.1, work_lease_seconds=10, reconcile_seconds=2,
                    edge_enabled=False,
                    build_base_images={"python@3.11": images.ensure_python_base()})


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
        "port": 8000, "env_vars": {"MODE": "first"}})
    assert r.status_code == 201, r.text
    d = completed(api, "pyapp")
    assert d["status"] == "completed", d
    assert d["config"]["runtime"] == {"type": "python", "version": "3.11"}
    assert d["config"]["remote"]["commit_hash"]
    service = face(api, "GET", "/services").json()["services"][0]
    assert service["status"] == "running" and service["runtime"] == "python"
    assert service["commit_hash"] == d["config"]["remote"]["commit_hash"]
    current = api.get("/deployments", params={"resourceId": service["id"]})["items"][0]
    assert body(current["url"]) == "hello from python first\n"

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
    assert body(current["url"]) == "hello from python second\n"


def test_an_image(api):
    r = face(api, "POST", "/deployments", {
        "name": "img", "user_id": "me", "source": "image", "runtime": {"type": "docker"},
        "image": "lbtest/hello:v2", "port": 8080})
    assert r.status_code == 201, r.text
    assert completed(api, "img", timeout=60)["status"] == "completed"
    service = face(api, "GET", "/services").json()["services"][0]
    assert service["image"] == "lbtest/hello:v2" and service["status"] == "running"
    current = api.get("/deployments", params={"resourceId": service["id"]})["items"][0]
    assert body(current["url"]) == "hello v2\n"
