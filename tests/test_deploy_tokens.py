"""Deploy tokens: one resource's deploys and nothing else, shown once, rotated and revoked
(no engine runs here: a deployment made stays pending)."""

from __future__ import annotations

from support import Api, make_app


def test_a_deploy_token_reaches_only_its_resource_and_its_commands(admin: Api, client) -> None:
    mine = make_app(admin, "lbtest/hello:v1", name="web")
    other = admin.post("/resources", {
        "projectId": mine["project"], "environmentId": mine["env"], "name": "api",
        "source": {"kind": "docker-image", "imageName": "lbtest/hello", "imageTag": "v1"},
        "networkProfile": {"internalPort": 8080}})["id"]
    empty = admin.request("POST", "/deploy-tokens", {"displayName": "ci", "scope": {
        "workflowCommands": ["deploy"]}})
    assert empty.status_code == 400  # names no target
    made = admin.post("/deploy-tokens", {"displayName": "ci", "scope": {
        "resourceIds": [mine["resource"]], "workflowCommands": ["deploy"]}})
    secret = made["token"]
    assert made["status"] == "active" and made["secretSuffix"] == secret[-4:]
    assert secret not in str(admin.get("/deploy-tokens")) and secret not in str(
        admin.get(f"/deploy-tokens/{made['tokenId']}"))
    assert all(t["tokenId"] != made["tokenId"] for t in admin.get("/account/tokens")["items"])
    ci = Api(client, secret)
    body = {"projectId": mine["project"], "environmentId": mine["env"]}
    deployment = ci.post("/deployments", {**body, "resourceId": mine["resource"]})["id"]
    assert ci.get(f"/deployments/{deployment}")["deployment"]["status"] == "created"
    assert ci.get(f"/resources/{mine['resource']}")["resource"]["id"] == mine["resource"]
    for method, path, data in (
            ("POST", "/deployments", {**body, "resourceId": other}),
            ("GET", f"/resources/{other}", None),
            ("GET", "/resources", None),
            ("GET", "/projects", None),
            ("POST", "/projects", {"name": "mine"}),
            ("POST", f"/deployments/{deployment}/rollback", {}),
            ("POST", f"/resources/{mine['resource']}/variables", {"key": "A", "value": "1"}),
            ("DELETE", f"/resources/{mine['resource']}",
             {"confirmation": {"resourceSlug": "web"}}),
            ("GET", "/deploy-tokens", None)):
        refused = ci.request(method, path, data)
        assert refused.status_code == 403, (method, path, refused.text)
    used = admin.get(f"/deploy-tokens/{made['tokenId']}")
    assert used["lastUsedAt"] and used["lastUsedAddress"] == "testclient"  # TestClient's
    # Only the Authorization header carries a token: in the session cookie it is nobody.
    client.cookies.set("launchbay_session", secret)
    assert client.get(f"/api/resources/{mine['resource']}").status_code == 401
    client.cookies.clear()
    rotated = admin.post(f"/deploy-tokens/{made['tokenId']}/rotate",
                         {"confirmation": {"tokenId": made["tokenId"]}})
    assert ci.request("GET", f"/resources/{mine['resource']}").status_code == 401
    again = Api(client, rotated["token"])
    assert again.get(f"/resources/{mine['resource']}")["resource"]["id"] == mine["resource"]
    admin.post(f"/deploy-tokens/{made['tokenId']}/revoke", {})
    assert again.request("GET", f"/resources/{mine['resource']}").status_code == 401
    listed = admin.get("/deploy-tokens", params={"status": "revoked"})["items"]
    assert [t["tokenId"] for t in listed] == [made["tokenId"]]
    events = {e["eventType"] for e in admin.get("/audit-events", params={"limit": 100})["items"]}
    assert {"deploy-token.created", "deploy-token.rotated", "deploy-token.revoked",
            "deployment.created"} <= events
