"""Removing resources: the row goes now, in the caller's transaction; the engine then removes
their routes and containers (never their volumes). Deleting a resource, an environment or a
project all come here."""

from __future__ import annotations

from collections.abc import Iterable

from launchbay.operations.catalog import Context
from launchbay.store.models import Resource
from launchbay.store.profiles import MaintenancePayload, stored


def remove_resources(ctx: Context, resources: Iterable[Resource]) -> None:
    for r in resources:
        ctx.enqueue("runtime-maintenance", "resources.delete", resource_id=r.id,
                    server_id=r.server_id, project_id=r.project_id,
                    payload=stored(MaintenancePayload(action="remove-resource")))
        ctx.db.delete(r)
        ctx.audit(r.id, event_type="resource.deleted", name=r.name, slug=r.slug)
    ctx.db.flush()  # before their environment or project goes (the store cascades to them)
