"""The edge proxy with a real Caddy: generated hostnames, restarts that lose nothing, and
zero-downtime releases under constant traffic."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from launchbay.control_plane import ControlPlane
from launchbay.settings import Settings

from docker_support import (
    Traffic,
    deploy,
    deployed,
    eventually,
    host_of,
    set_image,
    wait,
    with_edge,
)
from support import free_port, make_app


@pytest.fixture
def settings(tmp_path, database_url) -> Settings:
    return with_edge(tmp_path, database_url, edge_drain_seconds=1, work_lease_seconds=5,
                     shipped_templates=True)


def via_edge(settings: Settings, host: str, path: str = "/") -> httpx.Response:
    """A request to the edge proxy on loopback, for `host`."""
    return httpx.get(f"http://127.0.0.1:{settings.edge_http_port}{path}",
                     headers={"Host": host}, timeout=5)


def test_generated_hostname_routes_to_the_current_release(api, settings):
    ids = make_app(api, "lbtest/hello:v1", name="web")
    d = deployed(api, ids)
    host = host_of(api, ids["resource"])
    assert host == "web-production-web-project.localhost"
    assert d["url"] == f"http://{host}:{settings.edge_http_port}/"
    assert d["directUrl"].startswith("http://127.0.0.1:")
    assert eventually(lambda: via_edge(settings, host).text == "hello v1\n")
    missing = via_edge(settings, "nothing-here.localhost")
    assert missing.status_code == 404 and "no app" in missing.text
    config = api.get(f"/resources/{ids['resource']}/proxy-configuration")
    assert config["status"] == "configured"
    (route,) = config["routes"]
    assert route["match"][0]["host"] == [host]
    assert route["handle"][0]["upstreams"][0]["dial"] == f"127.0.0.1:{d['hostPort']}"


def test_the_access_profile_turns_the_generated_route_off_or_narrows_it(api, settings):
    ids = make_app(api, "lbtest/hello:v1", name="web")
    deployed(api, ids)
    host = host_of(api, ids["resource"])
    assert eventually(lambda: via_edge(settings, host).text == "hello v1\n")
    profile = f"/resources/{ids['resource']}/access-profile"
    # A path prefix: only what is under it reaches the app (which has no /shop: its own 404).
    api.post(profile, {"accessProfile": {"pathPrefix": "/shop"}})
    assert eventually(lambda: "no app" in via_edge(settings, host).text)  # the edge's own 404
    reached = via_edge(settings, host, "/shop/index.html")
    assert reached.status_code == 404 and "no app" not in reached.text
    # Generated access off: the hostname routes nowhere (the release still runs).
    api.post(profile, {"accessProfile": {"generatedAccessMode": "disabled"}})
    assert eventually(lambda: "no app" in via_edge(settings, host, "/shop/index.html").text)
    assert api.get(f"/resources/{ids['resource']}/proxy-configuration")["routes"] == []
    api.post(profile, {"accessProfile": {}})  # back to the defaults
    assert eventually(lambda: via_edge(settings, host).text == "hello v1\n")


def test_routes_survive_caddy_and_launchbay_restarts(api, settings, cp):
    ids = make_app(api, "lbtest/hello:v1")
    deployed(api, ids)
    host = host_of(api, ids["resource"])
    eventually(lambda: via_edge(settings, host).status_code == 200)

    os.kill(cp.edge.caddy.pid(), signal.SIGKILL)  # Caddy dies...
    eventually(lambda: via_edge(settings, host).text == "hello v1\n")  # ...and is back, routed

    cp.close()  # launchbay stops (and its Caddy with it)
    with pytest.raises(httpx.TransportError):
        via_edge(settings, host)
    again = ControlPlane(settings)
    try:
        again.start_workers()
        assert eventually(lambda: via_edge(settings, host).text == "hello v1\n")
    finally:
        again.close()


def test_zero_failed_requests_while_redeploying_twice(api, settings):
    ids = make_app(api, "lbtest/hello:v1")
    deployed(api, ids)
    host = host_of(api, ids["resource"])
    eventually(lambda: via_edge(settings, host).text == "hello v1\n")
    with Traffic([f"http://127.0.0.1:{settings.edge_http_port}/"], host, rate=40,
                 seconds=20) as traffic:  # 40 requests/s on loopback
        time.sleep(1.5)
        for image in ("lbtest/hello:v2", "lbtest/hello:v3"):
            set_image(api, ids["resource"], image)
            assert wait(api, deploy(api, ids))["status"] == "succeeded"
            time.sleep(2.5)  # the replaced release drains, then is stopped
    seen = traffic.seen
    assert not traffic.failures, traffic.failures[:5]
    versions = [text.strip() for _, text in seen]
    order = [v for i, v in enumerate(versions) if i == 0 or v != versions[i - 1]]
    assert order == ["hello v1", "hello v2", "hello v3"], order
    assert len(seen) > 200


def test_a_release_asked_for_while_the_previous_drains_survives_it(api, settings):
    """The release being replaced retires only older releases, even one asked for during its
    drain period."""
    ids = make_app(api, "lbtest/hello:v1")
    deployed(api, ids)
    host = host_of(api, ids["resource"])
    set_image(api, ids["resource"], "lbtest/hello:v2")
    assert wait(api, deploy(api, ids))["status"] == "succeeded"
    set_image(api, ids["resource"], "lbtest/hello:v3")  # v2 is still draining v1
    last = wait(api, deploy(api, ids))
    assert last["status"] == "succeeded"
    time.sleep(2.5)  # both drains are over
    assert via_edge(settings, host).text == "hello v3\n"
    assert httpx.get(last["directUrl"], timeout=5).text == "hello v3\n"


def test_health_live_cached_and_history(api, settings):
    ids = make_app(api, "lbtest/hello:v1")
    none = api.get(f"/resources/{ids['resource']}/health", params={"mode": "live"})
    assert none["overall"] == "not-deployed"
    deployed(api, ids)
    live = api.get(f"/resources/{ids['resource']}/health", params={"mode": "live"})
    assert live["overall"] == "healthy" and live["mode"] == "live"
    assert live["runtime"] == {**live["runtime"], "lifecycle": "running", "health": "healthy"}
    assert live["publicAccess"]["status"] == "ready" and live["publicAccess"]["httpStatus"] == 200
    cached = api.get(f"/resources/{ids['resource']}/health")
    assert cached["mode"] == "cached" and cached["observedAt"] == live["observedAt"]
    stop = api.ok("POST", f"/resources/{ids['resource']}/runtime/stop")
    eventually(lambda: api.get(f"/operator-work/{stop['runtimeControlAttemptId']}")["item"][
        "status"] == "succeeded")
    down = api.get(f"/resources/{ids['resource']}/health", params={"mode": "live"})
    assert down["overall"] == "unhealthy" and down["runtime"]["lifecycle"] == "stopped"
    history = api.get(f"/resources/{ids['resource']}/health-history")["observations"]
    assert [o["overall"] for o in history][:2] == ["unhealthy", "healthy"]
    assert history[0]["runtimeLifecycle"] == "stopped"


def test_server_edge_proxy_bootstrap_and_configuration(api, settings, cp):
    server = api.server_id
    eventually(lambda: api.get(f"/servers/{server}")["server"]["edgeProxy"]["status"] == "ready")
    shown = api.get(f"/servers/{server}")["server"]["edgeProxy"]
    assert shown["kind"] == "caddy" and shown["lastSucceededAt"]
    ids = make_app(api, "lbtest/hello:v1")
    deployed(api, ids)
    host = host_of(api, ids["resource"])
    eventually(lambda: via_edge(settings, host).status_code == 200)
    off = api.post(f"/servers/{server}/edge-proxy/configuration", {"proxyKind": "none"})
    assert off["edgeProxy"]["kind"] == "none"
    eventually(lambda: via_edge(settings, host).status_code == 404)  # no routes any more
    api.post(f"/servers/{server}/edge-proxy/configuration", {"proxyKind": "caddy"})
    eventually(lambda: via_edge(settings, host).status_code == 200)
    os.kill(cp.edge.caddy.pid(), signal.SIGKILL)
    attempt = api.ok("POST", f"/servers/{server}/edge-proxy/bootstrap")["attemptId"]
    eventually(lambda: api.get(f"/operator-work/{attempt}")["item"]["status"] == "succeeded")
    assert via_edge(settings, host).text == "hello v1\n"


def test_default_access_policy_template_and_switch(api, settings):
    ids = make_app(api, "lbtest/hello:v1", name="web")
    deployed(api, ids)
    assert api.get("/default-access-domain-policies/show")["policy"] is None
    api.post("/default-access-domain-policies", {
        "scope": {"kind": "system"}, "mode": "enabled",
        "templateRef": "{resource}.{project}.{baseDomain}"})
    host = "web.web-project.localhost"
    assert eventually(lambda: via_edge(settings, host).text == "hello v1\n")
    assert host_of(api, ids["resource"]) == host
    bad = api.request("POST", "/default-access-domain-policies",
                      {"mode": "enabled", "templateRef": "{nope}.example.com"})
    assert bad.status_code == 400
    api.post("/default-access-domain-policies", {
        "scope": {"kind": "deployment-target", "serverId": api.server_id}, "mode": "disabled"})
    assert eventually(lambda: via_edge(settings, host).status_code == 404)
    shown = api.get(f"/resources/{ids['resource']}", params={"includeAccessSummary": "true"})
    assert shown["accessSummary"]["latestGeneratedAccessRoute"]["hostname"] == "127.0.0.1"
    assert len(api.get("/default-access-domain-policies")["items"]) == 2
    beta = api.post("/organizations", {"name": "Beta"})["organizationId"]
    api.post("/organizations/current-context/switch", {"organizationId": beta})
    refused = api.request("POST", "/default-access-domain-policies", {"mode": "enabled"})
    assert refused.status_code == 403 and refused.json()["code"] == "instance_owner_required"


def test_generated_hostnames_can_have_tls(api, settings, cp):
    from launchbay.drivers import tls_certificates

    cp.settings.edge_generated_tls = "internal"  # as if configured so
    https = free_port()
    cp.settings.edge_https_port = https
    ids = make_app(api, "lbtest/hello:v1", name="web")
    d = deployed(api, ids)
    host = host_of(api, ids["resource"])
    assert d["url"] == f"https://{host}:{https}/"
    moved = eventually(lambda: via_edge(settings, host).status_code == 308 and
                       via_edge(settings, host))
    assert moved.headers["location"] == f"https://{host}:{https}/"
    served = eventually(lambda: tls_certificates.served("127.0.0.1", https, host))
    assert "Caddy Local Authority" in served.issuer and served.covers(host)
