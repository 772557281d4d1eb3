"""The web console over HTTP, without a browser (tests/engine/test_console_browser.py drives
Chromium): first-run setup, sign-in, CSRF, forms that show the operation's errors next to
their fields, secrets masked, tokens shown once, and pages that never show another
organization's data whatever the URL says."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from launchbay.http.app import create_app

from support import ADMIN_EMAIL, ADMIN_PASSWORD, add_member, make_app, snapshot


class Browser:
    """A person's browser: its own cookies, and the CSRF token of the last page it saw."""

    def __init__(self, cp: Any):
        self.http = TestClient(create_app(control_plane=cp))
        self.csrf = ""

    def get(self, path: str, **kw: Any) -> Any:
        page = self.http.get(path, **kw)
        if found := re.search(r'name="csrf" value="([^"]+)"', page.text):
            self.csrf = found.group(1)
        return page

    def post(self, path: str, data: dict[str, str] | None = None, csrf: bool = True) -> Any:
        form = {**(data or {}), **({"csrf": self.csrf} if csrf else {})}
        return self.http.post(path, data=form, follow_redirects=False)

    def sign_in(self, email: str, password: str) -> Browser:
        self.get("/login")
        assert self.post("/login", {"email": email, "password": password}).status_code == 303
        return self


def errors(page: Any) -> dict[str, str]:
    """The error shown next to each field (by the field's name; "" for the whole form)."""
    found = {m.group(1): m.group(2) for m in re.finditer(
        r'<p class="error" id="e-([A-Za-z]+)" role="alert">([^<]*)</p>', page.text)}
    if whole := re.search(r'<p class="error" role="alert" id="form-error">([^<]*)</p>',
                          page.text):
        found[""] = whole.group(1)
    return found


def test_first_run_setup_signs_the_first_admin_in(cp):
    browser = Browser(cp)
    assert browser.get("/", follow_redirects=False).headers["location"] == "/setup"
    assert browser.get("/projects", follow_redirects=False).headers["location"] == "/setup"
    browser.get("/setup")
    before = snapshot(cp)
    refused = browser.post("/setup", {"email": "first@example.com", "password": "long-enough-1",
                                      "confirm": "something-else"})
    assert refused.status_code == 400
    assert errors(refused) == {"confirm": "the two passwords differ"}
    assert 'value="first@example.com"' in refused.text  # what was typed stays
    assert snapshot(cp) == before
    done = browser.post("/setup", {"email": "first@example.com", "password": "long-enough-1",
                                   "confirm": "long-enough-1", "organizationName": "Acme"})
    assert done.status_code == 303 and done.headers["location"] == "/projects"
    projects = browser.get("/projects")
    assert projects.status_code == 200 and "first@example.com" in projects.text
    assert "Acme" in projects.text
    assert browser.get("/setup", follow_redirects=False).headers["location"] == "/login"

    assert browser.post("/logout").headers["location"] == "/login"
    assert browser.get("/projects", follow_redirects=False).headers["location"] == "/login"
    wrong = browser.post("/login", {"email": "first@example.com", "password": "nope-nope-1"})
    assert wrong.status_code == 401
    assert errors(wrong) == {"password": "invalid email or password"}


