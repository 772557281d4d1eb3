"""Ephemeral environments through the native API, without running anything (the engine's
side, the Dploy face and OIDC are tested end to end in tests/engine/test_dploy.py): one
instance per owner and template, quotas, parameters, extensions, teams, the reaper, and
other organizations."""

from __future__ import annotations

import re
from datetime import timedelta

from launchbay.operations.errors import OperationError
from launchbay.store.models import Deployment, Instance, User, utcnow

from support import add_member, snapshot

IMAGE = {"image": "lbtest/hello:v1"}


def catalog(admin) -> None:
    for body in ({"name": "webterm", "description": "Browser-based shell", "icon": "terminal",
                  "blueprint": IMAGE, "ttl": 3600, "extendTTL": 600, "maxExtends": 2},
                 {"name": "lab", "blueprint": {**IMAGE, "variables": {"SIZE": "${size}"}},
                  "parameters": [{"name": "size", "required": True}], "quota": 1},
                 {"name": "forever", "blueprint": IMAGE},
                 {"name": "team-lab", "blueprint": IMAGE, "ttl": 600, "ownerClaim": "groups"}):
        admin.post("/templates", body)


def groups(cp, user_id: str, *names: str) -> None:
    """What the identity provider said (the Dploy face stores it at each login)."""
    with cp.sessions() as db:
        db.get_one(User, user_id).claims = {"groups": list(names)}
        db.commit()


def test_one_instance_per_owner_quota_parameters_and_extensions(admin, cp):
    catalog(admin)
    first = admin.post("/instances", {"template": "webterm"})
    assert re.fullmatch(r"[0-9a-f]{8}", first["uuid"])
    assert first["url"] == f"https://admin-{first['uuid']}.localhost"
    assert first["status"] == "pending" and first["owner"] == "admin"
    assert first["shared"] is False
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", first["expiresAt"])
    again = admin.post("/instances", {"template": "webterm"})
    assert again["uuid"] == first["uuid"]
    assert admin.get("/instances/webterm")["uuid"] == first["uuid"]
    (item,) = admin.get("/instances")["environments"]
    assert item | {"name": "webterm", "description": "Browser-based shell", "icon": "terminal",
                   "extendCount": 0, "maxExtends": 2, "extendTTL": 600,
                   "isUnlimited": False} == item
    assert admin.get("/instances")["limit"] == 5
    # The instance is an ordinary resource, in an environment of its own.
    (resource,) = admin.get("/resources")["items"]
    assert resource["name"] == "webterm"
    (binding,) = admin.get("/domain-bindings")["items"]
    assert binding["domainName"] == f"admin-{first['uuid']}.localhost"

    before = snapshot(cp)
    r = admin.request("POST", "/instances", {"template": "lab"})
    assert r.status_code == 400 and r.json()["error"] == "missing required parameter size"
    r = admin.request("POST", "/instances", {"template": "lab", "parameters": {"size": "L"}})
    assert r.status_code == 403 and r.json()["error"] == "Maximum 1 environments allowed"
    r = admin.request("POST", "/instances", {"template": "nothing"})
    assert r.status_code == 404
    assert admin.request("GET", "/instances/forever").status_code == 404
    assert snapshot(cp) == before

    expires = first["expiresAt"]
    extended = admin.post("/instances/webterm/extend")["expiresAt"]
    assert _seconds(extended) - _seconds(expires) == 600
    admin.post("/instances/webterm/extend")
    r = admin.request("POST", "/instances/webterm/extend")
    assert r.status_code == 409 and r.json()["error"] == "maximum extensions reached"
    admin.post("/instances", {"template": "forever"})
    forever = admin.get("/instances/forever")
    assert forever["expiresAt"] == ""
    r = admin.request("POST", "/instances/forever/extend")
    assert r.status_code == 400 and r.json()["error"] == "the environment has an unlimited TTL"

    r = admin.request("DELETE", "/instances/webterm")
    assert r.status_code == 204 and r.content == b""
    assert admin.get("/instances/webterm")["status"] == "Deleting"
    assert admin.get("/domain-bindings", params={"resourceId": resource["id"]})["items"] == []
    assert admin.request("DELETE", "/instances/webterm").status_code == 404


def _seconds(stamp: str) -> int:
    from datetime import datetime
    return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())


