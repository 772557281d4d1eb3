"""Databases end to end on the real engine: provision PostgreSQL, bind it to an app that reads
and writes through the injected URL, back up, write more, restore, and find exactly the first
rows; a truncated backup never verifies; nothing but the database's own delete removes its
volume; its password is on no process's command line."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from launchbay.engine.databases import KINDS
from launchbay.settings import Settings
from launchbay.store.models import BackupPolicy, Database, utcnow

import images
from docker_support import body, deployed, remove_runtime
from support import Api, free_port, make_app, spawn


@pytest.fixture(scope="module")
def s3() -> Iterator[str]:
    """An S3-compatible server on loopback (moto's), with the bucket `backups`."""
    port = free_port()
    proc = spawn([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p",
                  str(port)])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline and proc.poll() is None, "moto did not start"
            time.sleep(0.2)
    bucket(url).make_bucket("backups")
    yield url
    proc.terminate()
    proc.wait(10)


def bucket(url: str | None = None) -> Any:
    from minio import Minio

    return Minio((url or "").removeprefix("http://") or "127.0.0.1", access_key="test",
                 secret_key="test-secret", secure=False, region="us-east-1")


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database_url, workers=2,
                    edge_enabled=False, shipped_templates=False, worker_poll_seconds=0.1,
                    work_lease_seconds=5, reconcile_seconds=2,
                    database_images={"postgres": images.ensure_postgres(),
                                     "mysql": images.ensure_mariadb(),
                                     "redis": images.ensure_redis()},
                    backups_dir=tmp_path / "backups", backup_allowed_networks=["127.0.0.0/8"])


def until(api: Api, path: str, done: Any, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        shown = api.get(path)
        if done(shown):
            return shown
        assert time.monotonic() < deadline, shown
        time.sleep(0.3)


def rows(url: str) -> str:
    return body(f"{url}/cgi-bin/read").strip()


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
        answered = cp.workers.handlers["database"]._tool(
            cp.targets.of(db.server_id), db, password, KINDS[kind].probe(db), "probe")
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
    assert not client.containers.list(all=True, filters={"label": f"launchbay.database={db_id}"})
    assert volume not in {v.name for v in client.volumes.list()}
    assert KINDS["postgres"].restore is not None


def test_retention_keeps_the_newest_good_backups_and_a_failed_run_deletes_none(
        api: Api, cp: Any, settings: Settings, s3: str) -> None:
    """A policy keeping 3, run 5 times (its due time moved into the past each time, as a
    test clock): exactly the 3 newest remain, on disk and in the store; then a run against a
    database that does not answer fails and deletes nothing."""
    ids = make_app(api, "lbtest/hello:v1")
    db_id = api.post("/dependency-resources/provision", {
        "kind": "postgres", "projectId": ids["project"], "environmentId": ids["env"],
        "name": "kept"})["id"]
    client = docker.from_env()
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
        kept = api.get(f"/dependency-resources/{db_id}/backups")["items"]
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

        container = client.containers.list(filters={"label": f"launchbay.database={db_id}"})[0]
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


def test_the_db_commands(api: Api, server: str, tmp_path: Path, monkeypatch: Any) -> None:
    """`launchbay db create|list|bind|backup|backups|restore|delete` against the real engine."""
    from typer.testing import CliRunner

    from launchbay.cli.main import app

    monkeypatch.setenv("LAUNCHBAY_CLI_CONFIG", str(tmp_path / "cli"))
    monkeypatch.setenv("LAUNCHBAY_URL", server)
    monkeypatch.setenv("LAUNCHBAY_TOKEN", api.token)
    runner = CliRunner()

    def cli(*args: str, ok: bool = True) -> str:
        result = runner.invoke(app, list(args))
        assert (result.exit_code == 0) == ok, (args, result.exit_code, result.output)
        return result.output

    ids = make_app(api, images.ensure_app("postgres"), name="shop")
    project = api.get(f"/projects/{ids['project']}")["slug"]
    created = cli("db", "create", "orders", "--env", f"{project}/production")
    assert created.startswith("ready db_") and ":****@" in created
    assert "orders" in cli("db", "list")
    cli("db", "bind", "orders", "shop")
    url = f"http://127.0.0.1:{deployed(api, ids)['hostPort']}"
    assert body(f"{url}/cgi-bin/write?7").strip() == "ok"
    backup = cli("db", "backup", "orders").split()[1].rstrip(":")
    assert backup.startswith("dbk_") and backup in cli("db", "backups", "orders")
    assert body(f"{url}/cgi-bin/write?8").strip() == "ok"
    cli("db", "restore", backup, "--confirm", "wrong", ok=False)
    assert rows(url) == "7,8"
    assert "restored orders" in cli("db", "restore", backup, "--confirm", "orders")
    assert rows(url) == "7"
    assert "in use" in cli("db", "delete", "orders", "--confirm", "orders", ok=False)
    bindings = f"/resources/{ids['resource']}/dependency-bindings"
    api.ok("DELETE", f"{bindings}/{api.get(bindings)['items'][0]['id']}")
    cli("db", "delete", "orders", "--confirm", "orders", "--release-backups")
    until(api, "/dependency-resources", lambda s: s["items"] == [], timeout=60)


def test_sigkill_during_a_backup_and_during_a_restore(tmp_path: Path) -> None:
    """The control plane is killed while a backup streams, then while a restore runs: once
    it is back, each is retried to its end, the database answers, and nothing partial is
    ready."""
    from test_resilience import _serve

    from support import ADMIN_EMAIL, ADMIN_PASSWORD, login

    port = free_port()
    backups = tmp_path / "backups"
    settings = {"LAUNCHBAY_DATABASE_IMAGES": json.dumps({"postgres": images.ensure_postgres()}),
                "LAUNCHBAY_BACKUPS_DIR": str(backups)}
    proc = _serve(tmp_path, port, **settings)
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
        container = docker.from_env().containers.list(
            filters={"label": f"launchbay.database={db_id}"})[0]
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
            proc = _serve(tmp_path, port, **settings)

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
                    all=True, filters={"label": f"launchbay.database={db_id}"}):
                c.remove(force=True)
            docker.from_env().volumes.get(f"lb-db-{db_id}").remove(force=True)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        if server_id:
            remove_runtime(server_id)
