"""What a hostile stranger, tenant or web page could do, refused at the HTTP level (issue #16):
the bootstrap status, sources that would read the server's disk or its internal services,
variables a process cannot hold, compose keys launchbay does not run, bodies that would
exhaust the parser, cross-site requests with the session cookie, and the headers every page
carries. The races (first admin, login throttling) are in test_security_races.py; what needs
the Docker engine is in engine/test_tenancy.py."""

from __future__ import annotations

import io
import json
import tarfile

import pytest
from fastapi.testclient import TestClient

from launchbay.http.app import create_app
from launchbay.operations import CATALOG
from launchbay.settings import Settings

from support import ADMIN_EMAIL, ADMIN_PASSWORD, add_member, snapshot


@pytest.fixture
def settings(tmp_path, database_url) -> Settings:
    """A real install's defaults: no folder of the server is a repository, no private network
    is fetched from, no image is shared."""
    return Settings(data_dir=tmp_path / "data", database_url=database_url, edge_enabled=False,
                    shipped_templates=False, git_local_folders=[], git_allowed_networks=[],
                    shared_images=[])


@pytest.fixture
def app_ids(admin):
    project = admin.post("/projects", {"name": "shop"})["id"]
    env = admin.post("/environments", {"projectId": project, "name": "prod"})["id"]
    resource = admin.post("/resources", {
        "projectId": project, "environmentId": env, "name": "web",
        "source": {"kind": "docker-image", "imageName": "lbtest/hello", "imageTag": "v1"}})["id"]
    return {"project": project, "env": env, "resource": resource}


def refused(response, field: str | None = None, status: int = 400) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "code", "details"}, body
    if field:
        assert field in [d["field"] for d in body["details"]], body
    return body


