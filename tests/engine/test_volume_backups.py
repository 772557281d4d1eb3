"""Storage volumes backed up (locally and to an S3-compatible server) and restored into a new
volume on the real engine; a truncated archive is never restored; a runtime cleanup removes a
volume's data only when nothing uses it and its loss is confirmed."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import docker
from database_support import bucket, until

import images
from support import Api, make_app

FILES = "cd /v && echo hello > a.txt && mkdir -p sub && dd if=/dev/urandom of=sub/blob " \
    "bs=1k count=300 2>/dev/null"


def stream(api: Api, path: str) -> list[tuple[str, Any]]:
    """The (event, data) of a Server-Sent Events stream, until it ends."""
    events, kind = [], "message"
    with api.client.stream("GET", f"/api{path}", timeout=60,
                           headers={"Authorization": f"Bearer {api.token}"}) as answer:
        assert answer.status_code == 200, answer.read()
        for line in answer.iter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((kind, json.loads(line.removeprefix("data: "))))
                kind = "message"
    return events


def _in(volume: str, script: str) -> str:
    """`script`'s output, run with the Docker volume at /v."""
    out = docker.from_env().containers.run(images.ensure("lbtest/busybox:v1"), ["sh", "-c", script],
                                           volumes={volume: {"bind": "/v"}}, remove=True)
    return out.decode().strip()