def test_forms_check_csrf_and_show_the_api_errors_next_to_their_fields(admin, cp):
    browser = Browser(cp).sign_in(ADMIN_EMAIL, ADMIN_PASSWORD)
    browser.get("/projects")
    before = snapshot(cp)
    forged = browser.post("/projects", {"name": "forged"}, csrf=False)
    assert forged.status_code == 403 and "reload the page" in forged.text
    other = browser.http.post("/projects", data={"name": "forged", "csrf": "guessed"})
    assert other.status_code == 403
    refused = browser.post("/projects", {"name": "", "description": "kept as typed"})
    assert refused.status_code == 400
    assert errors(refused) == {"name": "String should have at least 1 character"}
    assert 'aria-invalid="true" aria-describedby="e-name"' in refused.text
    assert 'value="kept as typed"' in refused.text
    assert snapshot(cp) == before

    project = browser.post("/projects", {"name": "Web Shop"}).headers["location"]
    browser.get(project)
    assert browser.post(f"{project}/environments",
                        {"name": "production", "kind": "production"}).status_code == 303
    env = re.search(r'option value="(env_[^"]+)"', browser.get(project).text).group(1)
    app = {"name": "web", "environmentId": env, "image": "lbtest/hello:v1", "port": "x"}
    assert errors(browser.post(f"{project}/apps", app)) == {
        "port": "the port the app listens on, such as 8080"}
    assert errors(browser.post(f"{project}/apps", {**app, "port": "80", "repository": "/x"})) \
        == {"repository": "an image or a repository, not both"}
    built = browser.post(f"{project}/apps", {**app, "name": "api", "image": "", "port": "80",
                                             "repository": "https://git.example.com/api.git",
                                             "ref": "main"}).headers["location"]
    assert "https://git.example.com/api.git" in browser.get(built).text  # built from source
    resource = browser.post(f"{project}/apps", {**app, "port": "8080"}).headers["location"]
    assert resource.startswith("/resources/res_")

    browser.get(resource)
    saved = browser.post(f"{resource}/variables", {"key": "API_KEY", "value": "hunter2-xyz",
                                                   "secret": "1"})
    assert saved.status_code == 303
    page = browser.get(resource)
    assert "API_KEY" in page.text and "hunter2-xyz" not in page.text  # masked after save
    assert errors(browser.post(f"{resource}/variables", {"key": "9", "value": "v"}))["key"]

    added = browser.post(f"{resource}/domains", {"domainName": "shop.example.com",
                                                 "tlsMode": "auto"})
    assert added.status_code == 303
    assert "https://shop.example.com/" in browser.get(project).text  # the app's URLs
    # Its row says where DNS and the certificate stand, not just "active".
    row = re.search(r'<tr class="domain"><td>shop.example.com</td>(.*?)</tr>',
                    browser.get(resource).text, re.S).group(1)
    dns, certificate, _ = re.findall(r"<td>(.*?)</td>", row, re.S)
    assert "badge-pending" in dns
    assert re.search(r'class="badge badge-[a-z-]+">[a-z-]+</span> <small>auto', certificate)
    deployed = browser.post(f"{resource}/deploy", {"image": ""}).headers["location"]
    shown = browser.get(deployed)
    assert "lbtest/hello:v1" in shown.text and "/events/stream" in shown.text
    row = re.search(rf'<a href="{deployed}">.*?</tr>', browser.get(resource).text, re.S)
    assert ADMIN_EMAIL in row.group(0) and "created" in row.group(0)  # who, and its status

    browser.get("/tokens")
    created = browser.post("/tokens", {"displayName": "ci", "scopes": "deployments:write"})
    secret = re.search(r'id="new-token">([^<]+)<', created.text).group(1)
    assert secret.startswith("lbt_")
    later = browser.get("/tokens").text
    assert secret not in later and "ci" in later  # shown once


@pytest.fixture
def foreign(admin, cp) -> dict[str, str]:
    """Organization A's objects (the admin's); Bob is the only member of organization B."""
    app = make_app(admin, "lbtest/hello:v1", name="alpha-web")
    project, resource = app["project"], app["resource"]
    deployment = admin.post("/deployments", {"projectId": project, "environmentId": app["env"],
                                             "resourceId": resource})["id"]
    work = admin.get("/operator-work")["items"][0]["id"]
    database = admin.post("/dependency-resources/import", {
        "kind": "redis", "projectId": project, "environmentId": app["env"],
        "name": "alpha-cache", "connectionUrl": "redis://default:pw@cache.example.com"})["id"]
    org_b = admin.post("/organizations", {"name": "Beta"})["organizationId"]
    add_member(admin, org_b, "bob@example.com", "admin")
    return {"project": project, "resource": resource, "deployment": deployment, "work": work,
            "database": database}


