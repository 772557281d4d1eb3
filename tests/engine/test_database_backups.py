"""Database backups over time and under failure: a policy's retention (on disk, in the
store and in an S3-compatible bucket), a run that fails deletes nothing, and the control
plane killed during a backup and during a restore."""

from __future__ import annotations

import hashlib
import json
import signal
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import docker
import httpx
from database_support import bucket, rows, server_container, until

from launchbay.settings import Settings
from launchbay.store.models import BackupPolicy, utcnow

import images
from docker_support import body, deployed, remove_runtime, serve
from support import Api, free_port, make_app


def test_retention_keeps_the_newest_good_backups_and_a_failed_run_deletes_none(
        api: Api, cp: Any, settings: Settings, s3: str) -> None:
    """A policy keeping 3, run 5 times (its due time moved into the past each time, as a
    test clock): exactly the 3 newest remain, on disk and in the store; then a run against a
    database that does not answer fails and deletes nothing."""
    images.ensure_postgres()
    ids = make_app(api, "lbtest/hello:v1")
    db_id = api.post("/dependency-resources/provision", {
        "kind": "postgres", "projectId": ids["project"], "environmentId": ids["env"],
        "name": "kept"})["id"]
    try:
        until(api, f"/dependency-resources/{db_id}",
              lambda s: s["dependencyResource"]["lifecycleStatus"] == "ready")
        bad = api.request("POST", "/dependency-resources/backup-policies", {
            "dependencyResourceId": db_id, "schedule": "61 * * * *", "retentionCount": 3})
        assert bad.status_code == 400 and "cron" in bad.text
        refused = api.request("POST", "/backup-destinations", {
            "name": "metadata", "endpoint": "http://169.254.169.254", "bucket": "backups",
            "accessKeyId": "test", "secretAccessKey": "test-secret"})
        assert refused.status_code == 400 and "not a public address" in refused.text
        destination = api.post("/backup-destinations", {
            "name": "s3", "endpoint": s3, "bucket": "backups", "prefix": "lb",
            "region": "us-east-1", "accessKeyId": "test", "secretAccessKey": "test-secret"})["id"]
        assert "test-secret" not in str(api.get("/backup-destinations"))
        policy = api.post("/dependency-resources/backup-policies", {
            "dependencyResourceId": db_id, "schedule": "30 2 * * *",
            "timezone": "Europe/Berlin", "retentionCount": 3,
            "destinationIds": [destination]})["id"]
        shown = api.get(f"/dependency-resources/backup-policies/{policy}")["policy"]
        assert len(shown["upcomingRuns"]) == 5 and shown["nextRunAt"] == shown["upcomingRuns"][0]
        made = []
        for _ in range(5):
            with cp.sessions() as s:  # due now
                s.get_one(BackupPolicy, policy).next_run_at = utcnow() - timedelta(seconds=1)
                s.commit()
            assert cp.run_backup_schedule() == 1
            assert cp.run_backup_schedule() == 0  # its next run is tomorrow now
            made.append(until(api, f"/dependency-resources/{db_id}/backups", lambda s: all(
                b["status"] != "pending" for b in s["items"]))["items"][0]["id"])
        # Retention runs once the newest backup is ready, in the same work item: wait for it.
        kept = until(api, f"/dependency-resources/{db_id}/backups",
                     lambda s: len(s["items"]) <= 3)["items"]
        assert [b["id"] for b in kept] == made[:-4:-1]  # the 3 newest, newest first
        assert all(b["status"] == "ready" for b in kept)
        files = sorted(p.name for p in settings.resolved_backups_dir.rglob("*.dump"))
        assert files == sorted(b["providerArtifactHandle"] for b in kept)
        store = bucket(s3)
        objects = {o.object_name: o for o in store.list_objects("backups", recursive=True)}
        assert sorted(k.rsplit("/", 1)[-1] for k in objects) == files
        for b in kept:  # every copy is the verified file
            (copy,) = b["copies"]
            assert copy["status"] == "uploaded" and copy["objectKey"].startswith("lb/")
            data = store.get_object("backups", copy["objectKey"]).read()
            assert hashlib.sha256(data).hexdigest() == b["sha256"]

        container = server_container(db_id)
        container.stop(timeout=5)
        failed = api.post(f"/dependency-resources/backup-policies/{policy}/runs", {})["id"]
        shown = until(api, f"/dependency-resources/backups/{failed}",
                      lambda s: s["backup"]["status"] != "pending", timeout=60)["backup"]
        assert shown["status"] == "failed" and shown["failureCode"] == "dump-failed"
        assert shown["phase"] == "dump" and shown["failureMessage"]
        after = api.get(f"/dependency-resources/{db_id}/backups", params={"status": "ready"})
        assert [b["id"] for b in after["items"]] == [b["id"] for b in kept]
        assert sorted(p.name for p in settings.resolved_backups_dir.rglob("*.dump")) == files
        assert not list(settings.resolved_backups_dir.rglob("*.partial"))
        assert len(list(store.list_objects("backups", recursive=True))) == 3
    finally:
        api.request("DELETE", f"/dependency-resources/{db_id}?releaseBackups=true")
        until(api, "/dependency-resources", lambda s: all(
            d["id"] != db_id for d in s["items"]), timeout=60)


