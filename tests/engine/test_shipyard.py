"""The Shipyard face against the real Docker engine and Caddy: a raw image and a template to
`Ready` at their URLs, configuration changes the app sees, logs (tail, follow, SSE), metrics,
history, events, restart, auto-update of a re-tagged image, delete."""

from __future__ import annotations

import json
import time
import uuid

import docker
import httpx
import pytest

from launchbay.settings import Settings

import docker_support
from docker_support import edge_settings, eventually
from support import free_port

EDGE_HTTP = free_port()


@pytest.fixture
def settings(tmp_path, database_url, mock_dns) -> Settings:
    return edge_settings(tmp_path, database_url, mock_dns, EDGE_HTTP,
                         default_plan="business", auto_update_seconds=0.5)


def face(api, method: str, path: str, json=None, **kw) -> httpx.Response:
    return api.client.request(method, f"/compat/shipyard/api/deployments{path}", json=json,
                              headers={"Authorization": f"Bearer {api.token}"}, **kw)




def via_url(url: str) -> httpx.Response:
    return docker_support.via_url(url, EDGE_HTTP)


def test_raw_image_ready_config_logs_metrics_restart_delete(api):
    r = face(api, "POST", "/deploy-image", {"image": "lbtest/busy:v1", "name": "busy-app",
                                           "envVars": {"MODE": "first"}})
    assert r.status_code == 201, r.text
    ready = eventually(lambda: (s := face(api, "GET", "/status", params={
        "name": "busy-app"}).json())["status"] == "Ready" and s)
    assert ready["deploymentReady"] is True
    (ingress,) = ready["ingresses"]
    assert ingress["host"] == "busy-app.localhost"
    assert ingress["url"] == f"http://busy-app.localhost:{EDGE_HTTP}"
    assert eventually(lambda: "MODE=first" in via_url(ingress["url"]).text)

    r = face(api, "PUT", "/config", {"deployment_name": "busy-app",
                                     "configData": {"MODE": "second"}})
    assert r.status_code == 200
    assert eventually(lambda: "MODE=second" in via_url(ingress["url"]).text)
    assert "MODE=first" not in via_url(ingress["url"]).text

    logs = eventually(lambda: (text := face(api, "GET", "/busy-app/logs",
                                       params={"tail": 2}).json()["logs"]).count("tick") == 2
                 and text)
    assert logs == "tick\ntick\n"
    metrics = face(api, "GET", "/busy-app/metrics").json()
    assert metrics["cpuUsage"].endswith("m") and int(metrics["cpuUsage"][:-1]) > 10
    assert metrics["memoryUsage"].endswith("Mi")
    assert metrics["timestamp"].endswith("Z")

    assert face(api, "POST", "/restart", {"deployment_name": "busy-app"}).status_code == 200
    assert eventually(lambda: "MODE=second" in via_url(ingress["url"]).text)
    history = face(api, "GET", "/busy-app/history").json()["revisions"]
    assert [(h["type"], h["user"]) for h in history] == [
        ("created", "admin@example.com"), ("config", "admin@example.com"),
        ("restart", "admin@example.com")]
    assert history[1]["details"]["changed"] == ["MODE"]

    r = face(api, "POST", "/delete", {"deployment_name": "busy-app"})
    assert r.status_code == 200
    assert via_url(ingress["url"]).status_code in (404, 200)  # the route goes at once...
    eventually(lambda: via_url(ingress["url"]).status_code == 404, within=15)
    eventually(lambda: face(api, "GET", "/status", params={"name": "busy-app"}).status_code == 404)
    assert face(api, "GET", "").json() == []


STACK = """
services:
  web:
    image: lbtest/env:v1
    ports: ["8080"]
  worker:
    image: lbtest/busy:v1
"""


