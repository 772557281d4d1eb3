"""Storage volumes: named Docker volumes of an environment, their backups and restores into new
volumes. Only deleting a volume here, or an explicit runtime cleanup of it (confirmed when it
holds data), removes its data; no other cleanup, deployment or resource deletion ever does."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import AwareDatetime
from sqlalchemy import func, select

from launchbay.engine.runtime import Runtime, RuntimeFailure
from launchbay.engine.volume_backups import holds_data
from launchbay.operations.catalog import Context, operation
from launchbay.operations.databases import (
    BackupFacts,
    BackupRelationship,
    backup_facts,
    destinations,
)
from launchbay.operations.environments import get_environment
from launchbay.operations.errors import Conflict, Invalid, NotFound
from launchbay.operations.schemas import UNPAGED_MAX, Field, Id, IdOut, Name, Schema, Timestamp
from launchbay.operations.servers import ServerSummary, default_server, get_server
from launchbay.slugs import slugify
from launchbay.store.models import (
    Backup,
    Environment,
    OperatorWork,
    Resource,
    StorageAttachment,
    StorageVolume,
    new_id,
    utcnow,
)


class AttachmentSummary(Schema):
    attachment_id: str
    resource_id: str
    resource_name: str
    resource_slug: str
    destination_path: str
    mount_mode: str
    attached_at: Timestamp


class VolumeOut(Schema):
    id: str
    project_id: str
    environment_id: str
    name: str
    slug: str
    kind: str
    description: str | None
    docker_name: str
    lifecycle_status: str = "active"
    backup_relationship: BackupRelationship
    attachment_count: int
    attachments: list[AttachmentSummary]
    created_at: Timestamp


def _outs(ctx: Context, volumes: Sequence[StorageVolume]) -> list[VolumeOut]:
    """Volumes as shown, with their attachments and kept backups: two queries for them all."""
    mounted: dict[str, list[AttachmentSummary]] = {v.id: [] for v in volumes}
    kept = _kept(ctx, list(mounted))
    for a, r in ctx.db.execute(select(StorageAttachment, Resource).join(Resource).where(
            StorageAttachment.storage_volume_id.in_(list(mounted)))):
        mounted[a.storage_volume_id].append(AttachmentSummary(
            attachment_id=a.id, resource_id=r.id, resource_name=r.name, resource_slug=r.slug,
            destination_path=a.destination_path, mount_mode=a.mount_mode,
            attached_at=a.attached_at))
    return [VolumeOut(id=v.id, project_id=v.project_id, environment_id=v.environment_id,
                      name=v.name, slug=v.slug, kind=v.kind, description=v.description,
                      docker_name=v.docker_name, attachment_count=len(mounted[v.id]),
                      backup_relationship=BackupRelationship(
                          retention_required=kept.get(v.id, 0) > 0,
                          reason=f"{kept[v.id]} ready backup(s) are kept" if v.id in kept
                          else None),
                      attachments=mounted[v.id], created_at=v.created_at) for v in volumes]


def _kept(ctx: Context, volume_ids: list[str]) -> dict[str, int]:
    return dict(ctx.db.execute(select(Backup.storage_volume_id, func.count()).where(
        Backup.storage_volume_id.in_(volume_ids), Backup.status == "ready")
        .group_by(Backup.storage_volume_id)).all())  # type: ignore[arg-type]


def get_volume(ctx: Context, volume_id: str) -> StorageVolume:
    volume = ctx.db.get(StorageVolume, volume_id)
    if volume is None or volume.organization_id != ctx.org_id:
        raise NotFound("storage volume not found", code="storage_volume_not_found")
    return volume


class VolumeFilter(Schema):
    project_id: Id | None = None
    environment_id: Id | None = None


class VolumeList(Schema):
    schema_version: str = "storage-volumes.list/v1"
    items: list[VolumeOut]
    generated_at: Timestamp


@operation("storage-volumes.list")
def list_volumes(ctx: Context, data: VolumeFilter) -> VolumeList:
    """Storage volumes with the resources they are mounted in."""
    query = select(StorageVolume).where(StorageVolume.organization_id == ctx.org_id)
    if data.project_id:
        query = query.where(StorageVolume.project_id == data.project_id)
    if data.environment_id:
        query = query.where(StorageVolume.environment_id == data.environment_id)
    return VolumeList(items=_outs(ctx, ctx.db.scalars(query.order_by(StorageVolume.name)
                                                      .limit(UNPAGED_MAX)).all()),
                      generated_at=utcnow())


class VolumeCreate(Schema):
    project_id: Id
    environment_id: Id
    name: Name
    kind: Literal["named-volume"] = "named-volume"
    description: str | None = Field(None, max_length=2000)


@operation("storage-volumes.create", role="developer", audit="storage-volume.created")
def create_volume(ctx: Context, data: VolumeCreate) -> IdOut:
    """Declares a named volume in an environment (created in Docker on first use)."""
    env = get_environment(ctx, data.environment_id, mutable=True)
    if env.project_id != data.project_id:
        raise Invalid("the environment does not belong to that project", code="context_mismatch")
    volume = _declared(ctx, env, data.name, data.description)
    ctx.audit(volume.id, name=volume.name)
    return IdOut(id=volume.id)


def _declared(ctx: Context, env: Environment, name: str, description: str | None
              ) -> StorageVolume:
    slug = slugify(name)
    if ctx.db.scalar(select(StorageVolume.id).where(StorageVolume.environment_id == env.id,
                                                    StorageVolume.slug == slug)):
        raise Conflict(f"a volume named {slug!r} already exists here", code="storage_volume_exists")
    volume = StorageVolume(id=new_id("vol"), organization_id=ctx.org_id, project_id=env.project_id,
                           environment_id=env.id, name=name, slug=slug, kind="named-volume",
                           description=description, docker_name="")
    volume.docker_name = f"lb-{volume.id}"
    ctx.db.add(volume)
    return volume


class VolumeRef(Schema):
    storage_volume_id: Id


class VolumeShow(Schema):
    schema_version: str = "storage-volumes.show/v1"
    storage_volume: VolumeOut
    generated_at: Timestamp


@operation("storage-volumes.show")
def show_volume(ctx: Context, data: VolumeRef) -> VolumeShow:
    """One storage volume."""
    return VolumeShow(storage_volume=_outs(ctx, [get_volume(ctx, data.storage_volume_id)])[0],
                      generated_at=utcnow())


class VolumeRename(VolumeRef):
    name: Name


@operation("storage-volumes.rename", role="developer", audit="storage-volume.renamed")
def rename_volume(ctx: Context, data: VolumeRename) -> IdOut:
    """Renames a volume (its Docker volume and data stay as they are)."""
    volume = get_volume(ctx, data.storage_volume_id)
    volume.name, volume.slug = data.name, slugify(data.name)
    ctx.audit(volume.id, name=data.name)
    return IdOut(id=volume.id)


class VolumeDelete(VolumeRef):
    release_backups: bool = False


@operation("storage-volumes.delete", role="admin", audit="storage-volume.deleted")
def delete_volume(ctx: Context, data: VolumeDelete) -> IdOut:
    """Deletes a volume and its data; refused while a resource mounts it, and while ready
    backups of it are kept unless `releaseBackups` (they stay, and can still be restored
    into a new volume)."""
    volume = get_volume(ctx, data.storage_volume_id)
    if ctx.db.scalar(select(StorageAttachment.id).where(
            StorageAttachment.storage_volume_id == volume.id)):
        raise Conflict("detach the volume from its resources first", code="storage_volume_in_use")
    if not data.release_backups and _kept(ctx, [volume.id]):
        raise Conflict("ready backups of the volume are kept: delete it with releaseBackups",
                       code="storage_volume_backups_retained")
    try:
        ctx.runtime.of(default_server(ctx).id).remove_volume(volume.docker_name)
    except RuntimeFailure as exc:
        raise Conflict(f"Docker refused to remove the volume: {exc}",
                       code="storage_volume_busy") from None
    ctx.db.delete(volume)
    ctx.audit(volume.id, name=volume.name)
    return IdOut(id=volume.id)


# -- backups and restores -----------------------------------------------------------------------


class VolumeBackupOut(BackupFacts):
    id: str
    storage_volume_id: str
    storage_volume_name: str | None  # None once the volume was deleted
    provider_key: str = "local-file"


def _backup_outs(ctx: Context, rows: Sequence[Backup]) -> list[VolumeBackupOut]:
    facts = backup_facts(ctx, rows)
    names = dict(ctx.db.execute(select(StorageVolume.id, StorageVolume.name).where(
        StorageVolume.id.in_({b.storage_volume_id for b in rows}))).all())
    return [VolumeBackupOut(id=b.id, storage_volume_id=b.storage_volume_id or "",
                            storage_volume_name=names.get(b.storage_volume_id or ""),
                            **facts[b.id].model_dump()) for b in rows]


def _work(ctx: Context, volume: StorageVolume, action: str, **payload: str) -> OperatorWork:
    server_id = default_server(ctx).id
    return ctx.enqueue("storage-volume", f"storage-volumes.backups.{action}",
                       project_id=volume.project_id, server_id=server_id,
                       payload={"action": action, "server_id": server_id,
                                "volume": volume.docker_name, **payload})


class VolumeBackupIn(VolumeRef):
    destination_ids: list[Id] = Field(default_factory=list, max_length=10)


@operation("storage-volumes.backups.create", role="developer",
           audit="storage-volume.backup-requested")
def create_backup(ctx: Context, data: VolumeBackupIn) -> IdOut:
    """A backup of the volume's files now (a gzipped tar, `ready` once read whole), kept on
    the server and copied to the destinations given."""
    volume = get_volume(ctx, data.storage_volume_id)
    b = Backup(id=new_id("vbk"), organization_id=ctx.org_id, storage_volume_id=volume.id,
               kind="volume", reason="manual", status="pending",
               destination_ids=destinations(ctx, data.destination_ids))
    ctx.db.add(b)
    b.work_id = _work(ctx, volume, "backup", backup_id=b.id).id
    ctx.audit(volume.id, backupId=b.id)
    return IdOut(id=b.id)


class VolumeBackupList(Schema):
    schema_version: str = "storage-volumes.backups.list/v1"
    items: list[VolumeBackupOut]
    generated_at: Timestamp


@operation("storage-volumes.backups.list")
def list_backups(ctx: Context, data: VolumeRef) -> VolumeBackupList:
    """A volume's backups, newest first."""
    volume = get_volume(ctx, data.storage_volume_id)
    rows = ctx.db.scalars(select(Backup).where(Backup.storage_volume_id == volume.id)
                          .order_by(Backup.created_at.desc()).limit(UNPAGED_MAX)).all()
    return VolumeBackupList(items=_backup_outs(ctx, rows), generated_at=utcnow())


