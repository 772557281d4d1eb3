"""The acceptance walk of the core over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import text

from support import ADMIN_EMAIL, ADMIN_PASSWORD, Api


def test_bootstrap_login_project_environment_secret_clone_diff(client, cp):
    status = client.get("/api/bootstrap/auth/status").json()
    assert status["bootstrapRequired"] is True and status["firstAdminConfigured"] is False

    created = client.post("/api/bootstrap/auth/first-admin",
                          json={"email": ADMIN_EMAIL, "displayName": "Ada"})
    assert created.status_code == 201
    first = created.json()
    assert first["created"] is True and len(first["generatedPassword"]) >= 16
    again = client.post("/api/bootstrap/auth/first-admin", json={"email": "x@example.com"})
    assert again.status_code == 409 and again.json()["code"] == "bootstrap_complete"
    assert client.get("/api/bootstrap/auth/status").json()["bootstrapRequired"] is False

    response = client.post("/api/auth/login",
                           json={"email": ADMIN_EMAIL, "password": first["generatedPassword"]})
    assert response.status_code == 200
    session = response.json()
    assert session["token"] and session["sessionId"] and session["expiresAt"].endswith("Z")
    cookie = response.headers["set-cookie"]
    assert "launchbay_session=" in cookie and "HttpOnly" in cookie
    api = Api(client, session["token"])

    project_id = api.post("/projects", {"name": "Web Shop"})["id"]
    project = api.get(f"/projects/{project_id}")
    assert project["slug"] == "web-shop" and project["organizationId"] == first["organizationId"]

    env_id = api.post("/environments", {"projectId": project_id, "name": "production",
                                        "kind": "production"})["id"]
    assert api.post(f"/environments/{env_id}/variables", {
        "key": "DATABASE_PASSWORD", "value": "s3cr3t-plaintext", "kind": "secret",
        "exposure": "runtime"}) is None
    api.post(f"/environments/{env_id}/variables",
             {"key": "LOG_LEVEL", "value": "info", "kind": "plain-config", "exposure": "runtime"})
    variables = {v["key"]: v for v in api.get(f"/environments/{env_id}")["maskedVariables"]}
    assert variables["DATABASE_PASSWORD"]["value"] == "****"
    assert variables["DATABASE_PASSWORD"]["isSecret"] is True
    assert variables["LOG_LEVEL"]["value"] == "info"

    with cp.engine.connect() as conn:
        stored = conn.execute(text("SELECT value FROM environment_variables "
                                   "WHERE key = 'DATABASE_PASSWORD'")).scalar_one()
        dump = " ".join(str(v) for row in conn.execute(
            text("SELECT * FROM environment_variables")) for v in row)
        audit = " ".join(str(v) for row in conn.execute(text("SELECT * FROM audit_events"))
                         for v in row)
    assert "s3cr3t-plaintext" not in dump and "s3cr3t-plaintext" not in audit
    assert cp.ops.secrets.decrypt(stored) == "s3cr3t-plaintext"

    clone_id = api.post(f"/environments/{env_id}/clone", {"targetName": "staging"})["id"]
    clone = api.get(f"/environments/{clone_id}")
    assert clone["parentEnvironmentId"] == env_id and clone["name"] == "staging"
    diff = api.get(f"/environments/{env_id}/diff/{clone_id}")
    assert {d["key"] for d in diff} == {"DATABASE_PASSWORD", "LOG_LEVEL"}
    assert all(d["change"] == "unchanged" for d in diff)
    assert all(d["left"]["value"] == "****" for d in diff if d["key"] == "DATABASE_PASSWORD")

    # The trail: every step above left an audit event.
    events = {e["eventType"] for e in api.get("/audit-events", params={"limit": 100})["items"]}
    assert {"bootstrap.first-admin-created", "session.created", "project.created",
            "environment.created", "environment.variable-set", "environment.cloned"} <= events


def test_password_given_at_bootstrap_is_used(client):
    client.post("/api/bootstrap/auth/first-admin",
                json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    ok = client.post("/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert ok.status_code == 200


def test_cookie_authenticates_and_logout_ends_the_session(client, admin):
    client.cookies.clear()
    response = client.post("/api/auth/login",
                           json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    token = response.json()["token"]
    assert client.get("/api/projects").status_code == 200  # the cookie alone
    # A change with the cookie is sent as JSON (as launchbay's own pages do).
    assert client.post("/api/auth/logout", json={}).status_code == 200
    client.cookies.clear()
    dead = client.get("/api/projects", headers={"Authorization": f"Bearer {token}"})
    assert dead.status_code == 401 and dead.json()["code"] == "invalid_token"


def test_health_ready_and_openapi(client):
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json()["migrations"] == "current"
    doc = client.get("/api/openapi.json").json()
    assert {"/api/projects", "/api/environments/{environmentId}/clone"} <= set(doc["paths"])
    body = doc["paths"]["/api/projects"]["post"]["requestBody"]["content"]["application/json"]
    name = body["schema"]["$ref"].rsplit("/", 1)[1]
    assert "name" in doc["components"]["schemas"][name]["properties"]
    assert client.get("/api/docs").status_code == 200


def test_the_api_docs_page_works_offline(client):
    """Swagger UI comes from launchbay itself, not a CDN: every script, style and icon the
    page loads is served here, and the page's policy allows nothing from elsewhere."""
    import re

    page = client.get("/api/docs")
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert len(assets) >= 3 and all(a.startswith("/api/docs/") for a in assets), assets
    for asset in assets:
        served = client.get(asset)
        assert served.status_code == 200 and len(served.content) > 500, asset
    bundle = client.get("/api/docs/swagger-ui-bundle.js").text
    assert re.search(r'"5\.\d+\.\d+"', bundle)  # Swagger UI 5 reads OpenAPI 3.1
    assert "http" not in page.headers["content-security-policy"]
    assert client.get("/api/docs/secrets.json").status_code == 404


