"""Removing resources: the engine removes their routes and containers (never their volumes),
asked in the caller's transaction. Deleting a resource, an environment or a project deletes
the rows at once; a resource made from a blueprint stays `deleting` until the engine is done
(`templates.take_down`). Both ask here."""

from __future__ import annotations

from collections.abc import Iterable

from launchbay.operations.catalog import Context
from launchbay.store.models import Resource
from launchbay.store.profiles import MaintenancePayload, stored


def ask_removal(ctx: Context, r: Resource, operation_key: str, *,
                delete_resource: bool = False, delete_environment: bool = False) -> None:
    """Has the engine remove the resource's containers and routes (and then its row, and its
    environment made for it alone, when asked)."""
    ctx.enqueue("runtime-maintenance", operation_key, resource_id=r.id, server_id=r.server_id,
                project_id=r.project_id, payload=stored(MaintenancePayload(
                    action="remove-resource", delete_resource=delete_resource,
                    delete_environment=delete_environment)))


def remove_resources(ctx: Context, resources: Iterable[Resource]) -> None:
    for r in resources:
        ask_removal(ctx, r, "resources.delete")
        ctx.db.delete(r)
        ctx.audit(r.id, event_type="resource.deleted", name=r.name, slug=r.slug)
    ctx.db.flush()  # before their environment or project goes (the store cascades to them)
