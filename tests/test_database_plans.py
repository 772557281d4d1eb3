"""Databases through the API without an engine: provisioning plans, imports, bindings'
variables in a deployment's snapshot, and refusals (the end-to-end tests are in
tests/engine/test_databases.py)."""

from __future__ import annotations

from sqlalchemy import select

from launchbay.store.models import Deployment

from support import Api, make_app, snapshot


def test_a_plan_changes_nothing_until_accepted_once(admin: Api, cp) -> None:
    ids = make_app(admin, "lbtest/hello:v1")
    where = {"kind": "postgres", "projectId": ids["project"], "environmentId": ids["env"]}
    made = admin.post("/dependency-resources/provisioning/plan", {"mode": "reuse", "reuse": {
        **where, "name": "ext", "connectionUrl": "postgresql://u:s3cret@db.example.com/shop"}})
    plan = made["plan"]
    assert plan["status"] == "planned" and plan["endpoint"] == "db.example.com:5432"
    assert "s3cret" not in str(made) and admin.get("/dependency-resources")["items"] == []
    refused = admin.request("POST", f"/dependency-resources/provisioning/{plan['id']}/accept",
                            {"acknowledgeMutation": False})
    assert refused.status_code == 400 and admin.get("/dependency-resources")["items"] == []
    accepted = admin.post(f"/dependency-resources/provisioning/{plan['id']}/accept",
                          {"acknowledgeMutation": True})["plan"]
    again = admin.post(f"/dependency-resources/provisioning/{plan['id']}/accept",
                       {"acknowledgeMutation": True})["plan"]
    assert accepted["status"] == again["status"] == "realized"
    assert accepted["dependencyResourceId"] == again["dependencyResourceId"]
    (db,) = admin.get("/dependency-resources")["items"]
    assert db["sourceMode"] == "imported-external" and db["lifecycleStatus"] == "ready"
    assert db["connection"]["maskedConnection"] == "postgresql://u:****@db.example.com:5432/shop"
    shown = admin.get(f"/dependency-resources/provisioning/{plan['id']}")["plan"]
    assert shown["dependencyResourceId"] == db["id"]

    create = admin.post("/dependency-resources/provisioning/plan", {"mode": "create", "create": {
        **where, "name": "main"}})["plan"]
    taken = admin.request("POST", "/dependency-resources/provisioning/plan", {
        "mode": "create", "create": {**where, "name": "ext"}})
    assert taken.status_code == 409  # checked at planning
    done = admin.post(f"/dependency-resources/provisioning/{create['id']}/accept",
                      {"acknowledgeMutation": True})["plan"]
    assert done["status"] == "accepted"  # the engine (not running here) makes it
    work = admin.get("/operator-work", params={"kind": "database"})["items"]
    assert len(work) == 1 and work[0]["status"] == "pending"


def test_a_binding_puts_the_url_in_the_next_snapshot_sealed(admin: Api, cp) -> None:
    ids = make_app(admin, "lbtest/hello:v1")
    db = admin.post("/dependency-resources/import", {
        "kind": "mysql", "projectId": ids["project"], "environmentId": ids["env"],
        "name": "legacy", "connectionUrl": "mysql://shop:pa%40ss@10.0.0.5:3307/shop"})["id"]
    admin.post(f"/resources/{ids['resource']}/dependency-bindings",
               {"dependencyResourceId": db, "targetName": "DATABASE_URL"})
    deployment = admin.post("/deployments", {"projectId": ids["project"],
                                             "environmentId": ids["env"],
                                             "resourceId": ids["resource"]})["id"]
    with cp.sessions() as s:
        snapshot = s.get_one(Deployment, deployment).environment_snapshot
    got = {v["key"]: v for v in snapshot["variables"]}
    assert got["DATABASE_URL"]["isSecret"] and got["MYSQL_PASSWORD"]["isSecret"]
    assert "pa%40ss" not in str(snapshot)  # sealed at rest
    assert cp.ops.secrets.decrypt(got["MYSQL_PASSWORD"]["value"]) == "pa@ss"
    assert got["MYSQL_HOST"]["value"] == "10.0.0.5" and not got["MYSQL_HOST"]["isSecret"]
    assert got["MYSQL_PORT"]["value"] == "3307"
    shown = admin.get(f"/deployments/{deployment}")["deployment"]
    assert "pa@ss" not in str(shown) and "pa%40ss" not in str(shown)
    # Unbound, deleted: an imported database is only forgotten.
    binding = admin.get(f"/resources/{ids['resource']}/dependency-bindings")["items"][0]["id"]
    admin.ok("DELETE", f"/resources/{ids['resource']}/dependency-bindings/{binding}")
    admin.ok("DELETE", f"/dependency-resources/{db}")
    assert admin.get("/dependency-resources")["items"] == []
    assert admin.get("/operator-work", params={"kind": "database"})["items"] == []


