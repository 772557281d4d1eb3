"""The Dployr face (/compat/dployr): shapes, status codes, roles and isolation, without
running anything (the engine's side is in tests/engine/test_dployr.py)."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest

from launchbay import __version__
from launchbay.drivers import host_facts
from launchbay.http.compat.dployr import from_ulid, ulid

from support import Api, add_member, snapshot

IMAGE_APP = {"name": "hello", "user_id": "u1", "source": "image",
             "runtime": {"type": "docker"}, "image": "lbtest/hello:v1", "port": 8080,
             "env_vars": {"GREETING": "hi"}}


class Face:
    """Requests to the Dployr face with a launchbay token as Bearer."""

    def __init__(self, api: Api):
        self.api = api

    def __call__(self, method: str, path: str, json=None, **kw):
        headers = {"Authorization": f"Bearer {self.api.token}"} if self.api.token else {}
        return self.api.client.request(method, f"/compat/dployr{path}", json=json,
                                       headers=headers, **kw)


@pytest.fixture
def face(admin) -> Face:
    return Face(admin)


def test_ulids_round_trip_and_sort_by_time():
    early = ulid("dep_00000000000000ff", datetime(2024, 1, 1, tzinfo=UTC))
    late = ulid("dep_0000000000000001", datetime(2025, 1, 1))
    assert len(early) == 26 and early < late
    assert from_ulid(early, "dep") == "dep_00000000000000ff"
    assert from_ulid("not-a-ulid", "dep") is None


def test_unauthenticated_and_unknown_answers_have_dployrs_shapes(client, admin):
    r = client.get("/compat/dployr/deployments")
    assert r.status_code == 401
    assert r.json() == {"error": "Unauthorized", "code": "auth.unauthorized"}
    r = client.get("/compat/dployr/services", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    face = Face(admin)
    r = face("GET", "/services/res_0000000000000000")
    assert r.status_code == 404 and r.json()["code"] == "resource.not_found"
    r = face("POST", "/logs/stream")
    assert r.status_code == 405
    assert r.json() == {"error": "Method not allowed", "code": "request.method_not_allowed"}
    assert face("GET", "/deployments", params={"limit": 0}).status_code == 400


def test_deploy_request_validation(face, cp):
    before = snapshot(cp)
    r = face("POST", "/deployments", {"name": "x"})
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "Validation failed"
    assert {d["field"] for d in body["details"]} >= {"source", "runtime"}
    assert all(set(d) == {"field", "message"} for d in body["details"])
    r = face("POST", "/deployments", {**IMAGE_APP, "runtime": {"type": "k3s"}})
    assert r.status_code == 400 and "k3s" in r.json()["error"]
    r = face("POST", "/deployments", {**IMAGE_APP, "source": "remote"})
    assert r.status_code == 400 and r.json()["code"] == "remote_required"
    r = face("POST", "/deployments", content=b"{not json")
    assert r.status_code == 400
    assert snapshot(cp) == before


def test_deploy_list_update_and_delete(face, admin):
    r = face("POST", "/deployments", IMAGE_APP)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["success"] is True and created["name"] == "hello"
    assert len(created["id"]) == 26 and created["created_at"].endswith("Z")
    listed = face("GET", "/deployments").json()
    assert listed["total"] == 1
    d = listed["deployments"][0]
    assert d["id"] == created["id"] and d["status"] == "pending"
    assert d["user_id"] == admin.user_id and d["user_email"] == "admin@example.com"
    assert d["config"]["source"] == "image" and d["config"]["image"] == "lbtest/hello:v1"
    assert d["config"]["port"] == 8080 and d["config"]["env_vars"] == {"GREETING": "hi"}
    services = face("GET", "/services").json()
    assert services["total"] == 1
    service = services["services"][0]
    assert (service["name"], service["source"], service["port"]) == ("hello", "image", 8080)
    assert service["status"] == "deploying" and service["env_vars"] == {"GREETING": "hi"}
    sid = service["id"]
    patched = face("PATCH", f"/services/{sid}", {"env_vars": {"EXTRA": "1"}}).json()
    assert patched["env_vars"] == {"GREETING": "hi", "EXTRA": "1"}
    put = face("PUT", f"/services/{sid}", {"env_vars": {"ONLY": "this"}, "port": 9090}).json()
    assert put["env_vars"] == {"ONLY": "this"} and put["port"] == 9090
    assert face("GET", "/deployments").json()["total"] == 3  # each change is a deployment
    assert face("GET", "/deployments", params={"limit": 1, "offset": 1}).json()[
        "deployments"][0]["config"]["env_vars"] == {"GREETING": "hi", "EXTRA": "1"}
    r = face("PATCH", f"/services/{sid}", {"port": 0})
    assert r.status_code == 422
    assert face("DELETE", f"/services/{sid}").status_code == 204
    assert face("GET", f"/services/{sid}").status_code == 404
    # The services are ordinary resources of the native API.
    assert admin.get("/projects")["items"][0]["name"] == "services"


def test_roles_and_other_organizations(face, admin, cp):
    viewer = Face(add_member(admin, admin.org_id, "vic@example.com", "viewer"))
    developer = Face(add_member(admin, admin.org_id, "dev@example.com", "developer"))
    r = viewer("POST", "/deployments", IMAGE_APP)
    assert r.status_code == 403
    assert r.json() == {"error": "blueprints.deploy needs the developer role; you are viewer",
                        "code": "auth.forbidden"}
    assert developer("POST", "/deployments", IMAGE_APP).status_code == 201
    sid = viewer("GET", "/services").json()["services"][0]["id"]
    assert viewer("GET", f"/services/{sid}").status_code == 200
    assert developer("DELETE", f"/services/{sid}").status_code == 403  # Admin+ required
    r = developer("POST", "/deployments", {**IMAGE_APP, "secrets": {"KEY": "v"}})
    assert r.status_code == 403  # secrets are for admins
    org_b = admin.post("/organizations", {"name": "Beta"})["organizationId"]
    bob = Face(add_member(admin, org_b, "bob@example.com", "admin"))
    before = snapshot(cp)
    assert bob("GET", "/services").json() == {"services": [], "total": 0}
    assert bob("GET", "/deployments").json() == {"deployments": [], "total": 0}
    for method, body in (("GET", None), ("PATCH", {"port": 1234}), ("PUT", {}),
                         ("DELETE", None)):
        assert bob(method, f"/services/{sid}", body).status_code == 404, method
    dep = face("GET", "/deployments").json()["deployments"][0]["id"]
    r = bob("GET", "/logs/stream", params={"id": dep})
    # Another organization's deployment is an unknown id: 400, as the contract lists for
    # this path, and the same answer as for an id that never existed.
    unknown = bob("GET", "/logs/stream", params={"id": "dep_0000000000000000"})
    assert (r.status_code, unknown.status_code) == (400, 400), r.text
    assert r.json() == {"error": f"no service or deployment {dep}",
                        "code": "request.bad_request"}
    assert unknown.json()["code"] == "request.bad_request"
    assert snapshot(cp) == before


def test_proxy_routes_roles_validation_and_operators(face, admin, cp):
    developer = Face(add_member(admin, admin.org_id, "dev@example.com", "developer"))
    route = {"domain": "app.example.com", "upstream": "http://127.0.0.1:3000"}
    assert face("GET", "/proxy/status").json() == {"status": "disabled"}  # no edge here
    assert developer("GET", "/proxy/status").status_code == 200
    r = developer("POST", "/proxy/add", route)
    assert r.status_code == 403 and r.json()["code"] == "auth.forbidden"  # Admin+ required
    before = snapshot(cp)
    for bad in ({"domain": "app.example.com"}, {**route, "upstream": "ftp://x:1"},
                {**route, "upstream": "http://127.0.0.1:3000/path"},
                {**route, "domain": "not a domain"}, {**route, "upstream": "http://h:99999"}):
        r = face("POST", "/proxy/add", bad)
        assert r.status_code == 400, (bad, r.text)
        assert r.json()["error"] == "Validation failed" and r.json()["details"]
    admin_port = cp.settings.edge_admin.rpartition(":")[2]
    r = face("POST", "/proxy/add", {**route, "upstream": f"http://localhost:{admin_port}"})
    assert r.status_code == 403 and "admin API" in r.json()["error"]
    assert snapshot(cp) == before

    assert face("POST", "/proxy/add", route).status_code == 201
    assert face("POST", "/proxy/add", route).status_code == 409
    (listed,) = admin.get("/proxy/routes")["items"]
    assert listed["domain"] == "app.example.com" and listed["upstream"] == "http://127.0.0.1:3000"
    (binding,) = admin.get("/domain-bindings")["items"]
    assert binding["resourceId"] is None and binding["upstream"] == "http://127.0.0.1:3000"

    # Another organization's admin: no routes to this machine's addresses, and no way to
    # remove this one.
    org_b = admin.post("/organizations", {"name": "Beta"})["organizationId"]
    bob = Face(add_member(admin, org_b, "bob@example.com", "admin"))
    r = bob("POST", "/proxy/add", {"domain": "b.example.com", "upstream": "http://127.0.0.1:1"})
    assert r.status_code == 403 and "first organization" in r.json()["error"]
    assert bob("DELETE", "/proxy/remove", params={"domain": "app.example.com"}).status_code == 404
    assert bob("POST", "/proxy/restart").status_code == 403
    assert face("DELETE", "/proxy/remove").status_code == 400  # which domain?
    r = face("DELETE", "/proxy/remove", {"domain": "app.example.com"})
    assert r.status_code == 200 and r.json() == {"message": "Route removed successfully"}
    assert admin.get("/proxy/routes")["items"] == []
    events = [e["eventType"] for e in admin.get("/audit-events")["items"]]
    assert "proxy.route-added" in events and "proxy.route-removed" in events


def test_system_status_and_info_describe_this_machine(face, admin):
    status = face("GET", "/system/status").json()
    assert status["status"] in ("healthy", "degraded")  # Docker answers in `make test`
    assert status["services"] == {"total": 0, "running": 0, "stopped": 0}
    assert status["uptime"][-1] == "s"
    info = face("GET", "/system/info")
    assert info.status_code == 200, info.text
    hardware = info.json()["hardware"]
    assert hardware["cpu_count"] == os.cpu_count()
    with open("/proc/meminfo") as f:
        total_kib = int(f.readline().split()[1])
    assert hardware["mem_total"] == host_facts.human(total_kib * 1024)
    assert hardware["os"] == "linux" and hardware["kernel"] == f"Linux {os.uname().release}"
    root = [p for p in info.json()["storage"]["partitions"] if p["mountpoint"] == "/"]
    assert root and root[0]["use_percent"].endswith("%")
    assert info.json()["build"]["version"] == f"v{__version__}"
    viewer = Face(add_member(admin, admin.org_id, "vic@example.com", "viewer"))
    assert viewer("GET", "/system/status").status_code == 200  # Viewer+
    assert viewer("GET", "/system/info").status_code == 403  # Admin+


def test_human_sizes():
    assert [host_facts.human(n) for n in (0, 1023, 1536, 7.5 * 2**30, 24 * 2**30)] == [
        "0B", "1023B", "1.5Ki", "7.5Gi", "24Gi"]


def test_install_refuses_another_version_without_an_upgrade_source(face, cp):
    r = face("POST", "/system/install", {"version": "v9.9.9"})
    assert r.status_code == 200
    assert r.json()["status"] == "error"
    assert "no upgrade source is configured" in r.json()["error"] and "9.9.9" in r.json()["error"]
    # The running version: the dependencies are checked (here all present) and the doctor runs.
    r = face("POST", "/system/install", {"version": f"v{__version__}"})
    assert r.json()["status"] == "ok", r.json()
    assert "Docker" in r.json()["output"] and "is up" in r.json()["output"]
    assert "database: reachable, migrations current" in r.json()["output"]


def test_registration_and_domain_through_claims_of_a_base(face, admin, cp):
    """This control plane is its own base here: it signs claims through the native API and
    verifies them with the base key it is configured with."""
    r = face("POST", "/system/register", {"claim": "x", "instance_id": "inst_1"})
    assert r.status_code == 409 and "no base configured" in r.json()["error"]
    issuer = admin.client.get("/api/instance-claims/issuer").json()
    cp.settings.base_issuer, cp.settings.base_public_key = issuer["issuer"], issuer["publicKey"]
    claim = admin.post("/instance-claims", {"instanceId": "inst_1"})["claim"]

    for body in ({"claim": claim, "instance_id": "inst_2"},  # someone else's
                 {"claim": claim[:-4] + "AAAA", "instance_id": "inst_1"},  # tampered
                 {"claim": claim, "instance_id": "inst_1", "issuer": "https://other"}):
        r = admin.client.post("/compat/dployr/system/register", json=body)
        assert r.status_code == 400 and r.json()["code"] == "claim_invalid", r.text
    r = admin.client.post("/compat/dployr/system/register",
                          json={"claim": claim, "instance_id": "inst_1"})
    assert r.status_code == 200 and r.json()["instance_id"] == "inst_1"
    # A domain claim is not a registration claim, and the other way round.
    domain_claim = admin.post("/instance-claims", {"instanceId": "inst_1", "purpose": "domain",
                                                   "domain": "my-box"})["claim"]
    r = admin.client.post("/compat/dployr/system/register",
                          json={"claim": domain_claim, "instance_id": "inst_1"})
    assert r.status_code == 400
    r = admin.client.post("/compat/dployr/system/domain", json={"token": domain_claim})
    assert r.status_code == 200 and r.json() == {"domain": "my-box.localhost"}
    (route,) = admin.get("/proxy/routes")["items"]  # the control plane itself, at its domain
    assert route["domain"] == "my-box.localhost"
    assert route["upstream"] == f"http://127.0.0.1:{cp.settings.port}"


def test_the_services_project_is_dployrs_own_never_a_users(face, admin):
    """A feature's project is found by its kind, and its name is reserved: a user's project
    named "Services" can neither be made nor become Dployr's home."""
    for name in ("Services", "ephemeral", "hosted-team", "Hosted Mine"):
        refused = admin.request("POST", "/projects", {"name": name})
        assert refused.status_code == 409 and refused.json()["code"] == \
            "project_name_reserved", name
    mine = admin.post("/projects", {"name": "Shop"})["id"]
    assert admin.request("POST", f"/projects/{mine}/rename", {"name": "services"}
                         ).json()["code"] == "project_name_reserved"
    assert face("POST", "/deployments", IMAGE_APP).status_code == 201
    projects = {p["slug"]: p["id"] for p in admin.get("/projects")["items"]}
    assert set(projects) == {"shop", "services"}
    assert face("GET", "/services").json()["total"] == 1
