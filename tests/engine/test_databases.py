"""Databases end to end on the real engine, per kind: provision, bind to an app that reads and
writes through the injected URL, back up, write more, restore, and find exactly the first
rows; a truncated backup never verifies; a password rotation never interrupts the app (seen
through the edge) and ends with the old password refused; nothing but the database's own
delete removes its volume; its password is on no process's command line."""

from __future__ import annotations

import hashlib
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
from database_support import rows, until

from launchbay.engine.databases import KINDS, login_of
from launchbay.settings import Settings
from launchbay.store.models import Database

import images
from docker_support import body, deployed, eventually, host_of
from support import Api, free_port, make_app


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The engine tests' settings with an edge proxy (a rotation's redeploy is watched through
    it), and rotations moved on every second."""
    return settings.model_copy(update={
        "edge_enabled": True, "edge_bind": "127.0.0.1", "edge_http_port": free_port(),
        "edge_admin": f"127.0.0.1:{free_port()}", "edge_drain_seconds": 0.5,
        "backup_schedule_seconds": 1.0})


# Per kind: the name of one discrete variable its bindings inject, and of the password's.
DISCRETE = {"postgres": ("PGHOST", "PGPASSWORD"), "mysql": ("MYSQL_HOST", "MYSQL_PASSWORD"),
            "redis": ("REDIS_HOST", "REDIS_PASSWORD")}


@pytest.mark.parametrize("kind", ["postgres", "mysql", "redis"])
def test_bound_backed_up_and_restored(api: Api, cp: Any, settings: Settings, kind: str) -> None:
    host_var, password_var = DISCRETE[kind]
    ids = make_app(api, images.ensure_app(kind))
    db_id = api.post("/dependency-resources/provision", {
        "kind": kind, "projectId": ids["project"], "environmentId": ids["env"],
        "name": "main"})["id"]
    try:
        shown = until(api, f"/dependency-resources/{db_id}", lambda s: s["dependencyResource"][
            "lifecycleStatus"] in ("ready", "failed"))["dependencyResource"]
        assert shown["lifecycleStatus"] == "ready", shown["providerRealization"]
        assert ":****@" in shown["connection"]["maskedConnection"]
        with cp.sessions() as s:
            row = s.get_one(Database, db_id)
            password, org_id = cp.ops.secrets.decrypt(row.sealed_secret), row.organization_id
        assert password not in str(shown)

        # Bound: a variable of a name the binding injects is refused, both ways.
        resource = ids["resource"]
        binding = api.post(f"/resources/{resource}/dependency-bindings", {
            "dependencyResourceId": db_id, "targetName": "DATABASE_URL"})["id"]
        clash = api.request("POST", f"/resources/{resource}/variables",
                            {"key": host_var, "value": "elsewhere"})
        assert clash.status_code == 409, clash.text
        again = api.request("POST", f"/resources/{resource}/dependency-bindings", {
            "dependencyResourceId": db_id, "targetName": "OTHER_URL"})
        assert again.status_code == 409 and host_var in again.text  # discrete ones taken
        listed = api.get(f"/resources/{resource}/dependency-bindings")["items"]
        assert [b["id"] for b in listed] == [binding] and password_var in listed[0]["variables"]

        app = deployed(api, ids)
        url = f"http://127.0.0.1:{app['hostPort']}"
        for n in (1, 2):
            assert body(f"{url}/cgi-bin/write?{n}").strip() == "ok"
        assert rows(url) == "1,2"

        # Backed up while something reads every process's command line.
        seen: list[str] = []
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
                    try:
                        if password.encode() in cmdline.read_bytes():
                            seen.append(str(cmdline))
                    except OSError:
                        pass
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        backup_id = api.post(f"/dependency-resources/{db_id}/backups", {})["id"]
        backup = until(api, f"/dependency-resources/backups/{backup_id}",
                       lambda s: s["backup"]["status"] != "pending")["backup"]
        stop.set()
        watcher.join()
        assert backup["status"] == "ready", backup
        assert seen == []
        path = settings.resolved_backups_dir / org_id / db_id / backup[
            "providerArtifactHandle"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == backup["sha256"]
        assert path.stat().st_size == backup["sizeBytes"] > 0
        assert not list(path.parent.glob("*.partial"))

        assert body(f"{url}/cgi-bin/write?3").strip() == "ok"
        assert rows(url) == "1,2,3"
        refused = api.request("POST", f"/dependency-resources/backups/{backup_id}/restore",
                              {"acknowledgeDataOverwrite": False})
        assert refused.status_code == 400 and rows(url) == "1,2,3"
        api.post(f"/dependency-resources/backups/{backup_id}/restore",
                 {"acknowledgeDataOverwrite": True, "acknowledgeRuntimeNotRestarted": True})
        restored = until(api, f"/dependency-resources/backups/{backup_id}", lambda s: (
            s["backup"]["latestRestoreAttempt"] or {}).get("status") in ("succeeded", "failed"))
        assert restored["backup"]["latestRestoreAttempt"]["status"] == "succeeded", restored
        assert rows(url) == "1,2"  # exactly the rows of the backup, the app untouched
        backups = api.get(f"/dependency-resources/{db_id}/backups")["items"]
        safety = [b for b in backups if b["reason"] == "safety"]
        assert len(safety) == 1 and safety[0]["status"] == "ready"  # what was there before
        if kind == "postgres":  # into another database of the kind: a copy of it
            copy = api.post("/dependency-resources/provision", {
                "kind": kind, "projectId": ids["project"], "environmentId": ids["env"],
                "name": "copy"})["id"]
            until(api, f"/dependency-resources/{copy}", lambda s: s["dependencyResource"][
                "lifecycleStatus"] == "ready")
            api.post(f"/dependency-resources/backups/{backup_id}/restore", {
                "acknowledgeDataOverwrite": True, "targetDependencyResourceId": copy})
            into = until(api, f"/dependency-resources/backups/{backup_id}", lambda s: (
                s["backup"]["latestRestoreAttempt"] or {}).get("status") in (
                "succeeded", "failed"))["backup"]["latestRestoreAttempt"]
            assert into["status"] == "succeeded" and into["restoredInto"] == copy, into
            with cp.sessions() as s:
                other = s.get_one(Database, copy)
                s.expunge(other)
            read = bytearray()
            code, _ = cp.workers.handlers["database"]._tool(
                cp.targets.of(other.server_id), other, cp.ops.secrets.decrypt(
                    other.sealed_secret), ["psql", "-h", other.host, "-U", "app", "-d",
                                           other.database_name, "-tAc",
                                           "SELECT string_agg(n::text, ',' ORDER BY n) FROM notes"],
                "probe", stdout=read.extend)
            assert code == 0 and read.decode().strip() == "1,2"
            api.ok("DELETE", f"/dependency-resources/{copy}?releaseBackups=true")

        # A truncated backup does not read whole: never ready, and a restore refuses it.
        handler = cp.workers.handlers["database"]
        with cp.sessions() as s:
            db = s.get_one(Database, db_id)
            s.expunge(db)
        cut = path.with_name("cut")
        shutil.copy(path, cut)
        with cut.open("r+b") as f:
            f.truncate(cut.stat().st_size // 2)
        problem = handler._verify(cp.targets.of(db.server_id), db, password, cut)
        assert problem and "whole" in problem
        path.write_bytes(cut.read_bytes())  # the file on disk is no longer the verified one
        api.post(f"/dependency-resources/backups/{backup_id}/restore",
                 {"acknowledgeDataOverwrite": True})
        failed = until(api, f"/dependency-resources/backups/{backup_id}", lambda s: (
            s["backup"]["latestRestoreAttempt"] or {}).get("status") in ("succeeded", "failed"))
        attempt = failed["backup"]["latestRestoreAttempt"]
        assert attempt["status"] == "failed" and attempt["failureCode"] == "backup-corrupted"
        assert rows(url) == "1,2"

        # Rotated: a new login beside the old one, the app redeployed with it, then the old one
        # revoked; through the edge, the app answers every request all along.
        rotations = f"/resources/{resource}/dependency-bindings/{binding}/secret-rotations"
        unconfirmed = api.request("POST", rotations,
                                  {"confirmHistoricalSnapshotsRemainUnchanged": False})
        assert unconfirmed.status_code == 400, unconfirmed.text
        edge = f"http://127.0.0.1:{settings.edge_http_port}/cgi-bin/read"
        answers: list[tuple[int, str]] = []
        stop.clear()

        def poll() -> None:
            host = host_of(api, resource)
            while not stop.is_set():
                try:
                    got = httpx.get(edge, headers={"Host": host}, timeout=5)
                    answers.append((got.status_code, got.text.strip()))
                except httpx.TransportError as exc:
                    answers.append((0, str(exc)))
                time.sleep(0.05)
        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        assert eventually(lambda: answers and answers[-1] == (200, "1,2"))
        answers.clear()
        rotated = api.post(rotations, {"confirmHistoricalSnapshotsRemainUnchanged": True})
        assert rotated["secretVersion"] == "v2" and rotated["id"].startswith("rot_")
        again = api.request("POST", rotations, {"confirmHistoricalSnapshotsRemainUnchanged": True})
        assert again.status_code == 409  # one rotation of a database at a time
        shown = until(api, f"/resources/{resource}/dependency-bindings/{binding}", lambda s: s[
            "binding"]["secretRotation"]["status"] in ("completed", "failed"), timeout=90)
        stop.set()
        poller.join()
        rotation = shown["binding"]["secretRotation"]
        assert rotation["status"] == "completed", rotation
        assert (rotation["secretVersion"], rotation["previousSecretVersion"]) == ("v2", "v1")
        assert answers and set(answers) == {(200, "1,2")}, set(answers)
        releases = api.get("/deployments", params={"resourceId": resource})["items"]
        assert releases[0]["triggerKind"] == "redeploy" and releases[0]["status"] == "succeeded"
        docker_of = cp.targets.of(db.server_id)
        old = handler._tool(docker_of, db, password, KINDS[kind].probe(db, login_of(db)), "probe")
        assert old[0] != 0, old  # the old password no longer logs in
        with cp.sessions() as s:
            db = s.get_one(Database, db_id)
            s.expunge(db)
        old_password, password = password, cp.ops.secrets.decrypt(db.sealed_secret)
        shown_anywhere = str([api.get(p) for p in (
            "/audit-events?limit=100", "/operator-work",
            f"/resources/{resource}/dependency-bindings",
            f"/dependency-resources/{db_id}", f"/deployments/{releases[0]['id']}/logs")])
        assert old_password not in shown_anywhere and password not in shown_anywhere
        wrote = httpx.get(f"{edge.removesuffix('read')}write?4",
                          headers={"Host": host_of(api, resource)}, timeout=5)
        assert wrote.text.strip() == "ok"  # with the new login
        assert rows(f"http://127.0.0.1:{releases[0]['hostPort']}") == "1,2,4"

        # No redeploy, prune, cleanup or delete of the app touches the database's volume.
        volume = f"lb-db-{db_id}"
        api.ok("DELETE", f"/resources/{resource}/dependency-bindings/{binding}")
        deployed(api, ids)  # a redeploy, now without the binding
        api.post("/deployments/prune", {"before": "2100-01-01T00:00:00Z", "dryRun": False})
        server = api.get("/servers")["items"][0]["id"]
        api.post(f"/servers/{server}/capacity/prune",  # (the build cache is this machine's)
                 {"dryRun": False, "categories": ["stopped-containers", "dangling-images"]})
        api.ok("DELETE", f"/resources/{resource}", {"confirmation": {"resourceSlug": "web"}})
        cp.reconcile()
        until(api, "/operator-work", lambda s: all(
            w["status"] not in ("pending", "running") for w in s["items"]), timeout=60)
        cp.reconcile()
        assert docker.from_env().volumes.get(volume)
        answered = handler._tool(cp.targets.of(db.server_id), db, password,
                                 KINDS[kind].probe(db, login_of(db)), "probe")
        assert answered[0] == 0, answered  # and the database still answers
        blocked = api.request("DELETE", f"/dependency-resources/{db_id}")
        assert blocked.status_code == 409 and "backup-relationship" in blocked.text
    finally:
        listed = api.request("GET", f"/resources/{ids['resource']}/dependency-bindings")
        for b in listed.json().get("items", []) if listed.status_code == 200 else []:
            api.request("DELETE", f"/resources/{ids['resource']}/dependency-bindings/{b['id']}")
        api.request("DELETE", f"/dependency-resources/{db_id}?releaseBackups=true")
        until(api, "/dependency-resources", lambda s: all(
            d["id"] != db_id for d in s["items"]), timeout=60)
    client = docker.from_env()
    assert not client.containers.list(all=True, filters={"label": f"launchbay.database={db_id}"},
                                      ignore_removed=True)
    assert volume not in {v.name for v in client.volumes.list()}
    assert KINDS["postgres"].restore is not None