def test_an_environment_or_project_with_a_database_is_not_deleted(admin: Api, cp) -> None:
    ids = make_app(admin, "lbtest/hello:v1")
    db = admin.post("/dependency-resources/import", {
        "kind": "redis", "projectId": ids["project"], "environmentId": ids["env"],
        "name": "cache", "connectionUrl": "redis://default:pw@cache.example.com"})["id"]
    before = snapshot(cp)
    refused = admin.request("DELETE", f"/environments/{ids['env']}", {
        "confirmation": {"environmentName": "production"}, "withResources": True})
    assert refused.status_code == 409 and refused.json()["code"] == "databases_remain"
    assert snapshot(cp) == before
    admin.post(f"/projects/{ids['project']}/archive", {})
    before = snapshot(cp)
    refused = admin.request("DELETE", f"/projects/{ids['project']}", {
        "confirmation": {"projectId": ids["project"]}, "withResources": True})
    assert refused.status_code == 409 and snapshot(cp) == before
    admin.ok("DELETE", f"/dependency-resources/{db}")
    admin.ok("DELETE", f"/projects/{ids['project']}", {
        "confirmation": {"projectId": ids["project"]}, "withResources": True})
    assert admin.request("GET", f"/projects/{ids['project']}").status_code == 404


def test_one_restore_of_a_database_at_a_time(admin: Api, cp) -> None:
    from launchbay.store.models import Backup, Database

    ids = make_app(admin, "lbtest/hello:v1")
    db = admin.post("/dependency-resources/provision", {
        "kind": "postgres", "projectId": ids["project"], "environmentId": ids["env"],
        "name": "main"})["id"]
    with cp.sessions() as s:  # made ready, with two backups (no engine runs here)
        s.get_one(Database, db).status = "ready"
        for n in (1, 2):
            s.add(Backup(id=f"dbk_{n}", organization_id=admin.org_id, database_id=db,
                                 kind="postgres", status="ready"))
        s.commit()
    admin.post("/dependency-resources/backups/dbk_1/restore", {"acknowledgeDataOverwrite": True})
    second = admin.request("POST", "/dependency-resources/backups/dbk_2/restore",
                           {"acknowledgeDataOverwrite": True})
    assert second.status_code == 409 and second.json()["code"] == "restore_in_progress"


def test_work_given_up_fails_what_it_was_making_and_removes_its_partial_file(
        admin: Api, cp) -> None:
    from launchbay.store.models import Backup, OperatorWork

    test_one_restore_of_a_database_at_a_time(admin, cp)  # a restore of dbk_1 is pending
    with cp.sessions() as s:
        item = s.scalars(select(OperatorWork).where(OperatorWork.kind == "database")
                         .order_by(OperatorWork.created_at.desc())).first()
        safety = s.get_one(Backup, item.payload["safety_backup_id"])
        s.expunge_all()
    partial = cp.settings.resolved_backups_dir / safety.organization_id / \
        safety.database_id / f"{safety.id}.partial"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"half a dump")
    cp.workers.handlers["database"].give_up(item, "worker-lost", "gave up")
    shown = admin.get(f"/dependency-resources/backups/{safety.id}")["backup"]
    assert shown["status"] == "failed" and shown["failureCode"] == "worker-lost"
    assert not partial.exists()
    assert admin.get("/dependency-resources/backups/dbk_1")["backup"]["status"] == "ready"


