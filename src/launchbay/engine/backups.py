"""Backup files, whatever they hold (a database's dump, a storage volume's archive).

A backup is written to `<file>.partial` while its sha256 is computed, read whole by a
verifier of its kind, and only then renamed and marked `ready`; each copy to a destination
(S3-compatible object storage) is recorded beside it. A restore reads only the file that was
verified (its sha256 checked again first).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from launchbay.crypto import SecretBox
from launchbay.drivers.object_storage import Bucket, StorageError
from launchbay.drivers.source_checkout import GitPolicy
from launchbay.engine.runtime import Runtime
from launchbay.engine.worker import Job, Refused
from launchbay.settings import Settings
from launchbay.store.models import Backup, BackupCopy, BackupDestination, utcnow

# Writes a backup to the function it is given; (exit code, the tail of its errors).
Dump = Callable[[Callable[[bytes], None]], tuple[int, str]]
Verify = Callable[[Path], "str | None"]  # why the file at the path is unusable, or None


class BackupFiles:
    """Where backups are kept (`backups_dir`/organization/source/) and how one is made."""

    def __init__(self, sessions: sessionmaker, box: SecretBox, settings: Settings):
        self.sessions, self.box, self.settings = sessions, box, settings
        self.root = settings.resolved_backups_dir

    def path(self, b: Backup) -> Path:
        source = b.database_id or b.storage_volume_id or "unknown"
        return self.root / b.organization_id / source / (b.file_name or f"{b.id}.partial")

    def partial(self, b: Backup) -> Path:
        return self.path(b).with_name(f"{b.id}.partial")

    def make(self, job: Job, b: Backup, extension: str, dump: Dump, verify: Verify) -> Backup:
        """Dumps, verifies and files one backup, then copies it to its destinations; marks it
        ready, or failed with its phase (then raises)."""
        partial = self.partial(b)
        partial.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        digest, size = hashlib.sha256(), 0
        job.progress("backup", "dump")
        with partial.open("wb") as out:
            def write(chunk: bytes) -> None:
                nonlocal size
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
            code, errors = dump(write)
        if code != 0 or size == 0:
            partial.unlink(missing_ok=True)
            self.fail(b, "dump", "dump-failed", errors or f"the dump exited with {code}")
        job.progress("backup", "verify")
        if problem := verify(partial):
            partial.unlink(missing_ok=True)
            self.fail(b, "verify", "verification-failed", problem)
        name = f"{b.id}.{extension}"
        partial.rename(partial.with_name(name))
        with self.sessions() as s:
            row = s.get_one(Backup, b.id)
            row.status, row.phase, row.file_name = "ready", "done", name
            row.size_bytes, row.sha256, row.completed_at = size, digest.hexdigest(), utcnow()
            row.failure_code = row.failure_message = None
            s.commit()
            s.expunge(row)
        if row.destination_ids:
            self.copy(job, row)
        return row

    def copy(self, job: Job, b: Backup) -> None:
        """Uploads a ready backup to each of its destinations; each copy's outcome is kept
        (a destination that fails does not undo the others, nor the local backup)."""
        path = self.path(b)
        with self.sessions() as s:
            targets = s.scalars(select(BackupDestination).where(
                BackupDestination.id.in_(b.destination_ids))).all()
            s.expunge_all()
        for t in targets:
            job.progress("backup", f"copy to {t.name}")
            key = object_key(t, b)
            copy = BackupCopy(backup_id=b.id, destination_id=t.id, object_key=key)
            try:
                if problem := outbound_problem(t.endpoint, self.settings):
                    raise StorageError(problem)
                copy.size_bytes = bucket_of(t, self.box).put(key, path, b.sha256 or "")
                copy.status, copy.uploaded_at = "uploaded", utcnow()
                if copy.size_bytes != b.size_bytes:
                    copy.status, copy.failure_message = "failed", "the sizes differ"
            except StorageError as exc:
                copy.status, copy.failure_message = "failed", str(exc)[-2000:]
            with self.sessions() as s:
                s.merge(copy)
                s.commit()

    def verified(self, b: Backup) -> Path:
        """The file of a ready backup, if it is still the one that was verified."""
        path = self.path(b)
        if b.status != "ready" or not path.is_file() or sha256_of(path) != b.sha256:
            raise Refused("backup-corrupted", "the backup file is missing or is not the one "
                          "that was verified; nothing was restored")
        return path

    def fail(self, b: Backup, phase: str, code: str, message: str) -> NoReturn:
        with self.sessions() as s:
            row = s.get_one(Backup, b.id)
            row.status, row.phase = "failed", phase
            row.failure_code, row.failure_message = code, message.strip()[-2000:]
            row.completed_at = utcnow()
            s.commit()
        raise Refused(code, message.strip()[-500:])

    def given_up(self, b: Backup, code: str, message: str) -> None:
        """A backup whose work will not be tried again: failed (in the caller's session),
        its partial file gone."""
        if b.status != "ready":
            b.status, b.failure_code, b.failure_message = "failed", code, message
            self.partial(b).unlink(missing_ok=True)


def present(job: Job, docker: Runtime, image: str) -> None:
    """Pulls an image the operator chose (a database's, the volume tool's) if the server does
    not have it yet."""
    if docker.image_id(image) is None:
        job.progress(step=f"pulling {image}")
        docker.pull(image)


def outbound_problem(endpoint: str, settings: Settings, *, resolve: bool = True,
                     allowed: list[str] | None = None) -> str | None:
    """Why launchbay may not connect to `endpoint`, or None: every address it is at must be
    public or in `allowed` (`backup_allowed_networks` unless said: an object store's), and
    none in the denied networks, so that a user cannot make the control plane reach the
    server's own services. Without `resolve`, only an address written in the endpoint is
    checked."""
    url = urlsplit(endpoint)
    host = url.hostname or ""
    policy = GitPolicy(allowed_networks=tuple(settings.backup_allowed_networks
                                              if allowed is None else allowed),
                       denied_networks=tuple(settings.git_denied_networks))
    try:
        addresses = {str(ipaddress.ip_address(host))}
    except ValueError:
        if not resolve:
            return None
        try:
            addresses = {str(i[4][0]) for i in socket.getaddrinfo(host, url.port or 443)}
        except (OSError, UnicodeError) as exc:
            return f"cannot resolve {host}: {exc}"
    refused = sorted(a for a in addresses if not policy.admits_address(a))
    return f"{host} is at {refused[0]}, which is not a public address" if refused else None


def object_key(t: BackupDestination, b: Backup) -> str:
    source = b.database_id or b.storage_volume_id
    return "/".join(p for p in (t.prefix, b.organization_id, source, b.file_name) if p)


def bucket_of(t: BackupDestination, box: SecretBox) -> Bucket:
    keys = json.loads(box.decrypt(t.sealed_credentials))
    return Bucket(endpoint=t.endpoint, name=t.bucket, access_key=keys["accessKeyId"],
                  secret_key=keys["secretAccessKey"], region=t.region)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
