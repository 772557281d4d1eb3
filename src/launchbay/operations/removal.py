"""Removing resources: the row goes now, in the caller's transaction; the engine then removes
their routes and containers (never their volumes). Deleting a resource, an environment or a
project all come here, and so does cleaning up a preview of a pull request (whose previews
go with the resource they preview). Databases are never removed with them: an environment or
project with a database is not deleted until the database is."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, func, or_, select

from launchbay.operations.catalog import Context
from launchbay.operations.errors import Conflict
from launchbay.store.models import (
    Backup,
    BackupPolicy,
    Database,
    DatabasePlan,
    Environment,
    PreviewEnvironment,
    Resource,
    utcnow,
)
from launchbay.store.profiles import MaintenancePayload, stored


def remove_resources(ctx: Context, resources: Iterable[Resource]) -> None:
    resources = list(resources)
    ids = {r.id for r in resources}
    for p in ctx.db.scalars(select(PreviewEnvironment).where(
            PreviewEnvironment.status != "cleaned", or_(
                PreviewEnvironment.resource_id.in_(ids),
                PreviewEnvironment.preview_resource_id.in_(ids)))).all():
        if p.resource_id in ids:  # the resource previewed goes: its previews go with it
            clean_preview(ctx, p, "resource-deleted")
        else:  # its copy goes (deleted by hand, or with its environment)
            _cleaned(ctx, p, "deleted")
    for r in resources:
        ctx.enqueue("runtime-maintenance", "resources.delete", resource_id=r.id,
                    server_id=r.server_id, project_id=r.project_id,
                    payload=stored(MaintenancePayload(action="remove-resource")))
        ctx.db.delete(r)
        ctx.audit(r.id, event_type="resource.deleted", name=r.name, slug=r.slug)
    ctx.db.flush()  # before their environment or project goes (the store cascades to them)


def clean_preview(ctx: Context, p: PreviewEnvironment, reason: str) -> bool:
    """The one cleanup of a preview of a pull request, whatever asked for it: its copy of the
    resource goes (the engine removes its containers and routes, retrying until they are
    gone), its environment too once no other preview holds it; the preview stays, `cleaned`
    (`reason`). Whether there was anything to clean."""
    if p.status == "cleaned":
        return False
    copy = ctx.db.get(Resource, p.preview_resource_id) if p.preview_resource_id else None
    env = ctx.db.get(Environment, p.environment_id) if p.environment_id else None
    shared = ctx.db.scalar(select(func.count()).select_from(PreviewEnvironment).where(
        PreviewEnvironment.environment_id == p.environment_id, PreviewEnvironment.id != p.id,
        PreviewEnvironment.status != "cleaned")) or 0
    _cleaned(ctx, p, reason)
    if copy is not None:
        remove_resources(ctx, [copy])
    if env is not None and not shared:
        remove_resources(ctx, ctx.db.scalars(select(Resource).where(
            Resource.environment_id == env.id)).all())
        ctx.db.delete(env)
    return True


def _cleaned(ctx: Context, p: PreviewEnvironment, reason: str) -> None:
    p.status, p.cleanup_reason, p.cleaned_at = "cleaned", reason, utcnow()
    p.environment_id = p.preview_resource_id = None
    p.updated_at = p.cleaned_at
    ctx.audit(p.id, event_type="preview-environment.cleaned", reason=reason,
              resourceId=p.resource_id, pullRequestNumber=p.pull_request_number)


def forget_databases(ctx: Context, environment_ids: list[str]) -> None:
    """Before environments go: refused (409) while one has a database; the rows left by
    databases already deleted (and their backups' records) go with them."""
    where = Database.environment_id.in_(environment_ids)
    live = ctx.db.scalar(select(func.count()).select_from(Database).where(
        where, Database.status != "deleted")) or 0
    if live:
        raise Conflict(f"{live} database(s) are still here: delete them first (their data "
                       "is never deleted with an environment)", code="databases_remain",
                       details={"blockers": [{"kind": "dependency-resource",
                                              "relatedEntityType": "dependency-resource",
                                              "count": live}]})
    gone = select(Database.id).where(where)
    ctx.db.execute(delete(Backup).where(Backup.database_id.in_(gone)))
    ctx.db.execute(delete(BackupPolicy).where(BackupPolicy.database_id.in_(gone)))
    ctx.db.execute(delete(DatabasePlan).where(DatabasePlan.environment_id.in_(environment_ids)))
    ctx.db.execute(delete(Database).where(where))
