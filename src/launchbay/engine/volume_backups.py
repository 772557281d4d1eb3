"""Backups of storage volumes, and restores of them into new volumes.

A volume's backup is a gzipped tar of its files, made by a one-off container of the operator's
`volume_tool_image` with the volume mounted read-only and no network, and filed like a
database's (`engine/backups.py`): verified by reading the archive whole before it is `ready`.
It is a copy of files as they are while it runs: an app that writes meanwhile may leave a
file half-written in it (a database's own backup is the consistent one). A restore fills a new
volume from the verified file; the volume backed up is never touched.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from sqlalchemy.orm import sessionmaker

from launchbay.crypto import SecretBox
from launchbay.engine.backups import BackupFiles, present
from launchbay.engine.runtime import ContainerSpec, Runtime, RuntimeFailure
from launchbay.engine.targets import Targets
from launchbay.engine.worker import Job, Refused, Retry
from launchbay.settings import Settings
from launchbay.store.models import Backup, OperatorWork, utcnow

MOUNT = "/volume"
TOOL_TIMEOUT = 6 * 3600.0


class VolumeWork:
    """The handler of `storage-volume` work items: back up a volume, or restore a backup into
    a new one."""

    def __init__(self, sessions: sessionmaker, box: SecretBox, targets: Targets,
                 settings: Settings):
        self.sessions, self.targets = sessions, targets
        self.image = settings.volume_tool_image
        self.files = BackupFiles(sessions, box, settings)

    def run(self, job: Job) -> str:
        payload = job.item.payload
        with self.sessions() as s:
            b = s.get(Backup, payload.get("backup_id", ""))
            if b is None:
                raise Refused("backup-gone", "the backup no longer exists")
            s.expunge(b)
        docker = self.targets.of(payload["server_id"])
        try:
            present(job, docker, self.image)
            if payload.get("action") == "backup":
                self._backup(job, docker, b, payload["volume"])
            elif payload.get("action") == "restore":
                self._restore(job, docker, b, payload["volume"], payload["storage_volume_id"])
            else:
                raise Refused("unknown-action", f"unknown volume work {payload.get('action')!r}")
        except RuntimeFailure as exc:
            raise Retry("engine-unavailable", str(exc)) from None
        return "succeeded"

    def give_up(self, item: OperatorWork, code: str, message: str) -> None:
        """A backup whose work will not be tried again is failed, its partial file gone."""
        if item.payload.get("action") != "backup":
            return
        with self.sessions() as s:
            b = s.get(Backup, item.payload.get("backup_id", ""))
            if b is not None:
                self.files.given_up(b, code, message)
            s.commit()

    def _backup(self, job: Job, docker: Runtime, b: Backup, volume: str) -> None:
        if b.status == "ready":  # done before a crash: nothing to do again
            return
        with self.sessions() as s:
            row = s.get_one(Backup, b.id)
            row.status, row.phase, row.file_name = "running", "dump", None
            s.commit()
        self.files.make(
            job, b, "tar.gz",
            lambda write: self._tool(docker, b, volume, "ro", "backup",
                                     ["tar", "-C", MOUNT, "-czf", "-", "."], stdout=write),
            lambda path: self._verify(docker, b, path))

    def _verify(self, docker: Runtime, b: Backup, path: Path) -> str | None:
        with path.open("rb") as source:
            code, errors = self._tool(docker, b, None, "ro", "verify",
                                      ["sh", "-c", "tar -tzf - > /dev/null"], stdin=source)
        return None if code == 0 else \
            f"the archive does not read whole: {errors.strip()[-500:] or code}"

    def _restore(self, job: Job, docker: Runtime, b: Backup, volume: str,
                 storage_volume_id: str) -> None:
        """Fills the new volume from the backup, once its file is checked to be the one that
        was verified; a restore that fails leaves the new volume empty."""
        path = self.files.verified(b)
        job.progress("restore", "verify")
        if problem := self._verify(docker, b, path):
            raise Refused("backup-unusable", f"{problem}; nothing was restored")
        docker.ensure_volume(volume, {"launchbay.storage-volume": storage_volume_id})
        job.progress("restore", "extract")
        with path.open("rb") as source:
            code, errors = self._tool(docker, b, volume, "rw", "restore",
                                      ["tar", "-C", MOUNT, "-xzf", "-"], stdin=source)
        if code != 0:
            self._tool(docker, b, volume, "rw", "restore",
                       ["sh", "-c", f"rm -rf {MOUNT}/* {MOUNT}/.[!.]* {MOUNT}/..?*"])
            raise Refused("restore-failed", f"the archive did not extract; the new volume "
                          f"was emptied: {errors.strip()[-500:] or code}")
        with self.sessions() as s:
            s.get_one(Backup, b.id).restored_at = utcnow()
            s.commit()
        job.progress("restore", f"restored backup {b.id} ({b.size_bytes} bytes)")

    def _tool(self, docker: Runtime, b: Backup, volume: str | None, mode: str, purpose: str,
              command: list[str], *, stdin: BinaryIO | None = None,
              stdout: Callable[[bytes], None] | None = None) -> tuple[int, str]:
        return docker.run_to_end(ContainerSpec(
            name=f"lb-vol-{b.id}-{purpose}-{secrets.token_hex(3)}", image=self.image,
            labels={"launchbay.storage-volume": b.storage_volume_id or "",
                    "launchbay.run": purpose}, network="none", command=command,
            volumes=[(volume, MOUNT, mode)] if volume else []),
            stdin=stdin, stdout=stdout, timeout=TOOL_TIMEOUT)


def holds_data(docker: Runtime, image: str, volume: str) -> bool:
    """Whether the volume has any file (a one-off container looks, the volume read-only)."""
    if docker.image_id(image) is None:
        docker.pull(image)
    code, _ = docker.run_to_end(ContainerSpec(
        name=f"lb-vol-look-{secrets.token_hex(4)}", image=image,
        labels={"launchbay.run": "look"}, network="none",
        command=["sh", "-c", f'[ -z "$(ls -A {MOUNT})" ]'], volumes=[(volume, MOUNT, "ro")]),
        timeout=120)
    return code != 0