def test_a_rotation_redeploys_what_has_the_old_url_then_completes(admin: Api, cp) -> None:
    """An imported database's rotation (its new URL given): refusals change nothing; the
    resource whose release has the old URL is redeployed once, with the new one; the rotation
    completes when that release serves (nothing of an external database is revoked)."""
    from launchbay.store.models import Database, Resource

    ids = make_app(admin, "lbtest/hello:v1")
    db = admin.post("/dependency-resources/import", {
        "kind": "postgres", "projectId": ids["project"], "environmentId": ids["env"],
        "name": "ext", "connectionUrl": "postgresql://u:old@db.example.com/shop"})["id"]
    resource = ids["resource"]
    binding = admin.post(f"/resources/{resource}/dependency-bindings",
                         {"dependencyResourceId": db, "targetName": "DATABASE_URL"})["id"]
    first = admin.post("/deployments", {"projectId": ids["project"],
                                        "environmentId": ids["env"], "resourceId": resource})["id"]

    def serves(deployment: str) -> None:  # (no engine runs here)
        with cp.sessions() as s:
            s.get_one(Deployment, deployment).status = "succeeded"
            s.get_one(Resource, resource).current_deployment_id = deployment
            s.commit()

    def url_in(deployment: str) -> str:
        with cp.sessions() as s:
            given = {v["key"]: v for v in s.get_one(
                Deployment, deployment).environment_snapshot["variables"]}
        return cp.ops.secrets.decrypt(given["DATABASE_URL"]["value"])

    serves(first)
    rotations = f"/resources/{resource}/dependency-bindings/{binding}/secret-rotations"
    before = snapshot(cp)
    for body in ({"confirmHistoricalSnapshotsRemainUnchanged": True},  # no new URL
                 {"confirmHistoricalSnapshotsRemainUnchanged": False,
                  "secretValue": "postgresql://u:new@db.example.com/shop"},
                 {"confirmHistoricalSnapshotsRemainUnchanged": True, "secretRef": "vault:x"},
                 {"confirmHistoricalSnapshotsRemainUnchanged": True,
                  "secretValue": "postgresql://u:new@elsewhere.example.com/shop"}):
        refused = admin.request("POST", rotations, body)
        assert refused.status_code == 400, (body, refused.text)
        assert snapshot(cp) == before
    other = admin.request("POST", f"/resources/{resource}/dependency-bindings/dbb_nope"
                          "/secret-rotations", {"confirmHistoricalSnapshotsRemainUnchanged": True})
    assert other.status_code == 404

    rotated = admin.post(rotations, {"confirmHistoricalSnapshotsRemainUnchanged": True,
                                     "secretValue": "postgresql://u:new@db.example.com/shop"})
    assert rotated["secretVersion"] == "v2" and "new@" not in str(rotated)
    shown = admin.get(f"/resources/{resource}/dependency-bindings/{binding}")["binding"]
    assert shown["secretRotation"]["status"] == "redeploying" and "new@" not in str(shown)
    busy = admin.request("POST", rotations, {"confirmHistoricalSnapshotsRemainUnchanged": True,
                                             "secretValue": "postgresql://u:x@db.example.com/s"})
    assert busy.status_code == 409
    assert url_in(first) == "postgresql://u:old@db.example.com/shop"  # history unchanged

    assert cp.advance_rotations() == 1
    assert cp.advance_rotations() == 1  # its redeploy runs: not made twice
    deployments = admin.get("/deployments", params={"resourceId": resource})["items"]
    assert [d["triggerKind"] for d in deployments] == ["redeploy", "create"]
    assert url_in(deployments[0]["id"]) == "postgresql://u:new@db.example.com/shop"
    assert admin.get(f"/resources/{resource}/dependency-bindings/{binding}")["binding"][
        "secretRotation"]["status"] == "redeploying"
    serves(deployments[0]["id"])
    cp.advance_rotations()
    shown = admin.get(f"/resources/{resource}/dependency-bindings/{binding}")["binding"]
    assert shown["secretRotation"]["status"] == "completed"
    assert shown["secretRotation"]["previousSecretVersion"] == "v1"
    assert cp.advance_rotations() == 0  # nothing left under way
    events = {e["eventType"] for e in admin.get("/audit-events")["items"]}
    assert {"resource.dependency-binding-secret-rotated",
            "dependency-resource.credential-rotation-advanced"} <= events

    # A database launchbay manages: its password is generated, and changed by the engine.
    managed = admin.post("/dependency-resources/provision", {
        "kind": "postgres", "projectId": ids["project"], "environmentId": ids["env"],
        "name": "main"})["id"]
    bound = admin.post(f"/resources/{resource}/dependency-bindings",
                       {"dependencyResourceId": managed, "targetName": "MAIN_URL",
                        "discreteVariables": False})["id"]
    managed_rotations = f"/resources/{resource}/dependency-bindings/{bound}/secret-rotations"
    not_ready = admin.request("POST", managed_rotations,
                              {"confirmHistoricalSnapshotsRemainUnchanged": True})
    assert not_ready.status_code == 409
    with cp.sessions() as s:
        s.get_one(Database, managed).status = "ready"
        s.commit()
    chosen = admin.request("POST", managed_rotations, {
        "confirmHistoricalSnapshotsRemainUnchanged": True, "secretValue": "mine"})
    assert chosen.status_code == 400
    admin.post(managed_rotations, {"confirmHistoricalSnapshotsRemainUnchanged": True})
    work = admin.get("/operator-work", params={"kind": "database"})["items"]
    assert work[0]["operationKey"] == "dependency-resources.rotate"
