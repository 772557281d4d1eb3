"""The Dployr face (/compat/dployr): shapes, status codes, roles and isolation, without
running anything (the engine's side is in tests/engine/test_dployr.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from launchbay.http.dployr import from_ulid, ulid

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
    assert r.status_code == 404, r.text
    assert snapshot(cp) == before
