"""Databases on a server: provisioning, backups, verification and restores.

Each kind is described once (`KINDS`): the image's contract (the official images' variables,
data folder and port), how to tell it answers, and its dump, verify and restore commands.
Every tool runs in a one-off container of the database's own image, so its version matches
the server's; passwords reach it only through its environment (or, for a rotation's
statements, its standard input), never a command line. Backups are filed by
`engine/backups.py`: verified by the kind's own reader before they are `ready`.
"""

from __future__ import annotations

import io
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from launchbay.crypto import SecretBox
from launchbay.drivers.object_storage import StorageError
from launchbay.engine.backups import BackupFiles, bucket_of, present
from launchbay.engine.runtime import ContainerSpec, Runtime, RuntimeFailure
from launchbay.engine.targets import Targets
from launchbay.engine.worker import Job, Refused, Retry
from launchbay.settings import Settings
from launchbay.store import audit
from launchbay.store.models import (
    Backup,
    BackupCopy,
    BackupDestination,
    BackupPolicy,
    CredentialRotation,
    Database,
    OperatorWork,
    utcnow,
)

log = logging.getLogger("launchbay.databases")

READY_TIMEOUT = 120.0  # seconds a new database has to answer
TOOL_TIMEOUT = 6 * 3600.0  # one dump, verification or restore


@dataclass(frozen=True)
class Kind:
    """What launchbay knows of one kind of database."""

    port: int
    data_path: str
    scheme: str
    extension: str
    server_env: Callable[[Database, str, str], dict[str, str]]  # first start (password, admin's)
    client_env: Callable[[Database, str], dict[str, str]]  # a tool's credentials
    probe: Callable[[Database, str], list[str]]  # exits 0 once the server answers a login
    dump: Callable[[Database], list[str]]  # writes the backup to its standard output
    verify: list[str]  # reads a backup on its standard input; exits 0 if whole
    restore: Callable[[Database], list[str]] | None  # reads a backup on standard input
    discrete: Callable[[Database, str], dict[str, str]]  # the usual variables of its clients
    client: Callable[[Database, str], list[str]]  # reads statements as a user
    # A rotation's statements (read by `client`, so that no password is on a command line):
    # `grant` adds a login beside the current one, `revoke` disables one.
    grant: Callable[[Database, str, str], str]  # (login, password)
    revoke: Callable[[Database, str, str], str]  # (login, password)
    # Whether `verify`'s output shows something to restore (restoring an archive without
    # entries restores nothing); None when the kind's verify cannot tell.
    has_entries: Callable[[bytes], bool] | None = None
    admin: str | None = None  # the user a rotation runs as, when not the current login


def _pg_discrete(db: Database, password: str) -> dict[str, str]:
    return {"PGHOST": db.host, "PGPORT": str(db.port), "PGUSER": login_of(db),
            "PGPASSWORD": password, "PGDATABASE": db.database_name or ""}


