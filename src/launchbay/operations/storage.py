"""Storage volumes: named Docker volumes of an environment. Only deleting a volume here removes
its data; no cleanup, deployment or resource deletion ever does."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from sqlalchemy import select

from launchbay.engine.runtime import RuntimeFailure
from launchbay.operations.catalog import Context, operation
from launchbay.operations.environments import get_environment
from launchbay.operations.errors import Conflict, Invalid, NotFound
from launchbay.operations.schemas import UNPAGED_MAX, Field, Id, IdOut, Name, Schema, Timestamp
from launchbay.operations.servers import default_server
from launchbay.slugs import slugify
from launchbay.store.models import Resource, StorageAttachment, StorageVolume, new_id, utcnow


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
    attachment_count: int
    attachments: list[AttachmentSummary]
    created_at: Timestamp


def _outs(ctx: Context, volumes: Sequence[StorageVolume]) -> list[VolumeOut]:
    """Volumes as shown, with their attachments: one query for them all."""
    mounted: dict[str, list[AttachmentSummary]] = {v.id: [] for v in volumes}
    for a, r in ctx.db.execute(select(StorageAttachment, Resource).join(Resource).where(
            StorageAttachment.storage_volume_id.in_(list(mounted)))):
        mounted[a.storage_volume_id].append(AttachmentSummary(
            attachment_id=a.id, resource_id=r.id, resource_name=r.name, resource_slug=r.slug,
            destination_path=a.destination_path, mount_mode=a.mount_mode,
            attached_at=a.attached_at))
    return [VolumeOut(id=v.id, project_id=v.project_id, environment_id=v.environment_id,
                      name=v.name, slug=v.slug, kind=v.kind, description=v.description,
                      docker_name=v.docker_name, attachment_count=len(mounted[v.id]),
                      attachments=mounted[v.id], created_at=v.created_at) for v in volumes]


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
    slug = slugify(data.name)
    if ctx.db.scalar(select(StorageVolume.id).where(StorageVolume.environment_id == env.id,
                                                    StorageVolume.slug == slug)):
        raise Conflict(f"a volume named {slug!r} already exists here", code="storage_volume_exists")
    volume = StorageVolume(id=new_id("vol"), organization_id=ctx.org_id, project_id=env.project_id,
                           environment_id=env.id, name=data.name, slug=slug, kind=data.kind,
                           description=data.description, docker_name="")
    volume.docker_name = f"lb-{volume.id}"
    ctx.db.add(volume)
    ctx.audit(volume.id, name=volume.name)
    return IdOut(id=volume.id)


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


@operation("storage-volumes.delete", role="admin", audit="storage-volume.deleted")
def delete_volume(ctx: Context, data: VolumeRef) -> IdOut:
    """Deletes a volume and its data; refused while a resource mounts it."""
    volume = get_volume(ctx, data.storage_volume_id)
    if ctx.db.scalar(select(StorageAttachment.id).where(
            StorageAttachment.storage_volume_id == volume.id)):
        raise Conflict("detach the volume from its resources first", code="storage_volume_in_use")
    try:
        ctx.runtime.of(default_server(ctx).id).remove_volume(volume.docker_name)
    except RuntimeFailure as exc:
        raise Conflict(f"Docker refused to remove the volume: {exc}",
                       code="storage_volume_busy") from None
    ctx.db.delete(volume)
    ctx.audit(volume.id, name=volume.name)
    return IdOut(id=volume.id)
