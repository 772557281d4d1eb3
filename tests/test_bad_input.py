"""Bad input gets the documented error shape (400/404) and changes nothing."""

from __future__ import annotations

import pytest

from support import snapshot


@pytest.fixture
def ids(admin):
    project = admin.post("/projects", {"name": "shop"})["id"]
    env = admin.post("/environments", {"projectId": project, "name": "prod"})["id"]
    return {"project": project, "env": env}


def assert_validation(response, field: str | None = None):
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "Validation failed"
    assert all(set(d) == {"field", "message"} for d in body["details"])
    if field:
        assert field in [d["field"] for d in body["details"]], body


def test_malformed_json(admin, ids, cp):
    before = snapshot(cp)
    for path in ["/projects", f"/environments/{ids['env']}/variables", "/environments"]:
        for raw in [b"{not json", b"[1, 2]", b"\xff\xfe", b'"a string"']:
            response = admin.request("POST", path, content=raw,
                                     headers={"Content-Type": "application/json"})
            assert response.status_code == 400, (path, raw, response.text)
            assert response.json()["code"] == "malformed_json"
            assert set(response.json()) == {"error", "code", "details"}
    assert snapshot(cp) == before


def test_missing_fields(admin, ids, cp):
    before = snapshot(cp)
    assert_validation(admin.request("POST", "/projects", {}), "name")
    assert_validation(admin.request("POST", "/projects", {"name": "   "}), "name")
    assert_validation(admin.request("POST", "/environments", {"name": "x"}), "projectId")
    assert_validation(admin.request("POST", f"/environments/{ids['env']}/variables",
                                    {"key": "A"}), "value")
    assert_validation(admin.request("POST", f"/environments/{ids['env']}/clone", {}), "targetName")
    assert_validation(admin.request("DELETE", f"/projects/{ids['project']}", {}), "confirmation")
    assert_validation(admin.client.post("/api/auth/login", json={"email": "a@example.com"}),
                      "password")
    assert snapshot(cp) == before


def test_wrong_types_and_values(admin, ids, cp):
    before = snapshot(cp)
    env = ids["env"]
    assert_validation(admin.request("POST", "/projects", {"name": 42}), "name")
    assert_validation(admin.request("POST", "/projects", {"name": ["a"]}), "name")
    assert_validation(admin.request("POST", "/environments",
                                    {"projectId": ids["project"], "name": "x", "kind": "moon"}),
                      "kind")
    assert_validation(admin.request("POST", f"/environments/{env}/variables",
                                    {"key": "1BAD KEY", "value": "v"}), "key")
    assert_validation(admin.request("POST", f"/environments/{env}/variables",
                                    {"key": "A", "value": "v", "kind": "password"}), "kind")
    assert_validation(admin.request("POST", f"/environments/{env}/variables",
                                    {"key": "A", "value": {"nested": 1}}), "value")
    assert_validation(admin.request("GET", "/projects", params={"limit": "many"}), "limit")
    assert_validation(admin.request("GET", "/projects", params={"limit": 0}), "limit")
    assert_validation(admin.request("POST", f"/organizations/{admin.org_id}/invitations",
                                    {"email": "not-an-address", "role": "viewer"}), "email")
    assert_validation(admin.request("POST", f"/organizations/{admin.org_id}/invitations",
                                    {"email": "a@example.com", "role": "owner"}), "role")
    assert_validation(admin.request("POST", "/account/tokens",
                                    {"displayName": "t", "scopes": ["*"],
                                     "expiresAt": "2001-01-01T00:00:00Z"}), "expiresAt")
    assert snapshot(cp) == before


def test_unknown_ids_are_404(admin, ids, cp):
    before = snapshot(cp)
    for method, path, body in [
        ("GET", "/projects/prj_doesnotexist", None),
        ("POST", "/projects/prj_doesnotexist/rename", {"name": "x"}),
        ("GET", "/environments/env_nope", None),
        ("POST", "/environments/env_nope/variables", {"key": "A", "value": "1"}),
        ("GET", f"/environments/{ids['env']}/diff/env_nope", None),
        ("POST", "/environments", {"projectId": "prj_nope", "name": "x"}),
        ("DELETE", f"/environments/{ids['env']}/variables/MISSING", {"exposure": "runtime"}),
        ("GET", "/organizations/org_nope/members", None),
        ("GET", "/account/tokens/tok_nope", None),
        ("POST", "/account/sessions/ses_nope/revoke", {}),
        ("GET", "/audit-events/aud_nope", None),
        ("GET", "/no/such/route", None),
    ]:
        response = admin.request(method, path, body)
        assert response.status_code == 404, (method, path, response.text)
        assert set(response.json()) == {"error", "code", "details"}
    assert snapshot(cp) == before


def test_conflicts_are_409_and_change_nothing(admin, ids, cp):
    before = snapshot(cp)
    dup = admin.request("POST", "/projects", {"name": "Shop"})  # same slug as "shop"
    assert dup.status_code == 409 and dup.json()["code"] == "project_exists"
    dup_env = admin.request("POST", "/environments", {"projectId": ids["project"], "name": "PROD"})
    assert dup_env.status_code == 409
    mismatch = admin.request("DELETE", f"/projects/{ids['project']}",
                             {"confirmation": {"projectId": "prj_other"}})
    assert mismatch.status_code == 400 and mismatch.json()["code"] == "confirmation_mismatch"
    blocked = admin.request("DELETE", f"/projects/{ids['project']}",
                            {"confirmation": {"projectId": ids["project"]}})
    assert blocked.status_code == 409
    assert {b["kind"] for b in blocked.json()["details"]["blockers"]} == {
        "active-project"}  # its environment is empty: it goes with the project
    assert snapshot(cp) == before


def test_unauthenticated_is_401(client, admin):
    client.cookies.clear()
    for method, path in [("GET", "/api/projects"), ("POST", "/api/projects"),
                         ("GET", "/api/account/profile")]:
        response = client.request(method, path)
        assert response.status_code == 401 and response.json()["code"] == "unauthenticated"
    bad = client.get("/api/projects", headers={"Authorization": "Bearer lbs_forged"})
    assert bad.status_code == 401 and bad.json()["code"] == "invalid_token"