POSTGRES = Kind(
    port=5432, data_path="/var/lib/postgresql/data", scheme="postgresql", extension="dump",
    server_env=lambda db, pw, _: {"POSTGRES_USER": db.username or "", "POSTGRES_PASSWORD": pw,
                                  "POSTGRES_DB": db.database_name or ""},
    client_env=lambda db, pw: {"PGPASSWORD": pw, "PGCONNECT_TIMEOUT": "5"},
    probe=lambda db, login: ["psql", "-h", db.host, "-U", login, "-d",
                             db.database_name or "", "-tAc", "SELECT 1"],
    dump=lambda db: ["pg_dump", "-Fc", "-h", db.host, "-U", login_of(db), "-d",
                     db.database_name or ""],
    # A custom-format archive read whole: a truncated one fails here.
    verify=["sh", "-c", "cat > /tmp/backup && pg_restore --list /tmp/backup"],
    restore=lambda db: ["sh", "-c", "cat > /tmp/backup && exec pg_restore --clean --if-exists "
                        "--single-transaction --exit-on-error --no-owner --no-privileges "
                        f"-h {db.host} -U {login_of(db)} -d {db.database_name} /tmp/backup"],
    discrete=_pg_discrete,
    has_entries=lambda listing: any(line.strip() and not line.startswith(b";")
                                    for line in listing.splitlines()),
    client=lambda db, user: ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", db.host, "-U",
                             user, "-d", db.database_name or ""],
    # A login of its own that acts as the owner (PostgreSQL keeps one password per role).
    grant=lambda db, login, pw: (
        f"SELECT 'CREATE ROLE \"{login}\" LOGIN' WHERE NOT EXISTS "
        f"(SELECT FROM pg_roles WHERE rolname = '{login}')\\gexec\n"
        f"ALTER ROLE \"{login}\" LOGIN PASSWORD '{pw}';\n"
        f"GRANT \"{db.username}\" TO \"{login}\";\n"
        f"ALTER ROLE \"{login}\" SET role = '{db.username}';\n"),
    revoke=lambda db, login, _: (
        f"ALTER ROLE \"{login}\" NOLOGIN PASSWORD NULL;\n"
        f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        f"WHERE usename = '{login}';\n"),
)


def _mysql_discrete(db: Database, password: str) -> dict[str, str]:
    return {"MYSQL_HOST": db.host, "MYSQL_PORT": str(db.port), "MYSQL_USER": login_of(db),
            "MYSQL_PASSWORD": password, "MYSQL_DATABASE": db.database_name or ""}


def _either(mariadb: str, mysql: str, *args: str) -> list[str]:
    """MariaDB's images name their clients `mariadb*`, MySQL's `mysql*`: whichever is there."""
    return ["sh", "-c", f'if command -v {mariadb} >/dev/null; then exec {mariadb} "$@"; fi; '
            f'exec {mysql} "$@"', "sh", *args]


MYSQL = Kind(  # MariaDB's and MySQL's images read the same MYSQL_* variables
    port=3306, data_path="/var/lib/mysql", scheme="mysql", extension="sql",
    server_env=lambda db, pw, admin: {
        "MYSQL_USER": db.username or "", "MYSQL_PASSWORD": pw,
        "MYSQL_DATABASE": db.database_name or "",
        **({"MYSQL_ROOT_PASSWORD": admin} if admin else {"MYSQL_RANDOM_ROOT_PASSWORD": "yes"})},
    client_env=lambda db, pw: {"MYSQL_PWD": pw},
    probe=lambda db, login: _either("mariadb", "mysql", "-h", db.host, "-u", login,
                                    db.database_name or "", "-e", "SELECT 1"),
    dump=lambda db: _either("mariadb-dump", "mysqldump", "--single-transaction", "--routines",
                            "--no-tablespaces", "-h", db.host, "-u", login_of(db),
                            db.database_name or ""),
    # A whole dump ends with this line; a truncated file does not.
    verify=["sh", "-c", "tail -c 200 | grep -q -- '-- Dump completed'"],
    restore=lambda db: _either("mariadb", "mysql", "-h", db.host, "-u", login_of(db),
                               db.database_name or ""),
    discrete=_mysql_discrete,
    grant=lambda db, login, pw: (
        f"CREATE USER IF NOT EXISTS '{login}'@'%' IDENTIFIED BY '{pw}';\n"
        f"ALTER USER '{login}'@'%' IDENTIFIED BY '{pw}' ACCOUNT UNLOCK;\n"
        f"GRANT ALL PRIVILEGES ON `{db.database_name}`.* TO '{login}'@'%';\n"),
    client=lambda db, user: _either("mariadb", "mysql", "-h", db.host, "-u", user),
    # Locked (and its password forgotten), not dropped: what it defined keeps working.
    revoke=lambda db, login, _: (f"ALTER USER '{login}'@'%' IDENTIFIED BY "
                                 f"'{secrets.token_urlsafe(24)}' ACCOUNT LOCK;\n"),
    admin="root",
)


