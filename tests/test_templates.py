"""The template catalog: what a template may say, how parameters fill it in, the templates
folder, and the native API (operators change it; everyone sees the visible, enabled ones)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from launchbay.control_plane import ControlPlane
from launchbay.operations.errors import Invalid
from launchbay.operations.templates import TemplateDoc, files_archive, render

from support import add_member, snapshot

STACK = """
services:
  web:
    image: lbtest/env:v1
    ports: ["8080"]
    environment:
      ROLE: ${role}
      KEPT: ${NOT_A_PARAMETER}
  worker:
    image: lbtest/busy:${tag}
"""


def doc(**extra) -> TemplateDoc:
    return TemplateDoc.model_validate({"name": "t", "blueprint": {"image": "lbtest/hello:v1"},
                                       **extra})


def test_parameters_fill_the_blueprint_and_are_checked():
    t = doc(blueprint={"compose": STACK, "variables": {"GREETING": "hi ${who}"},
                       "command": "serve --size ${size}"},
            parameters=[{"name": "role", "required": True},
                        {"name": "tag", "default": "v1", "pattern": r"v\d+"},
                        {"name": "size", "values": ["small", "large"], "default": "small"},
                        {"name": "who", "default": "world"}])
    b = render(t, {"role": "primary", "size": "large"})
    assert "ROLE: primary" in b.compose and "image: lbtest/busy:v1" in b.compose
    assert "KEPT: ${NOT_A_PARAMETER}" in b.compose  # only declared parameters are filled in
    assert b.variables == {"GREETING": "hi world"} and b.command == "serve --size large"

    with pytest.raises(Invalid, match="missing required parameter role"):
        render(t, {})
    for bad in ({"role": "x", "tag": "latest"}, {"role": "x", "size": "huge"},
                {"role": "x\n    privileged: true"}):
        with pytest.raises(Invalid, match="invalid value for parameter"):
            render(t, bad)

    site = doc(blueprint={"files": {"index.html": "<h1>${title}</h1>", "app/x.txt": "$1"}},
               parameters=[{"name": "title", "default": "Mine"}])
    assert render(site, {}).files == {"index.html": "<h1>Mine</h1>", "app/x.txt": "$1"}


def test_what_a_template_may_say():
    assert doc().ttl is None and doc().pool_size == 0
    assert doc(extendTTL=7200).extend_ttl == 7200
    for bad in ({"blueprint": {}},
                {"blueprint": {"image": "a:b", "compose": STACK}},
                {"blueprint": {"compose": "services:\n  web:\n    build: .\n"}},
                {"blueprint": {"compose": "services: [oops"}},
                {"blueprint": {"image": "a:b", "files": {"index.html": ""}}},
                {"blueprint": {"files": {"../etc/passwd": ""}}},
                {"blueprint": {"files": {"/etc/passwd": ""}}},
                {"blueprint": {"files": {"a/../../b": ""}}},
                {"blueprint": {"files": {"big": "x" * 1_000_001}}},
                {"name": "Not A Name"},
                {"parameters": [{"name": "a"}, {"name": "a"}]},
                {"parameters": [{"name": "a", "pattern": "("}]},
                {"ttl": 5}):
        with pytest.raises(ValidationError):
            doc(**bad)
    files = {"docker-compose.yml": STACK, "b/c.txt": "c"}
    assert files_archive(files) == files_archive(dict(reversed(files.items())))  # stable


def test_the_templates_folder_and_the_shipped_templates_are_loaded_at_start(settings):
    folder = settings.data_dir / "templates"
    (folder / "site").mkdir(parents=True)
    (folder / "hello.yaml").write_text(
        "description: Says hello\nblueprint:\n  image: lbtest/hello:v1\nttl: 3600\n")
    (folder / "broken.yml").write_text("blueprint: {image: 'NOT VALID'}\n")
    (folder / "site" / "index.html").write_text("<p>${who}</p>")
    (folder / "site.yaml").write_text("blueprint:\n  filesFrom: site\n")
    (folder / "escape.yaml").write_text("blueprint:\n  filesFrom: ../..\n")  # not beside it
    cp = ControlPlane(settings.model_copy(update={"shipped_templates": True}))
    try:
        with cp.sessions() as db:
            from launchbay.operations.templates import SHIPPED, load_files
            from launchbay.store.models import AuditEvent, Template
            assert {t.name: t.origin for t in db.query(Template)} == {
                "hello": "file", "site": "file", "webterm": "shipped", "static-site": "shipped"}
            t = db.query(Template).filter_by(name="hello").one()
            assert t.document["description"] == "Says hello"
            site = db.query(Template).filter_by(name="site").one()
            assert site.document["blueprint"]["files"] == {"index.html": "<p>${who}</p>"}
            assert db.query(AuditEvent).filter_by(event_type="template.loaded").count() == 4
            assert load_files(db, folder) == []  # unchanged files are not loaded again
            t.document = {**t.document, "description": "changed through the API"}
            db.commit()
            assert load_files(db, folder) == []  # ...and do not undo the API's change
            (folder / "hello.yaml").write_text("blueprint:\n  image: lbtest/hello:v2\n")
            (folder / "site" / "index.html").write_text("<p>changed</p>")
            assert load_files(db, folder) == ["hello", "site"]  # a changed file wins
            db.refresh(t)
            assert t.document["blueprint"]["image"] == "lbtest/hello:v2"
            # A template file takes a shipped template's place, for good.
            (folder / "webterm.yaml").write_text("blueprint:\n  image: lbtest/hello:v1\n")
            assert load_files(db, folder) == ["webterm"]
            assert load_files(db, SHIPPED, origin="shipped") == []
    finally:
        cp.close()


def test_operators_manage_the_catalog_and_members_see_what_is_offered(admin, cp):
    body = {"name": "hello", "description": "Hello", "icon": "wave", "category": "demo",
            "blueprint": {"image": "lbtest/hello:v1", "variables": {"TOKEN": "t0p"}},
            "parameters": [{"name": "who", "default": "world"}], "ttl": 3600,
            "extendTTL": 600, "maxExtends": 2, "quota": 3, "poolSize": 1}
    created = admin.request("POST", "/templates", body)
    assert created.status_code == 201, created.text
    assert created.json()["isUnlimited"] is False and created.json()["extendTTL"] == 600
    assert created.json()["blueprint"]["image"] == "lbtest/hello:v1"
    assert admin.request("POST", "/templates", body).status_code == 409
    admin.post("/templates", {"name": "hidden", "visible": False,
                              "blueprint": {"image": "lbtest/hello:v1"}})

    member = add_member(admin, admin.org_id, "dev@example.com", "developer")
    (seen,) = member.get("/templates")["items"]
    assert seen["name"] == "hello" and seen["blueprint"] is None  # what it runs: operators
    assert member.request("GET", "/templates/hidden").status_code == 404
    assert {t["name"] for t in admin.get("/templates", params={"includeHidden": "true"})[
        "items"]} == {"hello", "hidden"}

    # Admins of another organization are not operators of the instance.
    other = admin.post("/organizations", {"name": "Beta"})["organizationId"]
    beta_admin = add_member(admin, other, "beta@example.com", "admin")
    before = snapshot(cp)
    r = beta_admin.request("POST", "/templates", {**body, "name": "other"})
    assert r.status_code == 403 and r.json()["code"] == "instance_admin_required"
    assert member.request("PATCH", "/templates/hello", {"description": "x"}).status_code == 403
    for bad in ({"ttl": 1}, {"blueprint": {"image": "a", "compose": STACK}},
                {"parameters": [{"name": "bad name"}]}):
        r = admin.request("PATCH", "/templates/hello", bad)
        assert r.status_code == 400, (bad, r.text)
    assert snapshot(cp) == before

    changed = admin.ok("PATCH", "/templates/hello", {"description": "Hi", "ttl": None})
    assert changed["description"] == "Hi" and changed["isUnlimited"] is True
    assert changed["maxExtends"] == 2  # what was not sent keeps its value
    admin.post("/templates/hello/disable")
    assert member.get("/templates")["items"] == []
    events = admin.get("/audit-events", params={"eventType": "template.disabled"})["items"]
    assert len(events) == 1