def test_sigkill_during_a_backup_and_during_a_restore(tmp_path: Path) -> None:
    """The control plane is killed while a backup streams, then while a restore runs: once
    it is back, each is retried to its end, the database answers, and nothing partial is
    ready."""

    from support import ADMIN_EMAIL, ADMIN_PASSWORD, login

    port = free_port()
    backups = tmp_path / "backups"
    settings = {"LAUNCHBAY_DATABASE_IMAGES": json.dumps({"postgres": images.ensure_postgres()}),
                "LAUNCHBAY_BACKUPS_DIR": str(backups)}
    proc = serve(tmp_path, port, **settings)
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    db_id = server_id = None
    try:
        http.post("/api/bootstrap/auth/first-admin",
                  json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
        api = login(http, ADMIN_EMAIL, ADMIN_PASSWORD)
        server_id = api.get("/servers")["items"][0]["id"]
        ids = make_app(api, images.ensure_app("postgres"), name="big")
        db_id = api.post("/dependency-resources/provision", {
            "kind": "postgres", "projectId": ids["project"], "environmentId": ids["env"],
            "name": "big"})["id"]
        until(api, f"/dependency-resources/{db_id}",
              lambda s: s["dependencyResource"]["lifecycleStatus"] == "ready")
        api.post(f"/resources/{ids['resource']}/dependency-bindings",
                 {"dependencyResourceId": db_id, "targetName": "DATABASE_URL"})
        url = f"http://127.0.0.1:{deployed(api, ids)['hostPort']}"
        assert body(f"{url}/cgi-bin/write?1").strip() == "ok"
        # Enough rows (about 60 MB, not compressible) that a dump and a restore take a while.
        container = server_container(db_id)
        filled = container.exec_run(["psql", "-U", "app", "-d", "big", "-c",
                                     "CREATE TABLE filler AS SELECT g, md5(random()::text) || "
                                     "md5(random()::text) AS a FROM generate_series(1, 800000) g"])
        assert filled.exit_code == 0, filled.output

        def killed_while(path: str, running: Any) -> None:
            nonlocal proc
            deadline = time.monotonic() + 60
            while not running(api.get(path)):
                assert time.monotonic() < deadline, api.get(path)
                time.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            proc = serve(tmp_path, port, **settings)

        backup = api.post(f"/dependency-resources/{db_id}/backups", {})["id"]
        killed_while(f"/dependency-resources/backups/{backup}",
                     lambda s: s["backup"]["phase"] == "dump")
        assert api.get(f"/dependency-resources/backups/{backup}")["backup"]["status"] != "ready"
        done = until(api, f"/dependency-resources/backups/{backup}",
                     lambda s: s["backup"]["status"] != "pending")["backup"]
        assert done["status"] == "ready", done
        work = api.get(f"/operator-work/{done['attemptId']}")["item"]
        assert work["status"] == "succeeded" and work["attempts"] == 2  # taken up again
        files = list(backups.rglob("*"))
        assert [f.name for f in files if f.is_file()] == [done["providerArtifactHandle"]]
        assert hashlib.sha256(files[-1].read_bytes()).hexdigest() == done["sha256"]

        assert body(f"{url}/cgi-bin/write?2").strip() == "ok"
        api.post(f"/dependency-resources/backups/{backup}/restore",
                 {"acknowledgeDataOverwrite": True})
        killed_while(f"/dependency-resources/backups/{backup}", lambda s: (
            s["backup"]["latestRestoreAttempt"] or {}).get("status") == "pending" and any(
            b["reason"] == "safety" and b["status"] == "ready"
            for b in api.get(f"/dependency-resources/{db_id}/backups")["items"]))
        restored = until(api, f"/dependency-resources/backups/{backup}", lambda s: (
            s["backup"]["latestRestoreAttempt"] or {}).get("status") in ("succeeded", "failed"))
        attempt = restored["backup"]["latestRestoreAttempt"]
        assert attempt["status"] == "succeeded", restored
        assert api.get(f"/operator-work/{attempt['attemptId']}")["item"]["attempts"] == 2
        assert rows(url) == "1"  # the database answers, with exactly the backup's rows
        assert all(b["status"] in ("ready", "failed") for b in api.get(
            f"/dependency-resources/{db_id}/backups")["items"])
        assert not list(backups.rglob("*.partial"))
    finally:
        if db_id:
            for c in docker.from_env().containers.list(
                    all=True, filters={"label": f"launchbay.database={db_id}"},
                    ignore_removed=True):
                c.remove(force=True)
            docker.from_env().volumes.get(f"lb-db-{db_id}").remove(force=True)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        if server_id:
            remove_runtime(server_id)