def test_teams_share_an_instance_and_others_see_nothing(admin, cp):
    catalog(admin)
    ann = add_member(admin, admin.org_id, "ann@example.com", "developer")
    ben = add_member(admin, admin.org_id, "ben@example.com", "developer")
    groups(cp, ann.user_id, "Team A")
    groups(cp, ben.user_id, "Team A")
    shared = ann.post("/instances", {"template": "team-lab"})
    assert shared["owner"] == "team-a" and shared["shared"] is True
    assert ben.post("/instances", {"template": "team-lab"})["uuid"] == shared["uuid"]
    assert [e["uuid"] for e in ben.get("/instances")["environments"]] == [shared["uuid"]]
    # A personal template stays personal; someone outside the team sees none of it.
    assert ann.post("/instances", {"template": "webterm"})["owner"] == "ann"
    assert ben.request("GET", "/instances/webterm").status_code == 404
    assert admin.get("/instances")["environments"] == []
    other = admin.post("/organizations", {"name": "Beta"})["organizationId"]
    stranger = add_member(admin, other, "eve@example.com", "developer")
    groups(cp, stranger.user_id, "Team A")
    assert stranger.get("/instances")["environments"] == []
    assert stranger.request("GET", "/instances/team-lab").status_code == 404


def test_the_reaper_removes_expired_instances_on_behalf_of_their_owner(admin, cp):
    catalog(admin)
    uuid = admin.post("/instances", {"template": "webterm"})["uuid"]
    assert cp.reap() == 0  # not expired yet
    r = admin.request("POST", f"/instances/{uuid}/expire")
    assert r.status_code == 409
    with cp.sessions() as db:
        inst = db.query(Instance).filter_by(uuid=uuid).one()
        inst.expires_at = utcnow() - timedelta(seconds=1)
        db.commit()
    assert cp.reap() == 1
    assert admin.get("/instances/webterm")["status"] == "Deleting"
    (event,) = admin.get("/audit-events", params={"eventType": "instance.expired"})["items"]
    assert event["actorUserId"] == admin.user_id
    assert cp.reap() == 0


def test_warm_pools_are_filled_in_the_sign_in_organization_and_only_ready_members_claimed(
        admin, cp):
    admin.post("/templates", {"name": "warm", "blueprint": {**IMAGE, "variables": {
        "SIZE": "${size}"}}, "parameters": [{"name": "size", "default": "S"}], "poolSize": 2})
    assert cp.fill_pools() == 1
    pool = admin.post("/instance-pools/warm/fill")  # already full: nothing changes
    assert pool | {"size": 2, "ready": 0, "starting": 2, "added": [], "removed": []} == pool
    (filled,) = admin.get("/audit-events", params={"eventType": "instance.pool-filled"})["items"]
    detail = admin.get(f"/audit-events/{filled['auditEventId']}")
    assert len(detail["event"]["payload"]["added"]) == 2
    assert admin.get("/instances")["environments"] == []  # pooled members belong to nobody
    assert len(admin.get("/resources")["items"]) == 2
    # Nothing is ready without an engine: the pool is exhausted, and nothing changes.
    before = snapshot(cp)
    r = admin.request("POST", "/instances", {"template": "warm"})
    assert r.status_code == 503 and r.json()["error"] == "no pooled instance available"
    assert snapshot(cp) == before
    # Other parameters than the pool's are a cold start of their own.
    cold = admin.post("/instances", {"template": "warm", "parameters": {"size": "L"}})
    assert cold["status"] == "pending" and len(admin.get("/resources")["items"]) == 3
    # A smaller pool loses its surplus; pools live in the sign-in organization only.
    admin.request("PATCH", "/templates/warm", json={"poolSize": 1})
    assert cp.fill_pools() == 1
    assert admin.post("/instance-pools/warm/fill")["removed"] == []  # the background did it
    with cp.sessions() as db:
        (member,) = db.query(Instance).filter_by(template="warm", status="pooled").all()
        uuid, resource_id = member.uuid, member.resource_id
        # A member that failed is replaced a minute after its failure, not at once.
        failed = db.query(Deployment).filter_by(resource_id=resource_id).one()
        failed.status, failed.finished_at = "failed", utcnow()
        db.commit()
    pool = admin.post("/instance-pools/warm/fill")
    assert (pool["failing"], pool["added"], pool["removed"]) == ([uuid], [], [])
    with cp.sessions() as db:
        db.query(Deployment).filter_by(resource_id=resource_id).one().finished_at = \
            utcnow() - timedelta(minutes=2)
        db.commit()
    pool = admin.post("/instance-pools/warm/fill")
    assert pool["removed"] == [uuid] and len(pool["added"]) == 1 and pool["failing"] == []
    other = admin.post("/organizations", {"name": "Beta"})["organizationId"]
    r = admin.request("POST", "/instance-pools/warm/fill", json={"organizationId": other})
    assert r.status_code == 409
    assert r.json()["error"] == "warm pools are kept in the sign-in organization only"
    admin.post("/organizations/current-context/switch", {"organizationId": other})
    elsewhere = admin.post("/instances", {"template": "warm"})  # no pool here: a cold start
    assert elsewhere["status"] == "pending" and elsewhere["uuid"] != cold["uuid"]