class VolumeBackupRef(Schema):
    backup_id: Id


class VolumeBackupShow(Schema):
    schema_version: str = "storage-volumes.backups.show/v1"
    backup: VolumeBackupOut
    generated_at: Timestamp


def _get_backup(ctx: Context, backup_id: str) -> Backup:
    b = ctx.db.get(Backup, backup_id)
    if b is None or b.organization_id != ctx.org_id or b.storage_volume_id is None:
        raise NotFound("backup not found", code="storage_volume_backup_not_found")
    return b


@operation("storage-volumes.backups.show")
def show_backup(ctx: Context, data: VolumeBackupRef) -> VolumeBackupShow:
    """One backup of a volume (it outlives the volume)."""
    return VolumeBackupShow(backup=_backup_outs(ctx, [_get_backup(ctx, data.backup_id)])[0],
                            generated_at=utcnow())


class VolumeRestoreIn(VolumeBackupRef):
    target_mode: Literal["new-volume"] = "new-volume"
    restored_volume_name: Name | None = None
    environment_id: Id | None = None  # the backed-up volume's, unless another is named


class VolumeRestoreOut(Schema):
    id: str  # the new volume
    attempt_id: str


@operation("storage-volumes.backups.restore", role="developer",
           audit="storage-volume.restore-requested")