def test_a_volume_is_backed_up_restored_into_a_new_one_and_cleaned_up_only_when_safe(
        api: Api, cp: Any, settings: Any, s3: str) -> None:
    ids = make_app(api, "lbtest/hello:v1")
    volume = api.post("/storage-volumes", {"projectId": ids["project"],
                                           "environmentId": ids["env"], "name": "data"})["id"]
    name = api.get(f"/storage-volumes/{volume}")["storageVolume"]["dockerName"]
    _in(name, FILES)
    digest = _in(name, "sha256sum /v/sub/blob | cut -d' ' -f1")
    destination = api.post("/backup-destinations", {
        "name": "s3", "endpoint": s3, "bucket": "backups", "region": "us-east-1",
        "accessKeyId": "test", "secretAccessKey": "test-secret"})["id"]

    backup_id = api.post(f"/storage-volumes/{volume}/backups",
                         {"destinationIds": [destination]})["id"]
    work = api.get(f"/storage-volume-backups/{backup_id}")["backup"]["attemptId"]
    events = stream(api, f"/operator-work/{work}/events/stream")  # until the work ends
    assert events[-1] == ("done", {"workId": work, "status": "succeeded"})
    assert [e for kind, e in events if kind == "work"][-1]["status"] == "succeeded"
    backup = until(api, f"/storage-volume-backups/{backup_id}", lambda s: s["backup"][
        "status"] == "failed" or s["backup"]["copies"])["backup"]  # (copied once ready)
    assert backup["status"] == "ready", backup
    (path,) = settings.resolved_backups_dir.rglob(backup["providerArtifactHandle"])
    assert path.parent.name == volume and not list(path.parent.glob("*.partial"))
    assert hashlib.sha256(path.read_bytes()).hexdigest() == backup["sha256"]
    (copy,) = backup["copies"]
    uploaded = bucket(s3).get_object("backups", copy["objectKey"]).read()
    assert copy["status"] == "uploaded" and hashlib.sha256(uploaded).hexdigest() == backup[
        "sha256"]
    listed = api.get(f"/storage-volumes/{volume}/backups")["items"]
    assert [b["id"] for b in listed] == [backup_id]
    assert api.get(f"/storage-volumes/{volume}")["storageVolume"]["backupRelationship"][
        "retentionRequired"]

    # Restored into a new volume: the same files; the volume backed up untouched.
    restored = api.post(f"/storage-volume-backups/{backup_id}/restore",
                        {"restoredVolumeName": "data-copy"})
    done = until(api, f"/storage-volume-backups/{backup_id}", lambda s: (
        s["backup"]["latestRestoreAttempt"] or {}).get("status") in ("succeeded", "failed"))
    assert done["backup"]["latestRestoreAttempt"]["status"] == "succeeded", done
    copy_name = api.get(f"/storage-volumes/{restored['id']}")["storageVolume"]["dockerName"]
    assert _in(copy_name, "cat /v/a.txt; sha256sum /v/sub/blob | cut -d' ' -f1") == \
        f"hello\n{digest}"
    assert _in(name, "cat /v/a.txt") == "hello"

    # A truncated archive: never restored.
    handler = cp.workers.handlers["storage-volume"]
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size // 2)
    from launchbay.store.models import Backup
    with cp.sessions() as s:
        row = s.get_one(Backup, backup_id)
        s.expunge(row)
    problem = handler._verify(cp.targets.of(api.get("/servers")["items"][0]["id"]), row, path)
    assert problem and "whole" in problem
    again = api.post(f"/storage-volume-backups/{backup_id}/restore",
                     {"restoredVolumeName": "again"})["id"]
    failed = until(api, f"/storage-volume-backups/{backup_id}", lambda s: (
        s["backup"]["latestRestoreAttempt"] or {}).get("status") in ("succeeded", "failed"))
    assert failed["backup"]["latestRestoreAttempt"]["failureCode"] == "backup-corrupted"

    # Runtime cleanup: blocked while attached, a dry run by default, confirmed for data.
    server = api.get("/servers")["items"][0]["id"]
    cleanup = f"/storage-volumes/{volume}/runtime-cleanup"
    attachment = api.post(f"/resources/{ids['resource']}/storage-attachments",
                          {"storageVolumeId": volume, "destinationPath": "/data"})["id"]
    blocked = api.post(cleanup, {"serverId": server, "before": "2100-01-01T00:00:00Z",
                                 "dryRun": False, "acknowledgeDataLoss": True})
    assert blocked["candidates"][0]["blockedReason"] == "active-attachment"
    api.ok("DELETE", f"/resources/{ids['resource']}/storage-attachments/{attachment}")
    unconfirmed = api.post(cleanup, {"serverId": server, "before": "2100-01-01T00:00:00Z",
                                     "dryRun": False})
    assert unconfirmed["candidates"][0]["blockedReason"] == "has-data"
    assert unconfirmed["warnings"][0]["code"] == "has-data"
    dry = api.post(cleanup, {"serverId": server, "before": "2100-01-01T00:00:00Z",
                             "acknowledgeDataLoss": True})  # a dry run unless said otherwise
    assert dry["dryRun"] and dry["summary"]["matchedCount"] == 1 and not dry["cleanedAt"]
    early = api.post(cleanup, {"serverId": server, "before": "2000-01-01T00:00:00Z",
                               "dryRun": False, "acknowledgeDataLoss": True})
    assert early["candidates"][0]["action"] == "skipped"
    assert _in(name, "cat /v/a.txt") == "hello"  # nothing of it removed so far
    cleaned = api.post(cleanup, {"serverId": server, "before": "2100-01-01T00:00:00Z",
                                 "dryRun": False, "acknowledgeDataLoss": True})
    assert cleaned["summary"]["cleanedCount"] == 1
    assert name not in {v.name for v in docker.from_env().volumes.list()}
    assert api.get(f"/storage-volumes/{volume}")["storageVolume"]["id"] == volume  # declared

    # Deleted only with its backups released; they outlive it.
    refused = api.request("DELETE", f"/storage-volumes/{volume}")
    assert refused.status_code == 409 and "releaseBackups" in refused.text
    api.ok("DELETE", f"/storage-volumes/{volume}?releaseBackups=true")
    kept = api.get(f"/storage-volume-backups/{backup_id}")["backup"]
    assert kept["storageVolumeName"] is None and kept["status"] == "ready"
    for v in (restored["id"], again):
        api.ok("DELETE", f"/storage-volumes/{v}")