def _redis_discrete(db: Database, password: str) -> dict[str, str]:
    return {"REDIS_HOST": db.host, "REDIS_PORT": str(db.port), "REDIS_PASSWORD": password}


REDIS = Kind(
    port=6379, data_path="/data", scheme="redis", extension="rdb",
    server_env=lambda db, pw, _: {"REDIS_PASSWORD": pw},
    client_env=lambda db, pw: {"REDISCLI_AUTH": pw},
    probe=lambda db, _: ["sh", "-c", f'test "$(redis-cli -h {db.host} ping)" = PONG'],
    dump=lambda db: ["sh", "-c", f"redis-cli -h {db.host} --rdb /tmp/dump.rdb >&2 && "
                     "cat /tmp/dump.rdb"],
    verify=["sh", "-c", "cat > /tmp/dump.rdb && redis-check-rdb /tmp/dump.rdb"],
    restore=None,  # a snapshot is loaded at the server's start: `_restore_snapshot`
    discrete=_redis_discrete,
    client=lambda db, _: ["redis-cli", "-h", db.host],
    # One user with two passwords for a while; saved to the ACL file its server starts from.
    grant=lambda db, _, pw: f"ACL SAVE\nACL SETUSER default on >{pw}\nACL SAVE\n",
    revoke=lambda db, _, pw: f"ACL SETUSER default <{pw}\nACL SAVE\n",
)

KINDS: dict[str, Kind] = {"postgres": POSTGRES, "mysql": MYSQL, "redis": REDIS}


def redis_command() -> list[str]:
    """Redis keeps its users in an ACL file in its volume (written at its first start with the
    password's hash; rotations change it), and an append-only log beside its snapshots; after
    a restore (a snapshot and no log) it starts from the snapshot, and the restore turns the
    log back on."""
    return ["sh", "-c", 'aof=yes; if [ -e /data/dump.rdb ] && [ ! -e /data/appendonlydir ]; '
            'then aof=no; fi; if [ ! -e /data/users.acl ]; then printf "user default on #%s '
            '~* &* +@all\\n" "$(printf %s "$REDIS_PASSWORD" | sha256sum | cut -d" " -f1)" '
            '> /data/users.acl; fi; printf "aclfile /data/users.acl\\nappendonly %s\\n'
            'dir /data\\n" "$aof" > /tmp/redis.conf && unset REDIS_PASSWORD && '
            "exec redis-server /tmp/redis.conf"]


def login_of(db: Database) -> str:
    """Whom apps and tools log in as: the owner until a rotation gave them a login of theirs."""
    return db.login or db.username or ""


def url_of(db: Database, password: str, *, masked: bool = False) -> str:
    """The connection URL a bound app gets (`masked`: with `****` for its password)."""
    kind = KINDS[db.kind]
    user = quote(login_of(db), safe="")
    path = "0" if db.kind == "redis" else quote(db.database_name or "", safe="")
    secret = "****" if masked else quote(password, safe="")
    return f"{kind.scheme}://{user}:{secret}@{db.host}:{db.port}/{path}"


def masked_url(db: Database) -> str:
    return url_of(db, "", masked=True)


def network_of(environment_id: str) -> str:
    return f"lb-{environment_id}"  # the environment's network, which its releases join


def container_name(db: Database) -> str:
    return f"lb-db-{db.id}"