def archive(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    return buf.getvalue()


# -- 10: who the first admin is -----------------------------------------------------------------

def test_the_first_admins_address_is_only_for_the_instances_operators(client, admin):
    anonymous = client.get("/api/bootstrap/auth/status").json()
    assert anonymous["bootstrapRequired"] is False and anonymous["firstAdminEmail"] is None
    assert admin.get("/bootstrap/auth/status")["firstAdminEmail"] == ADMIN_EMAIL
    developer = add_member(admin, admin.org_id, "dev@example.com", "developer")
    assert developer.get("/bootstrap/auth/status")["firstAdminEmail"] is None
    stranger = client.post("/api/bootstrap/auth/first-admin",
                           json={"email": "late@example.com", "password": "late-password"})
    assert stranger.status_code == 409 and stranger.json()["code"] == "bootstrap_complete"


# -- 2 and 13: sources ---------------------------------------------------------------------------

def test_a_source_never_names_a_path_of_the_server_or_a_git_option(admin, app_ids, cp,
                                                                    tmp_path):
    api = admin
    resource = app_ids["resource"]
    before = snapshot(cp)
    for locator in ["/etc", str(tmp_path), "file:///etc/passwd", "-oProxyCommand=touch /tmp/x",
                    "--upload-pack=touch /tmp/x", "ext::sh -c id", "relative/folder",
                    "ssh://-oProxyCommand=x@host/r", "https://host/r.git\n--config"]:
        refused(api.request("POST", f"/resources/{resource}/source", {
            "source": {"kind": "git", "locator": locator}}), "source.locator")
        refused(api.request("POST", "/resources", {
            "projectId": app_ids["project"], "environmentId": app_ids["env"], "name": "x",
            "source": {"kind": "git", "locator": locator}}), "source.locator")
    for ref in ["--upload-pack=touch /tmp/x", "-b", "main\n--x", "a b"]:
        refused(api.request("POST", f"/resources/{resource}/source", {
            "source": {"kind": "git", "locator": "https://example.com/r.git", "gitRef": ref}}),
            "source.gitRef")
    # An archive source names an upload of this resource, by its id: never a file.
    for locator in ["/etc/passwd", "../../sources/other.tar.gz", "a" * 40]:
        response = api.request("POST", f"/resources/{resource}/source", {
            "source": {"kind": "archive", "locator": locator}})
        assert response.status_code == 400, response.text
    assert snapshot(cp) == before


def test_an_archive_source_is_an_upload_of_the_same_resource(admin, app_ids, cp):
    uploaded = admin.request("POST", f"/resources/{app_ids['resource']}/source/archive",
                             content=archive({"index.html": "mine\n"}),
                             headers={"Content-Type": "application/gzip"})
    assert uploaded.status_code == 201, uploaded.text
    archive_id = uploaded.json()["archiveId"]
    shown = admin.get(f"/resources/{app_ids['resource']}")["source"]
    assert shown["locator"] == archive_id and "/" not in shown["locator"]
    # Another resource (of the same organization, even) cannot point at that upload.
    other = admin.post("/resources", {"projectId": app_ids["project"],
                                      "environmentId": app_ids["env"], "name": "other"})["id"]
    body = refused(admin.request("POST", f"/resources/{other}/source", {
        "source": {"kind": "archive", "locator": archive_id}}))
    assert body["code"] == "archive_not_found"
    # Its own resource can name it again.
    admin.post(f"/resources/{app_ids['resource']}/source", {
        "source": {"kind": "archive", "locator": archive_id}})


# -- 11 and 14: variables ------------------------------------------------------------------------

def test_variables_with_control_characters_are_refused_at_input(admin, app_ids, cp, client):
    before = snapshot(cp)
    resource, env = app_ids["resource"], app_ids["env"]
    for value in ["a\x00b", "bell\x07", "esc\x1b[31m", "del\x7f"]:
        refused(admin.request("POST", f"/resources/{resource}/variables",
                              {"key": "A", "value": value}), "value")
        refused(admin.request("POST", f"/environments/{env}/variables",
                              {"key": "A", "value": value}), "value")
        refused(admin.request("POST", f"/resources/{resource}/secrets",
                              {"key": "S", "value": value}), "value")
    body = refused(admin.request("POST", f"/resources/{resource}/variables/import",
                                 {"content": "GOOD=1\nBAD=a\x07b\n"}))
    assert "line 2" in body["details"][0]["message"] and "BAD" in body["details"][0]["message"]
    r = client.post("/compat/dployr/deployments", headers={
        "Authorization": f"Bearer {admin.token}"}, json={
        "name": "nul", "user_id": "u", "source": "image", "runtime": {"type": "docker"},
        "image": "lbtest/hello:v1", "env_vars": {"A": "x\x1by"}})
    assert r.status_code == 422 and "control character" in r.json()["details"][0]["message"]
    assert snapshot(cp) == before
    # Tabs and line breaks are values a process can hold (a PEM key, say).
    admin.post(f"/resources/{resource}/variables", {"key": "PEM", "value": "a\tb\r\nc\n"})


def test_a_long_value_in_an_env_import_is_named_for_what_it_is(admin, app_ids, cp):
    before = snapshot(cp)
    body = refused(admin.request("POST", f"/resources/{app_ids['resource']}/variables/import",
                                 {"content": "SHORT=1\nLONG=" + "x" * 70000 + "\n"}))
    message = body["details"][0]["message"]
    assert "line 2" in message and "LONG" in message and "65536" in message
    assert "invalid key" not in message
    assert snapshot(cp) == before


# -- 12: compose keys ----------------------------------------------------------------------------

@pytest.mark.parametrize("service, key", [
    ("cap_add: [SYS_ADMIN]", "cap_add"), ("security_opt: ['seccomp:unconfined']", "security_opt"),
    ("ipc: host", "ipc"), ("userns_mode: host", "userns_mode"),
    ("cgroup_parent: /", "cgroup_parent"), ("sysctls: {net.core.somaxconn: 1024}", "sysctls"),
    ("volumes: ['data:/data']", "driver_opts"),
])
def test_compose_keys_launchbay_does_not_run_are_refused_with_a_fix(admin, app_ids, service,
                                                                     key):
    volumes = "volumes:\n  data:\n    driver_opts: {type: none, o: bind, device: /etc}\n" \
        if key == "driver_opts" else ""
    compose = f"services:\n  web:\n    image: lbtest/hello:v1\n    {service}\n{volumes}"
    resource = app_ids["resource"]
    admin.post(f"/resources/{resource}/runtime-profile",
               {"runtimeProfile": {"strategy": "docker-compose"}})
    uploaded = admin.request("POST", f"/resources/{resource}/source/archive",
                             content=archive({"docker-compose.yml": compose}),
                             headers={"Content-Type": "application/gzip"})
    assert uploaded.status_code == 201, uploaded.text
    plan = admin.get("/deployments/plan", params={
        "projectId": app_ids["project"], "environmentId": app_ids["env"],
        "resourceId": resource, "serverId": admin.get("/servers")["items"][0]["id"]})
    assert plan["readiness"]["ready"] is False
    assert any(p["code"] == "compose-unsupported" and key in p["message"] and p["fix"]
               for p in plan["unsupportedReasons"]), plan["unsupportedReasons"]


# -- 7: bodies -----------------------------------------------------------------------------------

DEEP = b"[" * 5000 + b"]" * 5000


def test_deep_or_huge_bodies_are_refused_with_the_documented_shape_on_every_face(client,
                                                                               admin, cp):
    before = snapshot(cp)
    for path in ["/api/auth/login", "/api/bootstrap/auth/first-admin"]:
        nested = {"email": "a", "password": "b", "x": [0]}
        for _ in range(80):
            nested["x"] = [nested["x"]]
        for raw in [DEEP, b'{"a":' * 100 + b"1" + b"}" * 100, json.dumps(nested).encode()]:
            body = refused(client.post(path, content=raw,
                                       headers={"Content-Type": "application/json"}))
            assert body["code"] == "malformed_json"
    # Anonymous, on the other faces too: their own error shapes, no 500.
    r = client.post("/compat/dployr/system/register", content=DEEP)
    assert r.status_code == 400 and set(r.json()) >= {"error", "code"}
    r = client.post("/compat/shipyard/api/deployments", content=DEEP)
    assert r.status_code == 400 and set(r.json()) == {"error"}
    r = client.post("/compat/dployr/deployments", content=DEEP,
                    headers={"Authorization": f"Bearer {admin.token}"})
    assert r.status_code == 400
    # Too large: refused before it is all read.
    huge = b'{"name": "' + b"x" * (5 * 1024 * 1024) + b'"}'
    body = refused(admin.request("POST", "/projects", content=huge,
                                 headers={"Content-Type": "application/json"}), status=413)
    assert body["code"] == "payload_too_large"
    r = client.post("/compat/shipyard/api/deployments/deploy-image", content=huge,
                    headers={"Authorization": f"Bearer {admin.token}"})
    assert r.status_code == 413 and set(r.json()) == {"error"}
    assert snapshot(cp) == before


def test_malformed_input_never_answers_500(client, admin, app_ids):
    auth = {"Authorization": f"Bearer {admin.token}"}
    for method, path, raw in [
            ("POST", "/api/projects", b'{"name": "\xff\xfe"}'),
            ("POST", "/api/projects", b'{"name": "a\\ud800"}'),
            ("POST", "/api/projects", b'{"name": ' + b"9" * 5000 + b"}"),
            ("POST", "/api/projects", b'{"name": NaN}'),
            ("GET", "/api/projects/%00", b""),
            ("GET", "/api/resources?limit=99999999999999999999999", b""),
            ("POST", f"/api/resources/{app_ids['resource']}/variables", b'{"key": {"a": 1}}'),
            ("POST", "/api/auth/login", b'{"email": "\\u0000", "password": "x"}')]:
        r = client.request(method, path, content=raw or None, headers={
            **auth, "Content-Type": "application/json"})
        assert 400 <= r.status_code < 500, (path, raw, r.status_code, r.text)
        assert "Traceback" not in r.text


# -- 8: cross-site requests ------------------------------------------------------------------------

@pytest.fixture
def browser(cp, admin) -> TestClient:
    """A browser signed in to the API with the session cookie (and no Authorization)."""
    signed_in = TestClient(create_app(control_plane=cp))
    r = signed_in.post("/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert r.status_code == 200 and signed_in.cookies.get("launchbay_session")
    return signed_in


def test_the_session_cookie_alone_cannot_change_state_from_another_site(browser, admin, cp):
    before = snapshot(cp)
    payload = json.dumps({"name": "csrf"}).encode()
    # A form of another site: text/plain (no preflight), with or without its Origin.
    for headers in [{"Content-Type": "text/plain"},
                    {"Content-Type": "text/plain", "Origin": "https://evil.example"},
                    {"Content-Type": "application/x-www-form-urlencoded"},
                    {"Content-Type": "application/json", "Origin": "https://evil.example"},
                    {"Content-Type": "application/json", "Origin": "null"},
                    {"Content-Type": "application/json",
                     "Referer": "https://app.tenant.localhost/page"}]:
        r = browser.post("/api/projects", content=payload, headers=headers)
        assert r.status_code == 403 and r.json()["code"] == "csrf_refused", (headers, r.text)
    assert snapshot(cp) == before
    # Reads still work with the cookie; launchbay's own pages send JSON from its origin.
    assert browser.get("/api/projects").status_code == 200
    ok = browser.post("/api/projects", content=payload, headers={
        "Content-Type": "application/json", "Origin": "http://testserver"})
    assert ok.status_code == 201, ok.text
    # A bearer credential is never sent by a browser on its own: no such checks.
    r = admin.request("POST", "/projects", content=json.dumps({"name": "api"}).encode(),
                      headers={"Content-Type": "text/plain"})
    assert r.status_code == 201


def test_no_face_changes_state_on_a_get_authenticated_by_the_cookie(browser, admin, cp):
    admin.post("/templates", {"name": "lab", "blueprint": {"image": "lbtest/hello:v1"}})
    before = snapshot(cp)
    # A top-level navigation (SameSite=Lax sends the cookie) to Dploy's create-or-return.
    for path in ["/compat/dploy/run/lab", "/compat/dploy/api/run/lab"]:
        r = browser.get(path)
        assert r.status_code == 403 and set(r.json()) == {"error"}, r.text
    assert snapshot(cp) == before
    # With a bearer token, the seed's behaviour: the instance is made.
    r = admin.client.get("/compat/dploy/run/lab",
                         headers={"Authorization": f"Bearer {admin.token}"})
    assert r.status_code == 200 and r.json()["uuid"], r.text
    # Every GET of every face runs a read.
    app = create_app(control_plane=cp)
    for face in [app, *app.state.faces.values()]:
        for route in face.routes:
            if "GET" in getattr(route, "methods", ()) and route.name in CATALOG:
                assert not CATALOG[route.name].changes_as_caller, route.path


def test_console_forms_from_another_origin_are_refused(cp, admin):
    browser = TestClient(create_app(control_plane=cp), follow_redirects=False)
    page = browser.get("/login")
    csrf = browser.cookies.get("lb_csrf")
    assert page.status_code == 200 and csrf
    r = browser.post("/login", data={"csrf": csrf, "email": ADMIN_EMAIL,
                                     "password": ADMIN_PASSWORD},
                     headers={"Origin": "https://sibling.localhost"})
    assert r.status_code == 403
    r = browser.post("/login", data={"csrf": csrf, "email": ADMIN_EMAIL,
                                     "password": ADMIN_PASSWORD},
                     headers={"Origin": "http://testserver"})
    assert r.status_code == 303


# -- 9: headers ----------------------------------------------------------------------------------

def test_every_page_carries_the_security_headers(client, admin):
    for path in ["/login", "/api/projects", "/api/openapi.json", "/health", "/nope",
                 "/compat/dploy/health", "/compat/shipyard/api/deployments"]:
        r = client.get(path, headers={"Authorization": f"Bearer {admin.token}"},
                       follow_redirects=False)
        assert r.headers["x-content-type-options"] == "nosniff", path
        assert r.headers["x-frame-options"] == "DENY", path
        assert r.headers["referrer-policy"] == "same-origin", path
        policy = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "unsafe-inline" not in policy, path
        assert "server" not in r.headers, path
    docs = client.get("/api/docs")
    script = [p for p in docs.headers["content-security-policy"].split("; ")
              if p.startswith("script-src")][0]
    assert "'sha256-" in script and "unsafe-inline" not in script