def test_the_dploy_face_speaks_dploy(admin, cp):
    catalog(admin)

    def face(method: str, path: str, token: str | None = admin.token, **kw):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return admin.client.request(method, f"/compat/dploy{path}", headers=headers, **kw)

    assert face("GET", "/health", None).json() == {"status": "ok"}
    offered = face("GET", "/api/environments/available", None).json()
    assert [o["name"] for o in offered] == ["forever", "lab", "team-lab", "webterm"]
    assert offered[3] == {"name": "webterm", "description": "Browser-based shell",
                          "icon": "terminal", "ttl": 3600, "extendTTL": 600,
                          "maxExtends": 2, "isUnlimited": False}
    # Strings and integers where Dploy's server has them, never null: no icon is "", no
    # category is left out, an unlimited TTL is -1.
    forever = offered[0]
    assert (forever["icon"], forever["ttl"], forever["isUnlimited"]) == ("", -1, True)
    assert "category" not in forever and None not in forever.values()
    assert face("GET", "/run/webterm", None).status_code == 401
    assert face("GET", "/run/webterm", None).json() == {"error": "unauthorized"}
    r = face("GET", "/run/nothing")
    assert r.status_code == 404 and r.json() == {"error": "Environment nothing not found"}
    r = face("GET", "/run/lab")
    assert r.status_code == 400 and r.json() == {"error": "missing required parameter size"}

    made = face("GET", "/run/webterm").json()
    assert set(made) == {"uuid", "status", "url", "expiresAt", "owner", "shared"}
    assert face("GET", "/api/run/webterm").json()["uuid"] == made["uuid"]
    assert face("GET", "/run/webterm/status").json()["uuid"] == made["uuid"]
    listed = face("GET", "/api/environments").json()
    assert listed["count"] == 1 and listed["limit"] == 5
    assert face("POST", "/api/run/webterm/extend").json()["expiresAt"] > made["expiresAt"]
    assert face("DELETE", "/run/webterm").status_code == 204
    assert face("DELETE", "/api/run/webterm").status_code == 404


def test_the_dploy_face_serves_what_dploys_web_ui_asks_for(admin, cp):
    """Dploy's own web UI calls /api/ui-config, /api/me and, for its manager view,
    /api/admin/instances and /api/admin/templates, with the shapes Dploy's server gives."""
    catalog(admin)
    dev = add_member(admin, admin.org_id, "dev@example.com", "developer")

    def face(method: str, path: str, token: str | None, **kw):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return admin.client.request(method, f"/compat/dploy{path}", headers=headers, **kw)

    assert face("GET", "/api/ui-config", None).json() == {
        "catalogEnabled": True, "instancesEnabled": True, "managerEnabled": True}
    assert face("GET", "/api/me", None).status_code == 401
    assert face("GET", "/api/me", admin.token).json() == {
        "username": "admin", "owner": "admin", "admin": True}
    assert face("GET", "/api/me", dev.token).json() == {
        "username": "dev", "owner": "dev", "admin": False}

    made = face("GET", "/run/webterm", dev.token).json()
    rows = face("GET", "/api/admin/instances", admin.token).json()
    assert rows["count"] == 1
    (row,) = rows["instances"]
    assert row | {"template": "webterm", "owner": "dev", "uuid": made["uuid"],
                  "phase": "Pending", "isUnlimited": False} == row
    assert set(row) == {"name", "template", "owner", "phase", "url", "expiresAt", "createdAt",
                        "namespace", "uuid", "isUnlimited"}
    templates = face("GET", "/api/admin/templates", admin.token).json()
    assert templates["count"] == 4
    webterm = next(t for t in templates["templates"] if t["name"] == "webterm")
    assert webterm | {"method": "on-demand", "enabled": True, "visible": True, "poolSize": 0,
                      "available": 0, "claimed": 1, "chartType": "image"} == webterm
    for path in ("/api/admin/instances", "/api/admin/templates"):  # not an admin: 403
        refused = face("GET", path, dev.token)
        assert refused.status_code == 403 and "error" in refused.json()


def test_dploy_sign_in_honours_the_web_uis_return_url(admin, cp, monkeypatch):
    """Dploy's web UI sends `returnUrl`; it is where the browser lands after signing in
    (checked like `return_url`: this site only)."""
    seen = []

    def started(key, actor, data, meta=None):
        seen.append(data["returnUrl"])
        raise OperationError("stop here", code="stop")

    monkeypatch.setattr(cp.ops, "run", started)
    admin.client.get("/compat/dploy/auth/login", params={"returnUrl": "/run/webterm"},
                     follow_redirects=False)
    admin.client.get("/compat/dploy/auth/login", params={"return_url": "/envs"},
                     follow_redirects=False)
    assert seen == ["/run/webterm", "/envs"]