def test_pages_never_show_another_organizations_data(foreign, cp):
    bob = Browser(cp).sign_in("bob@example.com", "member-password-1")
    listed = bob.get("/projects")
    assert "alpha-web-project" not in listed.text and "Beta" in listed.text
    before = snapshot(cp)
    for path in (f"/projects/{foreign['project']}", f"/resources/{foreign['resource']}",
                 f"/resources/{foreign['resource']}/logs",
                 f"/deployments/{foreign['deployment']}",
                 f"/deployments/{foreign['deployment']}/status",
                 f"/databases/{foreign['database']}",
                 f"/api/deployments/{foreign['deployment']}/events/stream"):
        page = bob.get(path)
        assert page.status_code == 404, (path, page.status_code)
        assert "alpha" not in page.text, path
    for path, data in ((f"/resources/{foreign['resource']}/variables", {"key": "K", "value": "v"}),
                       (f"/resources/{foreign['resource']}/deploy", {"image": ""}),
                       (f"/resources/{foreign['resource']}/redeploy", {}),
                       (f"/resources/{foreign['resource']}/rollback", {}),
                       (f"/resources/{foreign['resource']}/domains", {"domainName": "x.test"}),
                       (f"/projects/{foreign['project']}/environments", {"name": "x"}),
                       (f"/deployments/{foreign['deployment']}/cancel", {}),
                       (f"/deployments/{foreign['deployment']}/rollback", {}),
                       (f"/work/{foreign['work']}/cancel", {}),
                       (f"/resources/{foreign['resource']}/runtime/stop", {}),
                       (f"/resources/{foreign['resource']}/delete", {"confirmName": "alpha-web"}),
                       (f"/projects/{foreign['project']}/delete",
                        {"confirmName": "alpha-web-project"}),
                       (f"/projects/{foreign['project']}/databases",
                        {"name": "x", "kind": "redis"}),
                       (f"/databases/{foreign['database']}/backups", {}),
                       (f"/databases/{foreign['database']}/bindings",
                        {"resourceId": foreign["resource"]}),
                       (f"/databases/{foreign['database']}/delete",
                        {"confirmName": "alpha-cache"})):
        refused = bob.post(path, data)
        assert refused.status_code == 404, (path, refused.status_code)
        assert "alpha" not in refused.text, path
    assert "alpha" not in bob.get("/work").text
    assert snapshot(cp) == before


def test_app_page_shows_the_variables_it_gets_and_deletes_ask_for_the_name(admin, cp):
    app = make_app(admin, "lbtest/hello:v1")
    env, resource = app["env"], app["resource"]
    for key, value, kind in (("LOG_LEVEL", "info", "plain-config"), ("DB_URL", "pg://s3cret",
                                                                      "secret")):
        admin.post(f"/environments/{env}/variables", {"key": key, "value": value, "kind": kind})
    admin.post(f"/resources/{resource}/variables", {"key": "LOG_LEVEL", "value": "debug"})
    browser = Browser(cp).sign_in(ADMIN_EMAIL, ADMIN_PASSWORD)
    page = browser.get(f"/resources/{resource}").text
    rows = {m.group(1): m.group(2) for m in re.finditer(
        r"<tr><td><code>([A-Z_]+)</code>.*?</td><td>(.*?)</td>", page, re.S)}
    assert "****" in rows["DB_URL"] and "s3cret" not in page  # the environment's, masked
    assert "debug" in rows["LOG_LEVEL"] and "info" not in rows["LOG_LEVEL"]
    assert "overrides the environment" in page
    logs = browser.get(f"/resources/{resource}/logs").text  # its breadcrumb names the project
    assert f'<a href="/projects/{app["project"]}">web-project</a>' in logs

    before = snapshot(cp)
    wrong = browser.post(f"/resources/{resource}/delete", {"confirmName": "wbe"})
    assert wrong.status_code == 400 and errors(wrong) == {"confirmName": "type web to delete it"}
    assert browser.post(f"/projects/{app['project']}/delete", {"confirmName": "x"}
                        ).status_code == 400
    assert snapshot(cp) == before
    gone = browser.post(f"/resources/{resource}/delete", {"confirmName": "web"})
    assert gone.status_code == 303 and gone.headers["location"] == f"/projects/{app['project']}"
    assert admin.request("GET", f"/resources/{resource}").status_code == 404

    other = admin.post("/resources", {"projectId": app["project"], "environmentId": env,
                                      "name": "api"})["id"]
    assert browser.post(f"/projects/{app['project']}/environments/{env}/delete",
                        {"confirmName": "production"}).status_code == 303
    assert admin.request("GET", f"/resources/{other}").status_code == 404
    admin.post("/environments", {"projectId": app["project"], "name": "staging"})
    assert browser.post(f"/projects/{app['project']}/delete",
                        {"confirmName": "web-project"}).headers["location"] == "/projects"
    assert admin.get("/projects")["items"] == []


def test_projects_page_shows_each_projects_apps_status_and_last_deploy(admin, cp):
    shop = make_app(admin, "lbtest/hello:v1", name="shop")
    admin.post("/projects", {"name": "empty"})
    deployment = admin.post("/deployments", {"projectId": shop["project"],
                                             "environmentId": shop["env"],
                                             "resourceId": shop["resource"]})["id"]
    page = Browser(cp).sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).get("/projects").text
    rows = {m.group(1): m.group(2) for m in re.finditer(
        r"<tr><td><a href=\"/projects/prj_\w+\"><strong>([\w-]+)</strong>(.*?)</tr>", page, re.S)}
    assert f'href="/resources/{shop["resource"]}">shop</a>' in rows["shop-project"]
    assert f'href="/deployments/{deployment}"' in rows["shop-project"]
    assert "badge-created" in rows["shop-project"]  # not deployed yet: its deployment waits
    assert "no app" in rows["empty"]


