"""The Shipyard face (/compat/shipyard): shapes, scoped API keys, plans and usage, names,
visibility, teams and ownership, without running anything (the engine's side is in
tests/engine/test_shipyard.py)."""

from __future__ import annotations

from support import Api, add_member, snapshot


class Face:
    def __init__(self, api: Api, token: str | None = None):
        self.api, self.token = api, token or api.token

    def __call__(self, method: str, path: str, json=None, **kw):
        return self.api.client.request(method, f"/compat/shipyard/api/deployments{path}",
                                       json=json, headers={"Authorization": f"Bearer {self.token}"},
                                       **kw)


def key(admin: Api, *scopes: str) -> str:
    return admin.post("/account/tokens", {"displayName": "ci", "scopes": list(scopes)})["token"]


def enterprise(admin: Api) -> None:
    admin.post("/plans/assignments", {"targetOrganizationId": admin.org_id,
                                      "plan": "enterprise"})


def test_deploy_image_list_status_config_and_delete(admin, cp):
    enterprise(admin)
    face = Face(admin, key(admin, "deployments:write"))
    r = face("POST", "/deploy-image", {"image": "lbtest/hello:v1", "containerPort": 8080,
                                       "envVars": {"GREETING": "hi"}})
    assert r.status_code == 201, r.text
    created = r.json()
    name = created["name"]
    assert len(name) == 10 and name.islower() and name.isalnum()
    assert created["status"] == "Pending" and created["visibility"] == "public"
    assert created["canDelete"] is True and created["template"] == "image"
    host = f"{name}.{cp.settings.base_domain}"
    assert created["ingresses"] == [{"id": name, "name": name, "host": host,
                                     "url": f"https://{host}"}]
    (listed,) = face("GET", "").json()
    assert listed["name"] == name
    status = face("GET", "/status", params={"name": name}).json()
    assert status == {"status": "Pending", "deploymentReady": False, "allowDelete": True,
                      "allowRequest": True, "ingresses": []}
    assert face("GET", "/config", params={"name": name}).json() == {
        "configData": {"GREETING": "hi"}}
    r = face("PUT", "/config", {"deployment_name": name, "configData": {"MODE": "x"}})
    assert r.status_code == 200 and r.json() == {"configData": {"MODE": "x"}}
    assert face("GET", "/config", params={"name": name}).json() == {"configData": {"MODE": "x"}}

    # Names are unique on the instance; bad input is refused with nothing changed.
    before = snapshot(cp)
    r = face("POST", "/deploy-image", {"image": "lbtest/hello:v1", "name": name})
    assert r.status_code == 409 and r.json() == {"error": "Deployment name already exists"}
    for bad in ({}, {"image": "UPPER CASE"}, {"image": "x", "name": "Bad_Name"},
                {"image": "x", "containerPort": 0}, {"image": "x", "visibility": "secret"}):
        r = face("POST", "/deploy-image", bad)
        assert r.status_code == 400 and set(r.json()) == {"error"}, (bad, r.text)
    assert face("GET", "/status", params={"name": "nothere"}).status_code == 404
    assert face("GET", "/status").status_code == 400
    assert snapshot(cp) == before

    r = face("POST", "/delete", {"deployment_name": name})
    assert r.status_code == 200 and r.json()["success"] is True
    gone = face("GET", "/status", params={"name": name}).json()
    assert gone["status"] == "Deleting" and gone["allowDelete"] is False
    assert face("GET", "").json()[0]["ingresses"] == []  # its route went at once
    records = admin.get("/usage-intents")["records"]
    assert {u["capabilityKey"] for u in records} == {"deployments.hosted.created",
                                                     "deployments.hosted.deleted"}
    assert all(u["attributes"]["name"] == name and u["source"] == "shipyard" for u in records)