def test_template_stack_logs_stream_history_events_and_auto_update(api):
    admin = {"Authorization": f"Bearer {api.token}"}
    assert api.client.post("/api/templates", headers=admin, json={
        "name": "web-and-worker", "blueprint": {"compose": STACK,
                                                "variables": {"ROLE": "${role}"}},
        "parameters": [{"name": "role", "default": "demo"}]}).status_code == 201
    r = face(api, "POST", "", {"template": "web-and-worker", "envVars": {"role": "live"}})
    assert r.status_code == 201, r.text
    name = r.json()["name"]
    ready = eventually(lambda: (s := face(api, "GET", "/status", params={"name": name}).json())
                  ["status"] == "Ready" and s)
    (ingress,) = ready["ingresses"]
    assert eventually(lambda: "ROLE=live" in via_url(ingress["url"]).text)

    # The worker service: its logs and its CPU, chosen with `service`.
    worker = eventually(lambda: "tick" in (text := face(api, "GET", f"/{name}/logs", params={
        "service": "worker", "tail": 5}).json()["logs"]) and text)
    assert set(worker.split()) == {"tick"}
    cpu = eventually(lambda: int(face(api, "GET", f"/{name}/metrics", params={
        "service": "worker"}).json()["cpuUsage"][:-1]) > 10 or None)
    assert cpu
    assert face(api, "GET", f"/{name}/logs", params={"service": "nope"}).status_code == 404

    # Followed logs: the tail, then lines as they are written (a tick a second).
    with api.client.stream("GET", f"/compat/shipyard/api/deployments/{name}/logs", params={
            "service": "worker", "follow": "true", "tail": 1}, headers=admin) as followed:
        assert followed.headers["content-type"].startswith("text/plain")
        seen = []
        for line in followed.iter_lines():
            seen.append(line)
            if len(seen) == 3:
                break
    assert seen == ["tick"] * 3
    with api.client.stream("GET", f"/compat/shipyard/api/deployments/{name}/logs/stream",
                           params={"service": "worker"}, headers=admin) as sse:
        assert sse.headers["content-type"].startswith("text/event-stream")
        data = []
        for line in sse.iter_lines():
            if line.startswith("data: "):
                data.append(line.removeprefix("data: "))
            if len(data) == 2:
                break
    assert data == ["tick", "tick"]  # new lines only: no tail unless asked for

    assert face(api, "POST", "/restart", {"deployment_name": name}).status_code == 200
    events = eventually(lambda: (e := face(api, "GET", f"/{name}/events").json()["events"])
                   and any(x["reason"] == "Restarted" for x in e) and e)
    assert {"Created", "Started"} <= {e["reason"] for e in events}
    assert {e["service"] for e in events} == {"web", "worker"}
    assert all(e["timestamp"].endswith("Z") for e in events)
    history = face(api, "GET", f"/{name}/history").json()["revisions"]
    assert [h["type"] for h in history] == ["created", "restart"]


def test_auto_update_follows_a_retagged_local_image(api):
    engine = docker.from_env()
    moving = f"lbtest/moving-{uuid.uuid4().hex[:8]}"
    engine.images.get("lbtest/hello:v1").tag(moving, "latest")
    try:
        r = face(api, "POST", "/deploy-image", {"image": f"{moving}:latest", "name": "follows"})
        assert r.status_code == 201, r.text
        url = eventually(lambda: (s := face(api, "GET", "/status", params={"name": "follows"})
                             .json())["status"] == "Ready" and s)["ingresses"][0]["url"]
        assert eventually(lambda: via_url(url).text == "hello v1\n")
        engine.images.get("lbtest/hello:v2").tag(moving, "latest")
        time.sleep(1.5)  # auto-update is off: nothing happens
        assert via_url(url).text == "hello v1\n"

        assert face(api, "PUT", "/auto-update", {"deployment_name": "follows", "enabled": True,
                                                 "strategy": "rolling"}).status_code == 200
        assert eventually(lambda: via_url(url).text == "hello v2\n")
        face(api, "PUT", "/auto-update", {"deployment_name": "follows", "enabled": True,
                                          "strategy": "recreate"})
        engine.images.get("lbtest/hello:v3").tag(moving, "latest")
        assert eventually(lambda: via_url(url).text == "hello v3\n")

        history = face(api, "GET", "/follows/history").json()["revisions"]
        images = [h for h in history if h["type"] == "image"]
        assert [h["details"]["strategy"] for h in images] == ["rolling", "recreate"]
        assert all(h["user"] == "admin@example.com" for h in images)
        last = api.client.get(f"/api/deployments/{images[-1]['deploymentId']}/logs",
                              headers={"Authorization": f"Bearer {api.token}"}).json()["logs"]
        assert any("(recreate)" in line["message"] for line in last), json.dumps(last)
        time.sleep(1.5)  # nothing moved since: no further release
        assert len([d for d in api.client.get("/api/deployments", headers={
            "Authorization": f"Bearer {api.token}"}).json()["items"]]) == 3
    finally:
        engine.images.remove(f"{moving}:latest", noprune=True)


def test_a_release_being_verified_is_provisioning_and_a_crash_is_an_error(api):
    r = face(api, "POST", "/deploy-image", {"image": "lbtest/slow:v1", "name": "slow-start",
                                           "envVars": {"DELAY": "4"}})
    assert r.status_code == 201
    seen = eventually(lambda: (s := face(api, "GET", "/status", params={"name": "slow-start"})
                          .json())["status"] == "Provisioning" and s)
    assert seen["deploymentReady"] is False and seen["ingresses"] == []
    assert eventually(lambda: face(api, "GET", "/status", params={"name": "slow-start"})
                 .json()["status"] == "Ready")

    assert face(api, "POST", "/deploy-image", {"image": "lbtest/crash:v1",
                                              "name": "crashes"}).status_code == 201
    failed = eventually(lambda: (s := face(api, "GET", "/status", params={"name": "crashes"})
                            .json())["status"] == "Error" and s)
    assert "exited" in failed["statusMessage"]
    (listed,) = [d for d in face(api, "GET", "").json() if d["name"] == "crashes"]
    assert listed["status"] == "Error" and "exited" in listed["lastError"]
    assert listed["canDelete"] is True
