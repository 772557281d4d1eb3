"""The Shipyard face against the real Docker engine and Caddy: a raw image to `Ready` at its
URL, configuration changes the app sees, logs, metrics, restart, delete."""

from __future__ import annotations

import time

import httpx
import pytest

from launchbay.settings import Settings

from docker_support import edge_settings
from support import free_port

EDGE_HTTP = free_port()


@pytest.fixture
def settings(tmp_path, database_url, mock_dns) -> Settings:
    return edge_settings(tmp_path, database_url, mock_dns, EDGE_HTTP,
                         default_plan="business")


def face(api, method: str, path: str, json=None, **kw) -> httpx.Response:
    return api.client.request(method, f"/compat/shipyard/api/deployments{path}", json=json,
                              headers={"Authorization": f"Bearer {api.token}"}, **kw)


def until(check, within: float = 60):
    deadline = time.monotonic() + within
    while True:
        try:
            if result := check():
                return result
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.2)


def via_url(url: str) -> httpx.Response:
    """The ingress URL, sent to Caddy on loopback (the name resolves nowhere else)."""
    parts = httpx.URL(url)
    return httpx.get(f"http://127.0.0.1:{EDGE_HTTP}{parts.raw_path.decode()}",
                     headers={"Host": parts.host}, timeout=5)


def test_raw_image_ready_config_logs_metrics_restart_delete(api):
    r = face(api, "POST", "/deploy-image", {"image": "lbtest/busy:v1", "name": "busy-app",
                                           "envVars": {"MODE": "first"}})
    assert r.status_code == 201, r.text
    ready = until(lambda: (s := face(api, "GET", "/status", params={"name": "busy-app"}).json())
                  ["status"] == "Ready" and s)
    assert ready["deploymentReady"] is True
    (ingress,) = ready["ingresses"]
    assert ingress["host"] == "busy-app.localhost"
    assert ingress["url"] == f"http://busy-app.localhost:{EDGE_HTTP}"
    assert until(lambda: "MODE=first" in via_url(ingress["url"]).text)

    r = face(api, "PUT", "/config", {"deployment_name": "busy-app",
                                     "configData": {"MODE": "second"}})
    assert r.status_code == 200
    assert until(lambda: "MODE=second" in via_url(ingress["url"]).text)
    assert "MODE=first" not in via_url(ingress["url"]).text

    logs = until(lambda: (text := face(api, "GET", "/busy-app/logs",
                                       params={"tail": 2}).json()["logs"]).count("tick") == 2
                 and text)
    assert logs == "tick\ntick\n"
    metrics = face(api, "GET", "/busy-app/metrics").json()
    assert metrics["cpuUsage"].endswith("m") and int(metrics["cpuUsage"][:-1]) > 10
    assert metrics["memoryUsage"].endswith("Mi")
    assert metrics["timestamp"].endswith("Z")

    assert face(api, "POST", "/restart", {"deployment_name": "busy-app"}).status_code == 200
    assert until(lambda: "MODE=second" in via_url(ingress["url"]).text)

    r = face(api, "POST", "/delete", {"deployment_name": "busy-app"})
    assert r.status_code == 200
    assert via_url(ingress["url"]).status_code in (404, 200)  # the route goes at once...
    until(lambda: via_url(ingress["url"]).status_code == 404, within=15)
    until(lambda: face(api, "GET", "/status", params={"name": "busy-app"}).status_code == 404)
    assert face(api, "GET", "").json() == []
