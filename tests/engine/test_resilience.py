"""The engine under interruption: event streams that resume, and a control plane killed with
SIGKILL in the middle of a deployment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone

import httpx
import pytest

from launchbay.cli.client import iter_sse

import images
from docker_support import body, containers, deploy, remove_runtime, serve, via_url, wait
from support import ADMIN_EMAIL, ADMIN_PASSWORD, free_port, login, make_app


def read_sse(response: httpx.Response) -> list[dict]:
    return list(iter_sse(response.iter_lines()))


@pytest.mark.both_stores
def test_event_stream_from_creation_to_done_and_resume(api):
    ids = make_app(api, "lbtest/hello:v1")
    deployment = deploy(api, ids)
    with api.client.stream("GET", f"/api/deployments/{deployment}/events/stream",
                           headers={"Authorization": f"Bearer {api.token}"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        messages = read_sse(response)
    assert messages[-1]["event"] == "done"
    events = messages[:-1]
    sequences = [int(m["id"]) for m in events]
    assert sequences == list(range(1, len(events) + 1))  # every entry once, in order
    kinds = [m["data"]["event"]["eventType"] for m in events if m["data"]["kind"] == "event"]
    assert kinds[0] == "deployment-requested" and kinds[-1] == "deployment-succeeded"
    assert all(m["data"]["schemaVersion"] == "deployments.stream-events/v1" for m in events)

    middle = events[2]["id"]
    with api.client.stream("GET", f"/api/deployments/{deployment}/events/stream",
                           headers={"Authorization": f"Bearer {api.token}",
                                    "Last-Event-ID": middle}) as response:
        resumed = read_sse(response)
    assert [m["id"] for m in resumed[:-1]] == [m["id"] for m in events[3:]]
    assert resumed[-1]["event"] == "done"
    unknown = api.request("GET", "/deployments/dep_nope/events/stream")
    assert unknown.status_code == 404 and unknown.json()["code"] == "deployment_not_found"


def test_runtime_log_stream_delivers_new_lines(api):
    ids = make_app(api, "lbtest/hello:v1")
    d = wait(api, deploy(api, ids))
    with api.client.stream("GET", f"/api/resources/{ids['resource']}/runtime-logs/stream",
                           params={"tailLines": 0},
                           headers={"Authorization": f"Bearer {api.token}"}) as response:
        assert response.status_code == 200
        messages = iter_sse(response.iter_lines())
        time.sleep(0.3)
        body(d["url"])
        data = next(messages)["data"]
        assert data["deploymentId"] == d["id"] and "response:200" in data["message"]


def test_sigkill_mid_deployment_then_restart(tmp_path):
    images.ensure("lbtest/slow:v1")
    port = free_port()
    proc = serve(tmp_path, port)
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    server_id = None
    try:
        http.post("/api/bootstrap/auth/first-admin",
                  json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
        api = login(http, ADMIN_EMAIL, ADMIN_PASSWORD)
        server_id = api.get("/servers")["items"][0]["id"]
        ids = make_app(api, "lbtest/slow:v1")
        api.post(f"/resources/{ids['resource']}/variables", {"key": "DELAY", "value": "4"})
        deployment = deploy(api, ids)
        deadline = time.monotonic() + 20
        while not containers(**{"launchbay.deployment": deployment}):
            assert time.monotonic() < deadline, "the release never started"
            time.sleep(0.05)
        first_container = containers(**{"launchbay.deployment": deployment})[0].id
        assert wait(api, deployment, {"running"})["status"] == "running"

        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc = serve(tmp_path, port)

        done = wait(api, deployment, timeout=60)
        assert done["status"] == "succeeded", (done["errorCode"], done["errorMessage"])
        assert body(done["url"]) == "slow\n"
        logs = [e["message"] for e in api.get(f"/deployments/{deployment}/logs")["logs"]]
        assert any("resuming after an interrupted attempt" in m for m in logs)
        # No container launchbay does not know about: only the current release's remains.
        mine = containers(**{"launchbay.server": server_id})
        assert [c.labels["launchbay.deployment"] for c in mine] == [deployment]
        assert first_container not in [c.id for c in mine]
        work = api.get("/operator-work", params={"deploymentId": deployment})["items"]
        assert work[0]["status"] == "succeeded" and work[0]["attempts"] == 2
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        if server_id:
            remove_runtime(server_id)


def test_event_stream_sends_heartbeats_while_waiting(api, monkeypatch):
    from launchbay.http import streams

    monkeypatch.setattr(streams, "HEARTBEAT", 0.3)
    ids = make_app(api, "lbtest/slow:v1")
    api.post(f"/resources/{ids['resource']}/variables", {"key": "DELAY", "value": "2"})
    deployment = deploy(api, ids)
    with api.client.stream("GET", f"/api/deployments/{deployment}/events/stream",
                           headers={"Authorization": f"Bearer {api.token}"}) as response:
        raw = list(response.iter_lines())
    assert raw.count(": heartbeat") >= 2
    assert "event: done" in raw
    assert wait(api, deployment)["status"] == "succeeded"


def test_apps_stay_online_while_launchbay_stops_and_starts(tmp_path):
    """SIGTERM, then SIGINT (Ctrl+C), to `launchbay serve` while requests keep coming: the edge
    proxy outlives the control plane, so every request is answered; each start adopts the
    running Caddy, and no health observation after a restart says degraded. `launchbay proxy
    stop` then stops Caddy."""
    port, edge_port, admin = free_port(), free_port(), f"127.0.0.1:{free_port()}"
    edge = {"LAUNCHBAY_EDGE_ENABLED": "true", "LAUNCHBAY_EDGE_BIND": "127.0.0.1",
            "LAUNCHBAY_EDGE_HTTP_PORT": str(edge_port), "LAUNCHBAY_EDGE_ADMIN": admin,
            "LAUNCHBAY_EDGE_STOP_ON_EXIT": "false", "LAUNCHBAY_HEALTH_OBSERVE_SECONDS": "0.5",
            "LAUNCHBAY_EDGE_DRAIN_SECONDS": "0.5"}
    proc = serve(tmp_path, port, **edge)
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    server_id, answers, stop = None, [], threading.Event()
    try:
        http.post("/api/bootstrap/auth/first-admin",
                  json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
        api = login(http, ADMIN_EMAIL, ADMIN_PASSWORD)
        server_id = api.get("/servers")["items"][0]["id"]
        ids = make_app(api, "lbtest/hello:v1")
        done = wait(api, deploy(api, ids), timeout=60)
        assert done["status"] == "succeeded", (done["errorCode"], done["errorMessage"])
        url = httpx.URL(done["url"])
        assert via_url(str(url), edge_port).status_code == 200

        def traffic() -> None:  # bounded: 3,000 requests or until stopped
            with httpx.Client(timeout=5) as client:
                for _ in range(3000):
                    if stop.is_set():
                        return
                    try:
                        answers.append(client.get(
                            f"http://127.0.0.1:{edge_port}/",
                            headers={"Host": url.host}).status_code)
                    except httpx.HTTPError as exc:
                        answers.append(type(exc).__name__)
                    time.sleep(0.02)

        load = threading.Thread(target=traffic)
        load.start()
        for signum in (signal.SIGTERM, signal.SIGINT):
            time.sleep(0.5)
            proc.send_signal(signum)
            assert proc.wait(30) is not None
            time.sleep(1)  # launchbay is down: the app must still answer
            restarted_at = time.time()
            proc = serve(tmp_path, port, **edge)
            api = login(http, ADMIN_EMAIL, ADMIN_PASSWORD)
        time.sleep(2)  # a few health sweeps of the last control plane
        stop.set()
        load.join(30)
        assert len(answers) > 50 and set(answers) == {200}, [a for a in answers if a != 200]
        # The last control plane saw it healthy every minute since it started.
        history = api.get(f"/resources/{ids['resource']}/health-history")
        restarted = datetime.fromtimestamp(restarted_at, timezone.utc)
        minutes = "".join(r["minutes"][restarted.minute if r["hour"][:13] == restarted
                                       .isoformat()[:13] else 0:]
                          for r in reversed(history["rollups"])
                          if r["hour"][:13] >= restarted.isoformat()[:13])
        assert "h" in minutes and set(minutes) <= {"h", "-"}, minutes
        assert history["observations"][0]["overall"] == "healthy"
    finally:
        stop.set()
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        if server_id:
            remove_runtime(server_id)
        exe = os.path.join(os.path.dirname(sys.executable), "launchbay")
        stopped = subprocess.run([exe, "proxy", "stop"], capture_output=True, text=True,
                                 env={**os.environ, "LAUNCHBAY_EDGE_ADMIN": admin}, timeout=60)
    assert stopped.returncode == 0, stopped.stderr
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://{admin}/config/", timeout=2)