def test_environments_on_demand_from_templates_with_parameters(admin, cp):
    admin.post("/templates", {"name": "lab", "description": "A lab", "ttl": 3600,
                              "maxExtends": 1, "blueprint": {"image": "lbtest/hello:v1"},
                              "parameters": [{"name": "size", "values": ["S", "L"],
                                              "default": "S", "description": "Size"}]})
    browser = Browser(cp).sign_in(ADMIN_EMAIL, ADMIN_PASSWORD)
    page = browser.get("/instances")
    assert 'name="p.size"' in page.text and "A lab" in page.text
    refused = browser.post("/instances", {"template": "lab", "p.size": "XXL"})
    assert refused.status_code == 400
    assert errors(refused) == {"": "invalid value for parameter size"}
    assert browser.post("/instances", {"template": "lab", "p.size": "L"}).status_code == 303
    (mine,) = admin.get("/instances")["environments"]
    assert mine["name"] == "lab" and mine["uuid"] in browser.get("/instances").text
    assert browser.post("/instances/lab/extend").status_code == 303
    assert admin.get("/instances")["environments"][0]["extendCount"] == 1
    assert browser.post("/instances/lab/delete").status_code == 303
    assert admin.get("/instances")["environments"][0]["status"] == "Deleting"


def test_every_field_of_every_page_has_a_label_and_no_page_has_inline_script(admin, cp):
    browser = Browser(cp).sign_in(ADMIN_EMAIL, ADMIN_PASSWORD)
    project = browser.post("/projects", {"name": "p"}).headers["location"]
    browser.get(project)
    browser.post(f"{project}/environments", {"name": "production"})
    env = re.search(r'option value="(env_[^"]+)"', browser.get(project).text).group(1)
    resource = browser.post(f"{project}/apps", {"name": "web", "environmentId": env,
                                                "image": "lbtest/hello:v1", "port": "8080"})
    deployment = browser.post(f"{resource.headers['location']}/deploy").headers["location"]
    database = browser.post(f"{project}/databases", {"name": "db", "environmentId": env,
                                                     "kind": "redis"}).headers["location"]
    for path in ("/projects", project, resource.headers["location"], deployment, "/servers",
                 "/work", "/members", "/tokens", "/instances", database):
        page = browser.get(path).text
        labelled = set(re.findall(r'<label for="([^"]+)"', page))
        fields = [m.group(0) for m in re.finditer(r"<(input|select|textarea)\b[^>]*>", page)
                  if 'type="hidden"' not in m.group(0)]
        for field in fields:
            found = re.search(r'id="([^"]+)"', field)
            assert found and found.group(1) in labelled, (path, field)
        assert 'lang="en"' in page and '<main id="main">' in page
        # The Content-Security-Policy allows no inline script: none is needed.
        assert not re.search(r"<script(?![^>]*\bsrc=)", page), path
        assert not re.search(r"<[^>]+\son[a-z]+\s*=", page), path


def test_operator_work_can_be_canceled_and_retried(admin, cp):
    app = make_app(admin, "lbtest/hello:v1")
    admin.post("/domain-bindings", {"projectId": app["project"], "environmentId": app["env"],
                                    "resourceId": app["resource"],
                                    "domainName": "shop.example.com"})
    work = admin.get("/operator-work", params={"kind": "route-realization"})["items"][0]
    browser = Browser(cp).sign_in(ADMIN_EMAIL, ADMIN_PASSWORD)
    assert f'action="/work/{work["id"]}/cancel"' in browser.get("/work").text
    assert browser.post(f"/work/{work['id']}/cancel").status_code == 303
    assert admin.get(f"/operator-work/{work['id']}")["item"]["status"] == "canceled"
    assert f'action="/work/{work["id"]}/retry"' in browser.get("/work?status=canceled").text
    def pending() -> set[str]:
        return {w["id"] for w in admin.get("/operator-work", params={
            "kind": "route-realization", "status": "pending"})["items"]}

    before = pending()
    assert browser.post(f"/work/{work['id']}/retry").status_code == 303
    assert len(pending() - before) == 1 and work["id"] not in pending()  # queued anew