class DatabaseWork:
    """The handler of `database` work items: provision, back up, restore or remove."""

    def __init__(self, sessions: sessionmaker, box: SecretBox, targets: Targets,
                 settings: Settings):
        self.sessions, self.box, self.targets = sessions, box, targets
        self.settings, self.files = settings, BackupFiles(sessions, box, settings)

    def run(self, job: Job) -> str:
        action = job.item.payload.get("action")
        with self.sessions() as s:
            db = s.get(Database, job.item.payload.get("database_id", ""))
            if db is None:
                raise Refused("database-gone", "the database no longer exists")
            s.expunge(db)
        password = self.box.decrypt(db.sealed_secret)
        docker = self.targets.of(db.server_id)
        try:
            if action == "provision":
                self._provision(job, docker, db, password)
            elif action in ("rotate", "revoke"):
                (self._rotate if action == "rotate" else self._revoke)(
                    job, docker, db, password, job.item.payload["rotation_id"])
            elif action == "backup":
                self._backup(job, docker, db, password, job.item.payload["backup_id"])
            elif action == "restore":
                self._restore(job, docker, db, password, job.item.payload["backup_id"])
            elif action == "remove":
                self._remove(job, docker, db)
            else:
                raise Refused("unknown-action", f"unknown database work {action!r}")
        except RuntimeFailure as exc:
            raise Retry("engine-unavailable", str(exc)) from None
        return "succeeded"

    def give_up(self, item: OperatorWork, code: str, message: str) -> None:
        """The work will not be tried again: the backup it was making (a backup's, or a
        restore's safety backup) is failed and its partial file goes."""
        action = item.payload.get("action")
        making = {"backup": "backup_id", "restore": "safety_backup_id"}.get(action or "")
        with self.sessions() as s:
            b = s.get(Backup, item.payload.get(making, "")) if making else None
            if b is not None:
                self.files.given_up(b, code, message)
            db = s.get(Database, item.payload.get("database_id", ""))
            if db is not None and action == "provision":
                db.status, db.failure_code, db.failure_message = "failed", code, message
            rot = s.get(CredentialRotation, item.payload.get("rotation_id", ""))
            if rot is not None and rot.status in ("adding", "revoking"):
                kept = "the old login stays valid" if rot.status == "revoking" else \
                    "nothing changed"
                rot.status, rot.reason = "failed", f"{code}: {message} ({kept})"
            s.commit()

    # -- provisioning -------------------------------------------------------------------------

    def _provision(self, job: Job, docker: Runtime, db: Database, password: str) -> None:
        kind = KINDS[db.kind]
        job.progress("provision", "network and volume")
        labels = {"launchbay.database": db.id, "launchbay.organization": db.organization_id}
        docker.ensure_network(network_of(db.environment_id),
                              {"launchbay.environment": db.environment_id,
                               "launchbay.server": db.server_id})
        docker.ensure_volume(db.volume_name or "", labels)
        found = [c for c in docker.containers(**{"launchbay.database": db.id})
                 if c.labels.get("launchbay.run") is None]
        if found and found[0].status != "running":
            docker.start(found[0].id)
        if found:
            container_id = found[0].id
        else:
            present(job, docker, db.image or "")
            job.progress(step=f"starting {db.image}")
            container_id = docker.run(ContainerSpec(
                name=container_name(db), image=db.image or "", labels=labels,
                network=network_of(db.environment_id), aliases=[db.host],
                env=kind.server_env(db, password, self.box.decrypt(db.sealed_admin_secret)
                                    if db.sealed_admin_secret else ""),
                command=redis_command() if db.kind == "redis" else None,
                volumes=[(db.volume_name or "", kind.data_path, "rw")])).id
        job.progress(step="waiting for the database to answer")
        self._answers(docker, db, password)
        with self.sessions() as s:
            row = s.get_one(Database, db.id)
            row.container_id, row.status, row.realized_at = container_id, "ready", utcnow()
            row.failure_code = row.failure_message = None
            s.commit()

    def _answers(self, docker: Runtime, db: Database, password: str,
                 login: str | None = None) -> None:
        """Returns once the database answers its own client as `login` (its current one)."""
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            code, errors = self._tool(docker, db, password,
                                      KINDS[db.kind].probe(db, login or login_of(db)), "probe",
                                      timeout=15)
            if code == 0:
                return
            if time.monotonic() > deadline:
                raise Refused("database-not-ready", f"the database did not answer within "
                              f"{READY_TIMEOUT:.0f} s: {errors.strip()[-500:]}")
            time.sleep(1)

    def _remove(self, job: Job, docker: Runtime, db: Database) -> None:
        """The explicit delete of a database: its container, then its volume and data."""
        job.progress("remove", "container")
        for c in docker.containers(**{"launchbay.database": db.id}):
            docker.remove(c.id)
        if db.volume_name:
            job.progress(step="volume")
            docker.remove_volume(db.volume_name)
        with self.sessions() as s:
            row = s.get_one(Database, db.id)
            row.status, row.deleted_at, row.container_id = "deleted", utcnow(), None
            s.commit()

    def _tool(self, docker: Runtime, db: Database, password: str, command: list[str],
              purpose: str, *, stdin: BinaryIO | None = None,
              stdout: Callable[[bytes], None] | None = None,
              timeout: float = TOOL_TIMEOUT) -> tuple[int, str]:
        return docker.run_to_end(ContainerSpec(
            name=f"lb-db-{db.id}-{purpose}-{secrets.token_hex(3)}", image=db.image or "",
            labels={"launchbay.database": db.id, "launchbay.run": purpose},
            network=network_of(db.environment_id), env=KINDS[db.kind].client_env(db, password),
            command=command), stdin=stdin, stdout=stdout, timeout=timeout)

    # -- credential rotations -----------------------------------------------------------------

    def _rotate(self, job: Job, docker: Runtime, db: Database, password: str,
                rotation_id: str) -> None:
        """Adds the rotation's login beside the current one; once it answers, deployments get
        it (the old one stays valid until the resources bound are redeployed: `_revoke`)."""
        with self.sessions() as s:
            rot = s.get_one(CredentialRotation, rotation_id)
            s.expunge(rot)
        if rot.status != "adding" or not rot.new_login:
            return
        fresh = self.box.decrypt(rot.sealed_new_secret or "")
        job.progress("rotate", f"adding the login {rot.new_login}")
        self._statements(docker, db, password,
                         KINDS[db.kind].grant(db, rot.new_login, fresh), "rotate")
        job.progress(step="checking the new login")
        self._answers(docker, db, fresh, rot.new_login)
        with self.sessions() as s:
            row, r = s.get_one(Database, db.id), s.get_one(CredentialRotation, rot.id)
            r.old_login, r.sealed_old_secret = login_of(row), row.sealed_secret
            row.login = r.new_login if r.new_login != row.username else None
            row.sealed_secret, row.secret_version = r.sealed_new_secret or "", r.version
            r.sealed_new_secret, r.status, r.swapped_at = None, "redeploying", utcnow()
            audit.record(s, "dependency-resource.login-added", db.id,
                         organization_id=db.organization_id, rotationId=r.id, login=r.new_login)
            s.commit()

    def _revoke(self, job: Job, docker: Runtime, db: Database, password: str,
                rotation_id: str) -> None:
        """Disables the login a rotation replaced (no release uses it any more), and checks
        that it no longer answers."""
        with self.sessions() as s:
            rot = s.get_one(CredentialRotation, rotation_id)
            s.expunge(rot)
        if rot.status != "revoking":
            return
        if rot.old_login and rot.sealed_old_secret:
            old = self.box.decrypt(rot.sealed_old_secret)
            job.progress("revoke", f"revoking the login {rot.old_login}")
            self._statements(docker, db, password,
                             KINDS[db.kind].revoke(db, rot.old_login, old), "revoke")
            code, _ = self._tool(docker, db, old, KINDS[db.kind].probe(db, rot.old_login),
                                 "probe", timeout=15)
            if code == 0:
                raise Refused("revoke-failed", f"the login {rot.old_login} still answers")
        with self.sessions() as s:
            r = s.get_one(CredentialRotation, rot.id)
            r.status, r.completed_at, r.sealed_old_secret = "completed", utcnow(), None
            audit.record(s, "dependency-resource.login-revoked", db.id,
                         organization_id=db.organization_id, rotationId=r.id, login=r.old_login)
            s.commit()

    def _statements(self, docker: Runtime, db: Database, password: str, script: str,
                    purpose: str) -> None:
        """Runs `script` with the kind's client, as the kind's administrator or as the current
        login; the statements (passwords in them) reach it on its standard input."""
        kind = KINDS[db.kind]
        user = login_of(db)
        if kind.admin:
            if not db.sealed_admin_secret:
                raise Refused("rotation-unsupported", "this database was provisioned without "
                              "an administrator login; its password cannot be rotated")
            user, password = kind.admin, self.box.decrypt(db.sealed_admin_secret)
        out = bytearray()
        code, errors = self._tool(docker, db, password, kind.client(db, user), purpose,
                                  stdin=io.BytesIO(script.encode()), stdout=out.extend,
                                  timeout=120)
        refused = [line for line in out.splitlines()
                   if line.startswith((b"ERR", b"WRONGPASS", b"NOPERM", b"NOAUTH"))]
        if code != 0 or refused:
            said = (errors.strip() or b"\n".join(refused).decode(errors="replace"))[-500:]
            raise Refused(f"{purpose}-failed", f"the database refused the change: {said}")

    # -- backups ------------------------------------------------------------------------------

    def _backup(self, job: Job, docker: Runtime, db: Database, password: str,
                backup_id: str) -> None:
        with self.sessions() as s:
            b = s.get_one(Backup, backup_id)
            if b.status == "ready":  # done before a crash: nothing to do again
                return
            b.status, b.phase, b.file_name = "running", "dump", None
            s.commit()
            s.expunge(b)
        self.back_up(job, docker, db, password, b)

    def back_up(self, job: Job, docker: Runtime, db: Database, password: str,
                b: Backup) -> Backup:
        """Dumps, verifies and files one backup (see `BackupFiles.make`); then the policy's
        retention, if a policy made it."""
        kind = KINDS[db.kind]
        row = self.files.make(
            job, b, kind.extension,
            lambda write: self._tool(docker, db, password, kind.dump(db), "backup",
                                     stdout=write),
            lambda path: self._verify(docker, db, password, path))
        if row.policy_id:
            self._retain(job, row.policy_id)
        return row

    def _retain(self, job: Job, policy_id: str) -> None:
        """Applies the policy's retention to the backups it made, after one of them
        succeeded: beyond the newest `retention_count`, or older than `retention_days`, a
        backup goes (its file, then its row), but never the newest ready one."""
        with self.sessions() as s:
            p = s.get(BackupPolicy, policy_id)
            if p is None:
                return
            ready = s.scalars(select(Backup).where(
                Backup.policy_id == p.id, Backup.status == "ready")
                .order_by(Backup.created_at.desc())).all()
            cutoff = utcnow() - timedelta(days=p.retention_days) if p.retention_days else None
            expired = [b for n, b in enumerate(ready) if n > 0 and (
                (p.retention_count is not None and n >= p.retention_count)
                or (cutoff is not None and b.created_at < cutoff))]
            copies = s.execute(select(BackupCopy, BackupDestination).join(BackupDestination)
                               .where(BackupCopy.backup_id.in_([b.id for b in expired]))).all()
            for copy, t in copies:  # a copy that cannot be removed now stays listed
                try:
                    bucket_of(t, self.box).remove(copy.object_key)
                except StorageError as exc:
                    log.warning("backup %s stays in %s: %s", copy.backup_id, t.name, exc)
                    expired = [b for b in expired if b.id != copy.backup_id]
            for b in expired:
                self.files.path(b).unlink(missing_ok=True)
                audit.record(s, "dependency-resource.backup-pruned", b.database_id,
                             organization_id=b.organization_id, backupId=b.id, policyId=p.id)
                s.delete(b)
            s.commit()
        if expired:
            job.progress(step=f"retention removed {len(expired)} older backup(s)")

    def _verify(self, docker: Runtime, db: Database, password: str, path: Path, *,
                restoring: bool = False) -> str | None:
        """Why the backup at `path` is unusable, or None when its kind's reader read it whole
        (an empty database makes a good backup; `restoring` it would restore nothing)."""
        kind = KINDS[db.kind]
        listing = bytearray()
        with path.open("rb") as source:
            code, errors = self._tool(docker, db, password, kind.verify, "verify",
                                      stdin=source, stdout=listing.extend)
        if code != 0:
            return f"the backup does not read whole: {errors.strip()[-500:] or code}"
        if restoring and kind.has_entries is not None and not kind.has_entries(bytes(listing)):
            return "the backup holds nothing to restore"
        return None

    # -- restores -----------------------------------------------------------------------------

    def _restore(self, job: Job, docker: Runtime, db: Database, password: str,
                 backup_id: str) -> None:
        """A safety backup of what is there now, a check that the file is the one that was
        verified, then the kind's restore in one transaction."""
        kind = KINDS[db.kind]
        with self.sessions() as s:
            b = s.get_one(Backup, backup_id)
            s.expunge(b)
            safety_id = job.item.payload.get("safety_backup_id")
            safety = s.get(Backup, safety_id or "")
            if safety is not None:
                s.expunge(safety)
        path = self.files.verified(b)
        if problem := self._verify(docker, db, password, path, restoring=True):
            raise Refused("backup-unusable", f"{problem}; nothing was restored")
        if safety is not None and safety.status != "ready":
            job.progress("restore", "safety backup")
            self.back_up(job, docker, db, password, safety)
        job.progress("restore", "restore")
        if kind.restore is None:
            code, errors = self._restore_snapshot(job, docker, db, password, path)
        else:
            with path.open("rb") as source:
                code, errors = self._tool(docker, db, password, kind.restore(db), "restore",
                                          stdin=source)
        if code != 0:
            raise Refused("restore-failed", f"the restore failed and was rolled back: "
                          f"{errors.strip()[-500:] or code}")
        with self.sessions() as s:
            s.get_one(Backup, b.id).restored_at = utcnow()
            s.commit()
        job.progress("restore", f"restored backup {b.id} ({b.size_bytes} bytes)")


    def _restore_snapshot(self, job: Job, docker: Runtime, db: Database, password: str,
                          path: Path) -> tuple[int, str]:
        """Redis loads a snapshot only at its start: the server stops, the snapshot replaces
        its files (the append-only log goes), it starts from it, and the log is turned back
        on (written afresh from what was restored)."""
        servers = [c for c in docker.containers(**{"launchbay.database": db.id})
                   if c.labels.get("launchbay.run") is None]
        if not servers:
            return 1, "the database's container is missing"
        docker.stop(servers[0].id)
        try:
            with path.open("rb") as source:
                code, errors = docker.run_to_end(ContainerSpec(
                    name=f"lb-db-{db.id}-restore-{secrets.token_hex(3)}", image=db.image or "",
                    labels={"launchbay.database": db.id, "launchbay.run": "restore"},
                    network="none", command=["sh", "-c", "cat > /data/restore.rdb && rm -rf "
                                             "/data/appendonlydir /data/appendonly.aof && "
                                             "mv /data/restore.rdb /data/dump.rdb"],
                    volumes=[(db.volume_name or "", KINDS[db.kind].data_path, "rw")]),
                    stdin=source, timeout=TOOL_TIMEOUT)
        finally:
            docker.start(servers[0].id)
        if code != 0:
            return code, errors
        job.progress(step="waiting for the database to answer")
        self._answers(docker, db, password)
        return self._tool(docker, db, password, ["sh", "-c", f'test "$(redis-cli -h {db.host} '
                                                 'CONFIG SET appendonly yes)" = OK'],
                          "restore", timeout=60)