def restore_backup(ctx: Context, data: VolumeRestoreIn) -> VolumeRestoreOut:
    """Restores a ready backup into a new volume (of the backed-up volume's environment, or
    of `environmentId`): the volume backed up is never touched; attach the new one where it
    is wanted. `latestRestoreAttempt` of the backup says how it went."""
    b = _get_backup(ctx, data.backup_id)
    if b.status != "ready":
        raise Conflict("only a ready backup can be restored",
                       code="storage_volume_backup_not_ready")
    source = ctx.db.get(StorageVolume, b.storage_volume_id)
    if data.environment_id is None and source is None:
        raise Invalid("the volume backed up was deleted: name the environment to restore into "
                      "(environmentId)", code="validation_error")
    env = get_environment(ctx, data.environment_id or (source.environment_id if source else ""),
                          mutable=True)
    name = data.restored_volume_name or f"{source.name if source else 'volume'}-restored"
    volume = _declared(ctx, env, name, f"restored from backup {b.id}")
    work = _work(ctx, volume, "restore", backup_id=b.id, storage_volume_id=volume.id)
    b.restore_work_id = work.id
    ctx.audit(volume.id, backupId=b.id, attemptId=work.id)
    return VolumeRestoreOut(id=volume.id, attempt_id=work.id)


# -- runtime cleanup ----------------------------------------------------------------------------


class CleanupIn(VolumeRef):
    server_id: Id
    before: AwareDatetime
    dry_run: bool = True
    acknowledge_data_loss: bool = False  # launchbay's own: the volume holds files