def test_databases_are_created_bound_backed_up_and_restored_from_the_console(admin, cp):
    """Without an engine: the forms reach the operations (the engine's part is tested in
    tests/engine/test_databases.py); a restore and a delete ask for the database's name."""
    from launchbay.store.models import Backup

    ids = make_app(admin, "lbtest/hello:v1")
    browser = Browser(cp).sign_in(ADMIN_EMAIL, ADMIN_PASSWORD)
    project = browser.get(f"/projects/{ids['project']}")
    assert "New database" in project.text
    made = browser.post(f"/projects/{ids['project']}/databases",
                        {"name": "orders", "environmentId": ids["env"], "kind": "postgres"})
    assert made.status_code == 303 and made.headers["location"].startswith("/databases/db_")
    page = browser.get(made.headers["location"])
    assert "provisioning" in page.text and ":****@" in page.text
    assert "orders" in browser.get(f"/projects/{ids['project']}").text

    db = admin.post("/dependency-resources/import", {
        "kind": "postgres", "projectId": ids["project"], "environmentId": ids["env"],
        "name": "ledger", "connectionUrl": "postgresql://u:pw-s3cret@db.example.com/ledger"})["id"]
    page = browser.get(f"/databases/{db}")
    assert "pw-s3cret" not in page.text and "never changes it" in page.text
    bound = browser.post(f"/databases/{db}/bindings",
                         {"resourceId": ids["resource"], "targetName": "LEDGER_URL"})
    assert bound.status_code == 303
    (binding,) = admin.get(f"/resources/{ids['resource']}/dependency-bindings")["items"]
    assert binding["target"]["targetName"] == "LEDGER_URL"
    with cp.sessions() as s:
        s.add(Backup(id="dbk_console", organization_id=admin.org_id, database_id=db,
                             kind="postgres", status="ready"))
        s.commit()
    browser.get(f"/databases/{db}")
    before = snapshot(cp)
    wrong = browser.post(f"/databases/{db}/backups/dbk_console/restore", {"confirmName": "no"})
    assert wrong.status_code == 400 and "type ledger" in wrong.text
    kept = browser.post(f"/databases/{db}/delete", {"confirmName": "ledger"})
    assert kept.status_code == 409 and "in use" in kept.text  # bound, and a backup kept
    assert snapshot(cp) == before


def test_push_to_deploy_is_turned_on_from_the_app_page_and_shows_what_pushes_did(admin, cp):
    """The secret once, on the answer that made it; then the policy, and each event's outcome
    (the dispatch itself is the engine's: tests/engine/test_push_to_deploy.py)."""
    import json

    from launchbay import webhooks

    ids = make_app(admin, "lbtest/hello:v1")
    resource = admin.post("/resources", {
        "projectId": ids["project"], "environmentId": ids["env"], "name": "site",
        "source": {"kind": "git", "locator": "https://github.com/acme/site.git",
                   "gitRef": "main"}})["id"]
    browser = Browser(cp).sign_in(ADMIN_EMAIL, ADMIN_PASSWORD)
    assert "Deploy on push" in browser.get(f"/resources/{resource}").text
    assert "Deploy on push" not in browser.get(f"/resources/{ids['resource']}").text  # an image
    made = browser.post(f"/resources/{resource}/auto-deploy",
                        {"mode": "enable", "excludePaths": "docs/*"})
    secret = re.search(r'id="webhook-secret">([^<]+)<', made.text).group(1)
    page = browser.get(f"/resources/{resource}")
    assert secret not in page.text and "docs/*" in page.text
    assert "/api/integrations/github/source-events" in page.text
    data = json.dumps({"ref": "refs/heads/dev", "before": "a" * 40, "after": "b" * 40,
                       "repository": {"clone_url": "https://github.com/acme/site.git"}}).encode()
    sent = browser.http.post("/api/integrations/github/source-events", content=data, headers={
        "X-GitHub-Event": "push", "X-GitHub-Delivery": "d-1",
        "X-Hub-Signature-256": webhooks.sign(data, secret)})
    assert sent.status_code == 202, sent.text
    assert "b" * 12 in browser.get(f"/resources/{resource}").text  # the event, as received
    off = browser.post(f"/resources/{resource}/auto-deploy", {"mode": "disable"})
    assert off.status_code == 303
    assert "Deploy on push" in browser.get(f"/resources/{resource}").text
