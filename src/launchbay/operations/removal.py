"""Removing resources: the row goes now, in the caller's transaction; the engine then removes
their routes and containers (never their volumes). Deleting a resource, an environment or a
project all come here. Databases are never removed with them: an environment or project
with a database is not deleted until the database is."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, func, select

from launchbay.operations.catalog import Context
from launchbay.operations.errors import Conflict
from launchbay.store.models import (
    Backup,
    BackupPolicy,
    Database,
    DatabasePlan,
    Resource,
)
from launchbay.store.profiles import MaintenancePayload, stored


def remove_resources(ctx: Context, resources: Iterable[Resource]) -> None:
    for r in resources:
        ctx.enqueue("runtime-maintenance", "resources.delete", resource_id=r.id,
                    server_id=r.server_id, project_id=r.project_id,
                    payload=stored(MaintenancePayload(action="remove-resource")))
        ctx.db.delete(r)
        ctx.audit(r.id, event_type="resource.deleted", name=r.name, slug=r.slug)
    ctx.db.flush()  # before their environment or project goes (the store cascades to them)


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