class CleanupCandidate(Schema):
    id: str
    kind: Literal["named-volume"] = "named-volume"
    target: str
    updated_at: Timestamp | None
    action: Literal["matched", "cleaned", "skipped", "blocked"]
    blocked_reason: str | None = None


class CleanupSummary(Schema):
    inspected_count: int
    matched_count: int
    cleaned_count: int
    skipped_count: int
    blocked_count: int


class CleanupWarning(Schema):
    code: str
    message: str
    target: str | None = None


class CleanupVolume(Schema):
    id: str
    name: str
    kind: str


class CleanupOut(Schema):
    schema_version: str = "storage-volumes.cleanup-runtime/v1"
    storage_volume: CleanupVolume
    server: ServerSummary
    before: Timestamp
    dry_run: bool
    cleaned_at: Timestamp | None
    summary: CleanupSummary
    candidates: list[CleanupCandidate]
    warnings: list[CleanupWarning]


@operation("storage-volumes.runtime-cleanup", audit="storage-volume.runtime-cleaned",
           role_for=lambda data: "developer" if data.dry_run else "admin")
def cleanup_runtime(ctx: Context, data: CleanupIn) -> CleanupOut:
    """Removes the volume's Docker volume (its data) from a server, keeping the volume
    declared (it is made again, empty, on its next use): a dry run unless `dryRun` is false.
    Never while a resource mounts it, a container uses it or a backup or restore of it is
    under way, nor when it was made at or after `before`; a volume that holds files needs
    `acknowledgeDataLoss` too."""
    volume = get_volume(ctx, data.storage_volume_id)
    server = get_server(ctx, data.server_id)
    docker = ctx.runtime.of(server.id)
    created = docker.volume_created(volume.docker_name)
    candidates, warnings = [], []
    if created is None:
        warnings.append(CleanupWarning(code="not-realized", target=volume.docker_name,
                                       message="the server has no Docker volume for it"))
    else:
        candidate = CleanupCandidate(id=volume.id, target=volume.docker_name,
                                     updated_at=created, action="matched")
        if created >= data.before:
            candidate.action = "skipped"
        elif reason := _cleanup_blocker(ctx, docker, volume, data.acknowledge_data_loss):
            candidate.action, candidate.blocked_reason = "blocked", reason
            if reason == "has-data":
                warnings.append(CleanupWarning(
                    code="has-data", target=volume.docker_name, message="the volume holds "
                    "files: confirm their loss with acknowledgeDataLoss"))
        elif not data.dry_run:
            try:
                docker.remove_volume(volume.docker_name)
            except RuntimeFailure as exc:
                raise Conflict(f"Docker refused to remove the volume: {exc}",
                               code="storage_volume_busy") from None
            candidate.action = "cleaned"
            ctx.audit(volume.id, serverId=server.id, target=volume.docker_name)
        candidates.append(candidate)
    ctx.unchanged = not ctx.audited
    count = {a: sum(c.action == a for c in candidates)
             for a in ("matched", "cleaned", "skipped", "blocked")}
    return CleanupOut(
        storage_volume=CleanupVolume(id=volume.id, name=volume.name, kind=volume.kind),
        server=ServerSummary.model_validate(server, from_attributes=True),
        before=data.before, dry_run=data.dry_run,
        cleaned_at=utcnow() if count["cleaned"] else None,
        summary=CleanupSummary(inspected_count=len(candidates),
                               matched_count=count["matched"] + count["cleaned"],
                               cleaned_count=count["cleaned"], skipped_count=count["skipped"],
                               blocked_count=count["blocked"]),
        candidates=candidates, warnings=warnings)


def _cleanup_blocker(ctx: Context, docker: Runtime, volume: StorageVolume,
                     acknowledged: bool) -> str | None:
    """Why the volume's data may not be removed now, or None."""
    if ctx.db.scalar(select(StorageAttachment.id).where(
            StorageAttachment.storage_volume_id == volume.id)):
        return "active-attachment"
    if docker.volume_users(volume.docker_name):
        return "active-runtime"
    if ctx.db.scalar(select(Backup.id).where(Backup.storage_volume_id == volume.id,
                                             Backup.status.in_(("pending", "running")))):
        return "backup-in-progress"
    if any(w.payload.get("volume") == volume.docker_name for w in ctx.db.scalars(
            select(OperatorWork).where(OperatorWork.kind == "storage-volume",
                                       OperatorWork.organization_id == ctx.org_id,
                                       OperatorWork.status.in_(("pending", "running"))))):
        return "restore-in-progress"
    if acknowledged:
        return None
    ctx.end_reads()  # a container looks into the volume meanwhile
    if holds_data(docker, ctx.settings.volume_tool_image, volume.docker_name):
        return "has-data"
    return None
