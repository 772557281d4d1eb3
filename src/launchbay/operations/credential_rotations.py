"""Rotations of a database's password (seed 004's dependency-binding secret rotations).

A rotation never leaves a moment when a bound app cannot log in: the engine adds a new login
beside the old one (`adding`), deployments from then on get it, each active resource bound to
the database whose release still has the old URL is redeployed (`redeploying`, advanced by
the control plane's periodic job), and only when none is left is the old login revoked
(`revoking`, then `completed`).
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from launchbay.crypto import generate_password
from launchbay.engine.databases import KINDS, url_of
from launchbay.engine.journal import TERMINAL
from launchbay.operations.catalog import Context, operation
from launchbay.operations.databases import (
    SNAPSHOT_SCOPE,
    BindingRef,
    database_work,
    endpoint_of,
    get_binding,
)
from launchbay.operations.deployments import start
from launchbay.operations.errors import Conflict, Invalid, NotFound
from launchbay.operations.resources import get_resource
from launchbay.operations.schemas import Field, Id, IdOut, Schema, Timestamp
from launchbay.store.models import (
    CredentialRotation,
    Database,
    DatabaseBinding,
    Deployment,
    LifecycleStatus,
    Resource,
    new_id,
    utcnow,
)

ROTATING = ("adding", "redeploying", "revoking")


class RotationIn(BindingRef):
    confirm_historical_snapshots_remain_unchanged: Literal[True]
    secret_ref: str | None = Field(None, max_length=500)
    secret_value: str | None = Field(None, min_length=1, max_length=2000)


class RotationOut(Schema):
    id: str
    rotated_at: Timestamp
    secret_version: str


@operation("resources.dependency-bindings.secret-rotations.create", role="developer",
           audit="resource.dependency-binding-secret-rotated")
def rotate_secret(ctx: Context, data: RotationIn) -> RotationOut:
    """Changes the password of the binding's database: a new login is added beside the old
    one (a generated password; for an imported database, the new URL given as
    `secretValue`), every resource bound to the database is redeployed with it, and then the
    old one is revoked. Deployments made before keep their snapshots (which name the old)."""
    b, r, d = get_binding(ctx, data)
    get_resource(ctx, r.id, mutable=True)
    if data.secret_ref is not None:
        raise Invalid("launchbay keeps a database's secret itself: rotate without secretRef",
                      code="validation_error")
    if d.status != "ready" or ctx.db.scalar(select(CredentialRotation.id).where(
            CredentialRotation.database_id == d.id, CredentialRotation.status.in_(ROTATING))):
        raise Conflict("the database is not ready, or a rotation of it is under way",
                       code="resource_dependency_binding_rotation_blocked")
    rot = CredentialRotation(id=new_id("rot"), organization_id=ctx.org_id, database_id=d.id,
                             binding_id=b.id, requested_by=ctx.user_id or "",
                             version=d.secret_version + 1)
    if d.source_mode == "imported":
        if data.secret_value is None:
            raise Invalid("an imported database's new URL is required (secretValue)",
                          code="validation_error")
        if endpoint_of(d.kind, data.secret_value) != (d.host, d.port):
            raise Invalid("the new URL names another server: import that database instead",
                          code="invalid_connection_url")
        # launchbay cannot change an external database: its new URL goes to the resources.
        d.sealed_secret, d.secret_version = ctx.secrets.encrypt(data.secret_value), rot.version
        rot.status, rot.swapped_at = "redeploying", utcnow()
    else:
        if data.secret_value is not None:
            raise Invalid("launchbay generates the passwords of the databases it manages: "
                          "rotate without secretValue", code="validation_error")
        if KINDS[d.kind].admin and not d.sealed_admin_secret:
            raise Conflict("this database was provisioned without an administrator login; "
                           "its password cannot be rotated",
                           code="resource_dependency_binding_rotation_blocked")
        rot.new_login = d.username if d.kind == "redis" else f"{d.username}_r{rot.version}"
        rot.sealed_new_secret = ctx.secrets.encrypt(generate_password())
    ctx.db.add(rot)
    ctx.db.flush()
    if rot.status == "adding":
        database_work(ctx, d, "rotate", rotation_id=rot.id)
    ctx.audit(r.id, bindingId=b.id, dependencyResourceId=d.id, rotationId=rot.id,
              secretVersion=f"v{rot.version}")
    return RotationOut(id=rot.id, rotated_at=rot.created_at, secret_version=f"v{rot.version}")


class RotationRef(Schema):
    rotation_id: Id


@operation("dependency-resources.credential-rotations.advance", role="developer",
           audit="dependency-resource.credential-rotation-advanced")
def advance_rotation(ctx: Context, data: RotationRef) -> IdOut:
    """Moves a rotation on once its new login is in place: every active resource bound to the
    database whose release still has the old URL is redeployed (once; a redeploy that fails
    is said, and waits for the user's), and when none is left the old login is revoked."""
    rot = ctx.db.get(CredentialRotation, data.rotation_id)
    if rot is None or rot.organization_id != ctx.org_id:
        raise NotFound("rotation not found", code="not_found")
    if rot.status != "redeploying":
        ctx.unchanged = True
        return IdOut(id=rot.id)
    d = ctx.db.get_one(Database, rot.database_id)
    current = url_of(d, ctx.secrets.decrypt(d.sealed_secret)) if d.source_mode == "managed" \
        else ctx.secrets.decrypt(d.sealed_secret)
    bound = ctx.db.execute(select(DatabaseBinding, Resource).join(Resource).where(
        DatabaseBinding.database_id == d.id,
        Resource.lifecycle_status == LifecycleStatus.ACTIVE)).all()
    releases = {dep.resource_id: dep for dep in ctx.db.scalars(select(Deployment).where(
        Deployment.id.in_([r.current_deployment_id for _, r in bound if r.current_deployment_id])))}
    busy = set(ctx.db.scalars(select(Deployment.resource_id).where(
        Deployment.resource_id.in_([r.id for _, r in bound]),
        Deployment.status.not_in(TERMINAL))))
    redeployed = set(ctx.db.scalars(select(Deployment.resource_id).where(
        Deployment.id.in_(rot.deployment_ids))))
    waiting: list[str] = []
    for b, r in bound:
        given = _given(ctx, releases[r.id], b.target_name) if r.id in releases else None
        if given is None or given == current:  # it does not use the old login
            continue
        waiting.append(r.name)
        if r.id in busy:
            continue
        if r.id in redeployed:
            rot.reason = (f"the redeploy of {r.name} did not succeed: redeploy it to complete "
                          "the rotation (the old login stays valid until then)")
            continue
        dep = start(ctx, r, "redeploy", source_deployment=r.current_deployment_id)
        rot.deployment_ids = [*rot.deployment_ids, dep.id]
        ctx.audit(rot.id, resourceId=r.id, deploymentId=dep.id, step="redeploy")
    if not waiting:
        rot.status, rot.reason = "revoking", None
        if rot.old_login:
            database_work(ctx, d, "revoke", rotation_id=rot.id)
        else:  # an imported database: nothing of it is launchbay's to revoke
            rot.status, rot.completed_at = "completed", utcnow()
        ctx.audit(rot.id, step=rot.status)
    ctx.unchanged = not ctx.audited  # still waiting for redeploys
    return IdOut(id=rot.id)


def _given(ctx: Context, release: Deployment, name: str) -> str | None:
    """The value of the variable `name` a release's snapshot gave it, opened."""
    for v in (release.environment_snapshot or {}).get("variables", []):
        if v.get("key") == name and v.get("scope") == SNAPSHOT_SCOPE:
            value = v.get("value") or ""
            return ctx.secrets.decrypt(value) if v.get("isSecret") else value
    return None


def rotations_under_way(db: DbSession) -> list[tuple[str, str, dict[str, str]]]:
    """(user, organization, input) of each rotation waiting for its redeploys."""
    return [(r.requested_by, r.organization_id, {"rotationId": r.id})
            for r in db.scalars(select(CredentialRotation).where(
                CredentialRotation.status == "redeploying"))]