def test_internal_deployments_have_no_route_and_forms_redirect(admin):
    enterprise(admin)
    face = Face(admin)
    r = face("POST", "/deploy-image", {"image": "lbtest/hello:v1", "name": "inside-only",
                                       "visibility": "internal"})
    assert r.status_code == 201 and r.json()["ingresses"] == []
    assert r.json()["visibility"] == "internal"
    assert admin.get("/domain-bindings")["items"] == []
    r = admin.client.post("/compat/shipyard/api/deployments/delete",
                          data={"deployment_name": "inside-only"},
                          headers={"Authorization": f"Bearer {admin.token}"},
                          follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/deployments"


def test_read_only_keys_plans_and_teams(admin, cp):
    reader = Face(admin, key(admin, "deployments:read"))
    writer = Face(admin, key(admin, "deployments:write"))
    r = reader("POST", "/deploy-image", {"image": "lbtest/hello:v1"})
    assert r.status_code == 403 and "deployments:write" in r.json()["error"]
    assert reader("GET", "").status_code == 200
    assert admin.client.get("/compat/shipyard/api/deployments").status_code == 401

    # A Free organization (the default plan) runs one deployment.
    assert admin.get("/plans")["current"] == "free"
    assert writer("POST", "/deploy-image", {"image": "lbtest/hello:v1"}).status_code == 201
    r = writer("POST", "/deploy-image", {"image": "lbtest/hello:v1"})
    assert r.status_code == 403 and "Free plan allows 1 deployment" in r.json()["error"]
    # Only operators assign plans.
    org_b = admin.post("/organizations", {"name": "Beta"})["organizationId"]
    bob = add_member(admin, org_b, "bob@example.com", "admin")
    r = bob.request("POST", "/plans/assignments", {"targetOrganizationId": org_b,
                                                   "plan": "enterprise"})
    assert r.status_code == 403
    admin.post("/plans/assignments", {"targetOrganizationId": admin.org_id, "plan": "business"})
    assert writer("POST", "/deploy-image", {"image": "lbtest/hello:v1"}).status_code == 201

    # A team deployment is seen by the team; a personal one only by its owner.
    dev = add_member(admin, admin.org_id, "dev@example.com", "developer")
    r = Face(dev)("POST", "/deploy-image", {"image": "lbtest/hello:v1", "name": "team-app",
                                            "team_id": admin.org_id})
    assert r.status_code == 201, r.text
    team = [d["name"] for d in writer("GET", "", params={"team_id": admin.org_id}).json()]
    assert team == ["team-app"]
    mine = [d["name"] for d in writer("GET", "").json()]
    assert len(mine) == 2 and "team-app" not in mine
    assert Face(dev)("GET", "/status", params={"name": mine[0]}).status_code == 404
    assert Face(dev)("POST", "/delete", {"deployment_name": mine[0]}).status_code == 404
    # Another organization sees none of it, not even with its id as team.
    b = Face(bob)
    assert b("GET", "").json() == []
    assert b("GET", "", params={"team_id": admin.org_id}).status_code == 404
    assert b("GET", "/status", params={"name": "team-app"}).status_code == 404


def test_template_deployments_history_and_auto_update_settings(admin, cp):
    enterprise(admin)
    admin.post("/templates", {"name": "hello", "blueprint": {
        "image": "lbtest/hello:${version}", "variables": {"GREETING": "hi"}},
        "parameters": [{"name": "version", "default": "v1", "values": ["v1", "v2"]},
                       {"name": "REGION", "required": True}]})
    admin.post("/templates", {"name": "retired", "blueprint": {"image": "lbtest/hello:v1"}})
    admin.post("/templates/retired/disable")
    face = Face(admin, key(admin, "deployments:write"))
    reader = Face(admin, key(admin, "deployments:read"))
    before = snapshot(cp)
    r = face("POST", "", {"template": "hello"})
    assert r.status_code == 400 and r.json() == {"error": "missing required parameter REGION"}
    for template in ("nothing-like-it", "retired"):
        r = face("POST", "", {"template": template, "envVars": {"REGION": "eu"}})
        assert r.status_code == 404 and r.json() == {"error": f"template {template} not found"}
    assert face("POST", "", {"template": "hello", "envVars": {
        "REGION": "eu", "version": "v9"}}).status_code == 400
    assert reader("POST", "", {"template": "hello", "envVars": {"REGION": "eu"}}
                  ).status_code == 403
    assert snapshot(cp) == before

    r = face("POST", "", {"template": "hello", "envVars": {"REGION": "eu", "version": "v2"},
                          "visibility": "public"})
    assert r.status_code == 201, r.text
    created = r.json()
    name = created["name"]
    assert (created["template"], created["status"], created["visibility"]) == (
        "hello", "Pending", "public")
    assert face("GET", "/config", params={"name": name}).json()["configData"] == {
        "GREETING": "hi", "REGION": "eu", "version": "v2"}
    native = admin.get("/hosted-deployments")["items"][0]
    assert native["name"] == name and native["template"] == "hello"
    resource = admin.get("/resources")["items"][0]
    source = admin.get(f"/resources/{resource['id']}")["source"]
    assert (source["imageName"], source["imageTag"]) == ("lbtest/hello", "v2")

    assert face("GET", "/auto-update", params={"name": name}).json() == {
        "enabled": False, "strategy": "rolling"}
    for bad in ({"deployment_name": name}, {"deployment_name": name, "enabled": True,
                                            "strategy": "sideways"}):
        assert face("PUT", "/auto-update", bad).status_code == 400
    r = face("PUT", "/auto-update", {"deployment_name": name, "enabled": True,
                                     "strategy": "recreate"})
    assert r.status_code == 200 and r.json() == {"enabled": True, "strategy": "recreate"}
    assert face("GET", "/auto-update", params={"name": name}).json()["strategy"] == "recreate"
    face("PUT", "/config", {"deployment_name": name, "configData": {"REGION": "us"}})

    history = face("GET", f"/{name}/history").json()["revisions"]
    assert [(h["revision"], h["type"]) for h in history] == [
        (1, "created"), (2, "auto-update"), (3, "config")]
    assert all(h["user"] == "admin@example.com" for h in history)
    assert history[2]["details"]["changed"] == ["GREETING", "REGION", "version"]
    assert history[0]["details"]["template"] == "hello"
    assert face("GET", "/nothere/history").status_code == 404
    assert face("GET", "/nothere/events").status_code == 404