def test_openapi_documents_each_operation_with_its_own_models(client):
    """Models of the same class name in two families (servers' and deployments' `PruneOut`)
    each keep a component of their own: no answer is documented with another's fields."""
    from pydantic import RootModel

    from launchbay.operations import CATALOG

    doc = client.get("/api/openapi.json").json()
    components = doc["components"]["schemas"]
    checked = 0
    for entry in (e for ops in doc["paths"].values() for e in ops.values()):
        op = CATALOG.get(entry.get("operationId"))
        if op is None or op.output is None or issubclass(op.output, RootModel):
            continue
        (answer,) = entry["responses"].values()
        ref = answer["content"]["application/json"]["schema"]["$ref"]
        shown = set(components[ref.rsplit("/", 1)[1]].get("properties", {}))
        assert shown == {f.alias or n for n, f in op.output.model_fields.items()}, op.key
        if op.input.model_fields:
            checked += 1
    assert checked > 100
    prune = doc["paths"]["/api/servers/{serverId}/capacity/prune"]["post"]
    assert "servers" in next(iter(prune["responses"].values()))["content"][
        "application/json"]["schema"]["$ref"]


def test_an_idempotency_key_changes_state_once_and_answers_the_same(admin, cp):
    """configure-source with the same key twice: one change, one audit event, one answer;
    the same key with another request is refused and changes nothing."""
    project = admin.post("/projects", {"name": "Keys"})["id"]
    env = admin.post("/environments", {"projectId": project, "name": "prod"})["id"]
    rid = admin.post("/resources", {"projectId": project, "environmentId": env,
                                    "name": "web"})["id"]
    body = {"source": {"kind": "docker-image", "imageName": "lbtest/hello", "imageTag": "v1"},
            "idempotencyKey": "configure-source-web-1"}

    def events() -> int:
        return len(admin.get("/audit-events", params={
            "eventType": "resource.source-configured"})["items"])

    assert admin.post(f"/resources/{rid}/source", body) == {"id": rid}
    admin.post(f"/resources/{rid}/source", {"source": {"kind": "docker-image",
                                                       "imageName": "lbtest/other"}})
    assert admin.post(f"/resources/{rid}/source", body) == {"id": rid}  # a retry, answered
    assert events() == 2
    assert admin.get(f"/resources/{rid}")["source"]["imageName"] == "lbtest/other"
    reused = admin.request("POST", f"/resources/{rid}/source",
                           {**body, "source": {**body["source"], "imageTag": "v2"}})
    assert reused.status_code == 409 and reused.json()["code"] == "idempotency_key_reused"
    assert events() == 2 and admin.get(f"/resources/{rid}")["source"]["imageName"] == \
        "lbtest/other"
