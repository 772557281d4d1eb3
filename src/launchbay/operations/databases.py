"""Databases (seed 004's dependency resources): provisioned or imported, bound to resources,
backed up and restored.

A managed database is a container of its kind on its environment's network with a named
volume that only `dependency-resources.delete` removes. A binding puts the database's URL
(and the kind's usual discrete variables) into every later deployment of the resource, as
secrets of the snapshot; a name a user variable already has is refused, never overridden.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import model_validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session as DbSession

from launchbay import schedules
from launchbay.crypto import generate_password
from launchbay.engine.backups import outbound_problem
from launchbay.engine.databases import KINDS, masked_url, url_of
from launchbay.operations import variables
from launchbay.operations.catalog import Context, operation
from launchbay.operations.environments import get_environment
from launchbay.operations.errors import Conflict, Invalid, NotFound
from launchbay.operations.resources import ResourceRef, get_resource
from launchbay.operations.schemas import Empty, Field, Id, IdOut, Name, Schema, Timestamp
from launchbay.operations.servers import default_server, get_server
from launchbay.slugs import slugify
from launchbay.store.models import (
    Backup,
    BackupCopy,
    BackupDestination,
    BackupPolicy,
    CredentialRotation,
    Database,
    DatabaseBinding,
    DatabasePlan,
    OperatorWork,
    Resource,
    new_id,
    utcnow,
)

DatabaseKind = Literal["postgres", "mysql", "redis"]
SCHEMES = {"postgres": ("postgres", "postgresql"), "mysql": ("mysql", "mariadb"),
           "redis": ("redis", "rediss")}
TargetName = Field(min_length=1, max_length=200, pattern=r"^[A-Z_][A-Z0-9_]*$")
SNAPSHOT_SCOPE = "dependency-binding"


# -- shapes -------------------------------------------------------------------------------------


class Connection(Schema):
    host: str
    port: int
    database_name: str | None
    masked_connection: str
    secret_ref: str


class Realization(Schema):
    status: Literal["pending", "realized", "failed", "deleted"]
    attempt_id: str | None = None
    attempted_at: Timestamp | None = None
    provider_resource_handle: str | None = None
    realized_at: Timestamp | None = None
    failed_at: Timestamp | None = None
    failure_code: str | None = None
    failure_message: str | None = None


class Readiness(Schema):
    status: Literal["ready", "not-ready", "blocked"]
    reason: str | None = None


class BackupRelationship(Schema):
    retention_required: bool
    reason: str | None = None


class Blocker(Schema):
    kind: str
    related_entity_id: str | None = None
    related_entity_type: str | None = None
    count: int


class DeleteSafety(Schema):
    blockers: list[Blocker]


class DatabaseOut(Schema):
    id: str
    project_id: str
    environment_id: str
    name: str
    slug: str
    kind: str
    source_mode: Literal["appaloft-managed", "imported-external"]
    provider_key: str
    provider_managed: bool
    description: str | None
    lifecycle_status: Literal["provisioning", "ready", "failed", "deleting", "deleted"]
    connection: Connection
    provider_realization: Realization
    desired_capabilities: list[dict[str, str]] = []
    capability_readbacks: list[dict[str, str]] = []
    binding_readiness: Readiness
    backup_relationship: BackupRelationship
    delete_safety: DeleteSafety
    created_at: Timestamp
    deleted_at: Timestamp | None


def _outs(ctx: Context, rows: Sequence[Database]) -> list[DatabaseOut]:
    """Databases as shown, with what holds each (bindings, backups): three queries for all."""
    ids = [d.id for d in rows]
    bound = dict(ctx.db.execute(select(DatabaseBinding.database_id, func.count()).where(
        DatabaseBinding.database_id.in_(ids)).group_by(DatabaseBinding.database_id)).all())
    kept = dict(ctx.db.execute(select(Backup.database_id, func.count()).where(
        Backup.database_id.in_(ids), Backup.status == "ready")
        .group_by(Backup.database_id)).all())
    return [_out(d, bound.get(d.id, 0), kept.get(d.id, 0)) for d in rows]


def _out(d: Database, bindings: int, backups: int) -> DatabaseOut:
    managed = d.source_mode == "managed"
    blockers = [Blocker(kind=kind, related_entity_type=kind, count=n) for kind, n in
                (("resource-binding", bindings), ("backup-relationship", backups)) if n]
    failed = d.status == "failed"
    return DatabaseOut(
        id=d.id, project_id=d.project_id, environment_id=d.environment_id, name=d.name,
        slug=d.slug, kind=d.kind, source_mode="appaloft-managed" if managed
        else "imported-external", provider_key="docker" if managed else "external",
        provider_managed=managed, description=d.description,
        lifecycle_status=d.status,
        connection=Connection(host=d.host, port=d.port, database_name=d.database_name,
                              masked_connection=masked_url(d), secret_ref=f"database:{d.id}"),
        provider_realization=Realization(
            status="realized" if d.status == "ready" else "failed" if failed
            else "deleted" if d.status == "deleted" else "pending",
            attempted_at=d.created_at, realized_at=d.realized_at,
            provider_resource_handle=d.volume_name, failure_code=d.failure_code,
            failure_message=d.failure_message),
        binding_readiness=Readiness(status="ready") if d.status == "ready" else Readiness(
            status="blocked" if failed else "not-ready", reason=d.failure_message or d.status),
        backup_relationship=BackupRelationship(
            retention_required=backups > 0,
            reason=f"{backups} ready backup(s) are retained" if backups else None),
        delete_safety=DeleteSafety(blockers=blockers), created_at=d.created_at,
        deleted_at=d.deleted_at)


def get_database(ctx: Context, database_id: str) -> Database:
    d = ctx.db.get(Database, database_id)
    if d is None or d.organization_id != ctx.org_id or d.status == "deleted":
        raise NotFound("dependency resource not found", code="dependency_resource_not_found")
    return d


# -- provisioning and import --------------------------------------------------------------------


class ProvisionIn(Schema):
    kind: DatabaseKind
    project_id: Id
    environment_id: Id
    name: Name
    description: str | None = Field(None, max_length=2000)
    server_id: Id | None = None


def _free_slug(ctx: Context, environment_id: str, name: str, of: Database | None = None) -> str:
    """The slug of `name`, refused when another database of the environment has it."""
    slug = slugify(name)
    if ctx.db.scalar(select(Database.id).where(
            Database.environment_id == environment_id, Database.slug == slug,
            Database.status != "deleted", Database.id != (of.id if of else ""))):
        raise Conflict(f"a dependency resource named {slug!r} already exists here",
                       code="dependency_resource_exists")
    return slug


def _placed(ctx: Context, data: ProvisionIn) -> tuple[str, str]:
    """(slug, server id) of a new database, refused where its environment cannot take it."""
    env = get_environment(ctx, data.environment_id, mutable=True)
    if env.project_id != data.project_id:
        raise Invalid("the environment does not belong to that project", code="context_mismatch")
    slug = _free_slug(ctx, env.id, data.name)
    server = get_server(ctx, data.server_id) if data.server_id else default_server(ctx)
    return slug, server.id


@operation("dependency-resources.provision", role="developer",
           audit="dependency-resource.provisioned")
def provision(ctx: Context, data: ProvisionIn) -> IdOut:
    """A new database of `kind`: its container and volume are made by the engine; it is
    `ready` once it answers its own client."""
    d = _provisioned(ctx, data)
    ctx.audit(d.id, kind=d.kind, name=d.name)
    return IdOut(id=d.id)


def _image(ctx: Context, kind: str) -> str:
    image = ctx.settings.database_images.get(kind)
    if not image:
        raise Invalid(f"no image is configured for {kind} databases (the operator's "
                      "database_images setting)", code="database_image_missing")
    return image


def _provisioned(ctx: Context, data: ProvisionIn) -> Database:
    image = _image(ctx, data.kind)
    slug, server_id = _placed(ctx, data)
    d = Database(id=new_id("db"), organization_id=ctx.org_id, project_id=data.project_id,
                 environment_id=data.environment_id, server_id=server_id, name=data.name,
                 slug=slug, kind=data.kind, source_mode="managed", description=data.description,
                 image=image, port=KINDS[data.kind].port,
                 database_name=None if data.kind == "redis" else slug.replace("-", "_"),
                 # Redis 6+ names its password's user `default` (URLs without one are
                 # misread by some clients, redis-cli 7.0 among them).
                 username="default" if data.kind == "redis" else "app", status="provisioning",
                 sealed_secret=ctx.secrets.encrypt(generate_password()), host="",
                 sealed_admin_secret=ctx.secrets.encrypt(generate_password())
                 if KINDS[data.kind].admin else None)
    d.host, d.volume_name = f"db-{d.id.removeprefix('db_')}", f"lb-db-{d.id}"
    ctx.db.add(d)
    database_work(ctx, d, "provision")
    return d


class ImportIn(ProvisionIn):
    connection_url: str = Field(min_length=1, max_length=2000)


@operation("dependency-resources.import", role="developer", audit="dependency-resource.imported")
def import_database(ctx: Context, data: ImportIn) -> IdOut:
    """An external database known by its URL: bound like any other, never touched by
    launchbay (not even on delete). Its URL is sealed and shown masked."""
    d = _imported(ctx, data)
    ctx.audit(d.id, kind=d.kind, name=d.name, host=d.host)
    return IdOut(id=d.id)


def endpoint_of(kind: str, connection_url: str) -> tuple[str, int]:
    """(host, port) of an imported database's URL, or 400."""
    url = urlsplit(connection_url)
    if url.scheme not in SCHEMES[kind] or not url.hostname:
        raise Invalid(f"expected a {kind} URL ({SCHEMES[kind][0]}://user:password@"
                      "host:port/name)", code="invalid_connection_url")
    try:
        port = url.port or KINDS[kind].port
    except ValueError:
        raise Invalid("the URL's port is not a number", code="invalid_connection_url") from None
    return url.hostname, port


def _imported(ctx: Context, data: ImportIn) -> Database:
    host, port = endpoint_of(data.kind, data.connection_url)
    url = urlsplit(data.connection_url)
    slug, server_id = _placed(ctx, data)
    d = Database(id=new_id("db"), organization_id=ctx.org_id, project_id=data.project_id,
                 environment_id=data.environment_id, server_id=server_id, name=data.name,
                 slug=slug, kind=data.kind, source_mode="imported", description=data.description,
                 host=host, port=port,
                 database_name=unquote(url.path.lstrip("/")) or None,
                 username=unquote(url.username) if url.username else None, status="ready",
                 sealed_secret=ctx.secrets.encrypt(data.connection_url), realized_at=utcnow())
    ctx.db.add(d)
    return d


# -- provisioning plans (plan, then accept) -----------------------------------------------------


class PlanIn(Schema):
    mode: Literal["create", "reuse"]
    create: ProvisionIn | None = None
    reuse: ImportIn | None = None

    @model_validator(mode="after")
    def _matches(self) -> PlanIn:
        if (self.create if self.mode == "create" else self.reuse) is None:
            raise ValueError(f"mode {self.mode} needs `{self.mode}`")
        return self


class Capability(Schema):
    type: Literal["postgres-extension", "redis-module"]
    name: str
    required: bool
    description: str | None = None


class Plan(Schema):
    id: str
    mode: Literal["create", "reuse"]
    status: Literal["planned", "accepted", "realized", "failed"]
    kind: str
    project_id: str
    environment_id: str
    name: str
    provider_key: str
    server_id: str | None
    endpoint: str | None
    capabilities: list[Capability] = []
    requires_acceptance: bool = True
    requested_at: Timestamp
    accepted_at: Timestamp | None
    completed_at: Timestamp | None
    dependency_resource_id: str | None
    failure_code: str | None
    failure_message: str | None
    summary: list[str]


class PlanOut(Schema):
    schema_version: str = "dependency-resource-provisioning.plan/v1"
    plan: Plan
    generated_at: Timestamp


def _plan_out(ctx: Context, p: DatabasePlan) -> PlanOut:
    d = ctx.db.get(Database, p.database_id) if p.database_id else None
    status = p.status
    if d is not None and status == "accepted":
        status = {"ready": "realized", "failed": "failed"}.get(d.status, status)
    doc = p.document
    summary = [f"create a {p.kind} database {p.name!r} in the environment (a container, a "
               f"named volume and a generated password; image {doc.get('image')})"
               if p.mode == "create" else
               f"record the external {p.kind} database at {doc.get('endpoint')}; launchbay "
               "never changes or deletes it"]
    return PlanOut(plan=Plan(
        id=p.id, mode=p.mode, status=status,
        kind=p.kind, project_id=p.project_id, environment_id=p.environment_id, name=p.name,
        provider_key="docker" if p.mode == "create" else "external", server_id=p.server_id,
        endpoint=doc.get("endpoint"), requested_at=p.created_at, accepted_at=p.accepted_at,
        completed_at=d.realized_at if d is not None and status == "realized" else None,
        dependency_resource_id=p.database_id,
        failure_code=d.failure_code if d is not None else None,
        failure_message=d.failure_message if d is not None else None, summary=summary),
        generated_at=utcnow())


@operation("dependency-resources.provisioning.plan", role="developer",
           audit="dependency-resource.plan-created")
def plan(ctx: Context, data: PlanIn) -> PlanOut:
    """What provisioning (`create`) or recording an external database (`reuse`) would do,
    checked now (names, environment, image, URL) and changing nothing until accepted."""
    given = data.create if data.mode == "create" else data.reuse
    assert given is not None  # the model's validator saw to it
    _, server_id = _placed(ctx, given)
    document: dict[str, Any] = given.model_dump(mode="json", by_alias=True)
    if isinstance(given, ImportIn):
        host, port = endpoint_of(given.kind, given.connection_url)
        document["connectionUrl"] = ctx.secrets.encrypt(given.connection_url)
        document["endpoint"] = f"{host}:{port}"
    else:
        document["image"] = _image(ctx, given.kind)
    p = DatabasePlan(id=new_id("dpl"), organization_id=ctx.org_id, mode=data.mode,
                     kind=given.kind, project_id=given.project_id,
                     environment_id=given.environment_id, name=given.name, server_id=server_id,
                     document=document, status="planned")
    ctx.db.add(p)
    ctx.db.flush()
    ctx.audit(p.id, mode=p.mode, kind=p.kind, name=p.name)
    return _plan_out(ctx, p)


class PlanRef(Schema):
    plan_id: Id


class PlanAccept(PlanRef):
    acknowledge_mutation: bool

    @model_validator(mode="after")
    def _acknowledged(self) -> PlanAccept:
        if not self.acknowledge_mutation:
            raise ValueError("accepting a plan changes things: acknowledgeMutation must be true")
        return self


def _get_plan(ctx: Context, plan_id: str) -> DatabasePlan:
    p = ctx.db.get(DatabasePlan, plan_id)
    if p is None or p.organization_id != ctx.org_id:
        raise NotFound("provisioning plan not found", code="provisioning_plan_not_found")
    return p


@operation("dependency-resources.provisioning.accept", role="developer",
           audit="dependency-resource.plan-accepted")
def accept_plan(ctx: Context, data: PlanAccept) -> PlanOut:
    """Does what the plan said (once: accepting it again answers the same plan)."""
    p = _get_plan(ctx, data.plan_id)
    if p.status != "planned":
        ctx.unchanged = True
        return _plan_out(ctx, p)
    doc = dict(p.document)
    if p.mode == "create":
        d = _provisioned(ctx, ProvisionIn.model_validate(doc))
    else:
        doc["connectionUrl"] = ctx.secrets.decrypt(doc["connectionUrl"])
        d = _imported(ctx, ImportIn.model_validate(doc))
    p.database_id, p.status, p.accepted_at = d.id, "accepted", utcnow()
    ctx.db.flush()
    ctx.audit(p.id, dependencyResourceId=d.id)
    return _plan_out(ctx, p)


@operation("dependency-resources.provisioning.show")
def show_plan(ctx: Context, data: PlanRef) -> PlanOut:
    """A provisioning plan and, once accepted, how its database is doing."""
    return _plan_out(ctx, _get_plan(ctx, data.plan_id))


def database_work(ctx: Context, d: Database, action: str, **payload: str) -> OperatorWork:
    return ctx.enqueue("database", f"dependency-resources.{action}", project_id=d.project_id,
                       server_id=d.server_id,
                       payload={"action": action, "database_id": d.id, **payload})


# -- reading ------------------------------------------------------------------------------------


class DatabaseFilter(Schema):
    project_id: Id | None = None
    environment_id: Id | None = None
    kind: DatabaseKind | None = None
    limit: int = Field(100, gt=0, le=500)


class DatabaseList(Schema):
    schema_version: str = "dependency-resources.list/v1"
    items: list[DatabaseOut]
    generated_at: Timestamp


def _filtered(ctx: Context, data: DatabaseFilter):
    query = select(Database).where(Database.organization_id == ctx.org_id,
                                   Database.status != "deleted")
    for column, value in ((Database.project_id, data.project_id),
                          (Database.environment_id, data.environment_id),
                          (Database.kind, data.kind)):
        if value:
            query = query.where(column == value)
    return query


@operation("dependency-resources.list")
def list_databases(ctx: Context, data: DatabaseFilter) -> DatabaseList:
    """The organization's databases, by name."""
    rows = ctx.db.scalars(_filtered(ctx, data).order_by(Database.name).limit(data.limit)).all()
    return DatabaseList(items=_outs(ctx, rows), generated_at=utcnow())


class Count(Schema):
    count: int


@operation("dependency-resources.count")
def count_databases(ctx: Context, data: DatabaseFilter) -> Count:
    """How many databases the organization has (with the list's filters)."""
    return Count(count=ctx.db.scalar(select(func.count()).select_from(
        _filtered(ctx, data).subquery())) or 0)


class DatabaseRef(Schema):
    dependency_resource_id: Id


class DatabaseShow(Schema):
    schema_version: str = "dependency-resources.show/v1"
    dependency_resource: DatabaseOut
    generated_at: Timestamp


@operation("dependency-resources.show")
def show_database(ctx: Context, data: DatabaseRef) -> DatabaseShow:
    """One database, its URL masked, and what would block its delete."""
    d = get_database(ctx, data.dependency_resource_id)
    return DatabaseShow(dependency_resource=_outs(ctx, [d])[0], generated_at=utcnow())


class DatabaseRename(DatabaseRef):
    name: Name


@operation("dependency-resources.rename", role="developer", audit="dependency-resource.renamed")
def rename_database(ctx: Context, data: DatabaseRename) -> IdOut:
    """A new name (its host name on the network, its volume and its data stay)."""
    d = get_database(ctx, data.dependency_resource_id)
    d.name, d.slug = data.name, _free_slug(ctx, d.environment_id, data.name, d)
    ctx.audit(d.id, name=data.name)
    return IdOut(id=d.id)


class DatabaseDelete(DatabaseRef):
    release_backups: bool = False


@operation("dependency-resources.delete", role="admin", audit="dependency-resource.deleted")
def delete_database(ctx: Context, data: DatabaseDelete) -> IdOut:
    """Deletes a database and, for a managed one, its container, volume and data. Refused while
    a resource is bound to it, and while ready backups are retained unless the caller
    releases them (`releaseBackups`: the backup files are kept; only the database goes)."""
    d = get_database(ctx, data.dependency_resource_id)
    if d.status == "deleting":
        ctx.unchanged = True
        return IdOut(id=d.id)
    out = _outs(ctx, [d])[0]
    blockers = [b for b in out.delete_safety.blockers
                if b.kind == "resource-binding" or not data.release_backups]
    if blockers:
        raise Conflict("the dependency resource is still in use", code="dependency_resource_in_use",
                       details={"blockers": [b.model_dump(by_alias=True) for b in blockers]})
    if d.source_mode == "managed":
        d.status = "deleting"
        database_work(ctx, d, "remove")
    else:
        d.status, d.deleted_at = "deleted", utcnow()
    ctx.audit(d.id, name=d.name, releasedBackups=data.release_backups)
    return IdOut(id=d.id)


# -- bindings -----------------------------------------------------------------------------------


class BindingTarget(Schema):
    target_name: str
    scope: Literal["resource"] = "resource"
    injection_mode: Literal["env"] = "env"
    secret_ref: str


class SecretRotation(Schema):
    secret_ref: str
    secret_version: str
    rotated_at: Timestamp | None
    previous_secret_version: str | None
    # launchbay's own: where the rotation is (the old login is valid until `completed`)
    rotation_id: str
    status: Literal["adding", "redeploying", "revoking", "completed", "failed"]
    reason: str | None


class BindingOut(Schema):
    id: str
    project_id: str
    environment_id: str
    resource_id: str
    dependency_resource_id: str
    dependency_resource_name: str
    dependency_resource_slug: str
    kind: str
    source_mode: str
    provider_key: str
    provider_managed: bool
    lifecycle_status: str
    target: BindingTarget
    secret_rotation: SecretRotation | None
    variables: list[str]
    connection: Connection
    binding_readiness: Readiness
    snapshot_readiness: Readiness
    status: Literal["active"] = "active"
    created_at: Timestamp
    removed_at: Timestamp | None = None


def _rotation_out(d: Database, rot: CredentialRotation | None) -> SecretRotation | None:
    if rot is None:
        return None
    return SecretRotation(
        secret_ref=f"database:{d.id}", secret_version=f"v{d.secret_version}",
        rotated_at=rot.swapped_at, previous_secret_version=f"v{rot.version - 1}",
        rotation_id=rot.id, status=rot.status, reason=rot.reason)


def _latest_rotations(ctx: Context, database_ids: list[str]) -> dict[str, CredentialRotation]:
    """The latest rotation of each database: one query."""
    latest = select(CredentialRotation.database_id,
                    func.max(CredentialRotation.created_at).label("at")).where(
        CredentialRotation.database_id.in_(database_ids)).group_by(
        CredentialRotation.database_id).subquery()
    return {rot.database_id: rot for rot in ctx.db.scalars(select(CredentialRotation).join(
        latest, (CredentialRotation.database_id == latest.c.database_id)
        & (CredentialRotation.created_at == latest.c.at)))}


def _binding_out(b: DatabaseBinding, r: Resource, d: Database,
                 rot: CredentialRotation | None) -> BindingOut:
    shown = _out(d, 0, 0)
    return BindingOut(
        id=b.id, project_id=r.project_id, environment_id=r.environment_id, resource_id=r.id,
        dependency_resource_id=d.id, dependency_resource_name=d.name,
        dependency_resource_slug=d.slug, kind=d.kind, source_mode=shown.source_mode,
        provider_key=shown.provider_key, provider_managed=shown.provider_managed,
        lifecycle_status=d.status,
        target=BindingTarget(target_name=b.target_name, secret_ref=f"database:{d.id}"),
        secret_rotation=_rotation_out(d, rot),
        variables=variables.injected(b, d), connection=shown.connection,
        binding_readiness=shown.binding_readiness,
        snapshot_readiness=Readiness(status="ready", reason="in the resource's next deployment"),
        created_at=b.created_at)


def bindings_of(ctx: Context, resource_id: str) -> list[tuple[DatabaseBinding, Database]]:
    """A resource's bindings with their databases, oldest first: one query."""
    return [(b, d) for b, d in ctx.db.execute(select(DatabaseBinding, Database).join(Database)
                                              .where(DatabaseBinding.resource_id == resource_id)
                                              .order_by(DatabaseBinding.created_at))]


class BindingIn(ResourceRef):
    dependency_resource_id: Id
    target_name: str = TargetName
    discrete_variables: bool = True


@operation("resources.dependency-bindings.create", role="developer",
           audit="resource.dependency-bound")
def bind(ctx: Context, data: BindingIn) -> IdOut:
    """Binds a database of the resource's environment to it: its next deployment gets the
    URL as `targetName` (and, with `discreteVariables`, the kind's usual variables). A name
    already set by a variable or another binding is refused."""
    r = get_resource(ctx, data.resource_id, mutable=True)
    d = get_database(ctx, data.dependency_resource_id)
    if d.environment_id != r.environment_id:
        raise Invalid("the database is in another environment than the resource",
                      code="context_mismatch")
    b = DatabaseBinding(id=new_id("dbb"), organization_id=ctx.org_id, resource_id=r.id,
                        database_id=d.id, target_name=data.target_name,
                        discrete=data.discrete_variables)
    wanted = set(variables.injected(b, d))
    taken = {v.key for v in variables.effective(ctx, r.environment_id, r.id)}
    for other, od in bindings_of(ctx, r.id):
        taken.update(variables.injected(other, od))
    if clash := sorted(wanted & taken):
        raise Conflict(f"the resource already has {', '.join(clash)}: a binding never "
                       "overrides a variable", code="dependency_binding_variable_conflict",
                       details={"variables": clash})
    ctx.db.add(b)
    ctx.audit(r.id, bindingId=b.id, dependencyResourceId=d.id, targetName=b.target_name)
    return IdOut(id=b.id)


class BindingList(Schema):
    schema_version: str = "resources.dependency-bindings.list/v1"
    items: list[BindingOut]
    generated_at: Timestamp


@operation("resources.dependency-bindings.list")
def list_bindings(ctx: Context, data: ResourceRef) -> BindingList:
    """The databases bound to a resource, and the variables each injects."""
    r = get_resource(ctx, data.resource_id)
    bound = bindings_of(ctx, r.id)
    rotations = _latest_rotations(ctx, [d.id for _, d in bound])
    return BindingList(items=[_binding_out(b, r, d, rotations.get(d.id)) for b, d in bound],
                       generated_at=utcnow())


class BindingRef(ResourceRef):
    binding_id: Id


class BindingShow(Schema):
    schema_version: str = "resources.dependency-bindings.show/v1"
    binding: BindingOut
    generated_at: Timestamp


def get_binding(ctx: Context, data: BindingRef) -> tuple[DatabaseBinding, Resource, Database]:
    r = get_resource(ctx, data.resource_id)
    b = ctx.db.get(DatabaseBinding, data.binding_id)
    if b is None or b.resource_id != r.id:
        raise NotFound("dependency binding not found", code="dependency_binding_not_found")
    return b, r, ctx.db.get_one(Database, b.database_id)


@operation("resources.dependency-bindings.show")
def show_binding(ctx: Context, data: BindingRef) -> BindingShow:
    """One binding of a resource."""
    b, r, d = get_binding(ctx, data)
    return BindingShow(binding=_binding_out(b, r, d, _latest_rotations(ctx, [d.id]).get(d.id)),
                       generated_at=utcnow())


@operation("resources.dependency-bindings.delete", role="developer",
           audit="resource.dependency-unbound")
def unbind(ctx: Context, data: BindingRef) -> IdOut:
    """Unbinds: the resource's next deployment no longer gets the variables (running ones
    keep theirs until then)."""
    b, r, d = get_binding(ctx, data)
    ctx.db.delete(b)
    ctx.audit(r.id, bindingId=b.id, dependencyResourceId=d.id)
    return IdOut(id=b.id)


def binding_variables(ctx: Context, resource_id: str) -> list[tuple[str, str, bool]]:
    """(name, value, secret) of every variable the resource's bindings inject now: the URL
    and the password are secrets (sealed), the host, port, user and name plain."""
    found: list[tuple[str, str, bool]] = []
    for b, d in bindings_of(ctx, resource_id):
        secret = ctx.secrets.decrypt(d.sealed_secret)
        imported = d.source_mode == "imported"
        url = secret if imported else url_of(d, secret)
        password = unquote(urlsplit(url).password or "") if imported else secret
        found.append((b.target_name, ctx.secrets.encrypt(url), True))
        if b.discrete:
            found += [(k, ctx.secrets.encrypt(v) if v == password else v, v == password)
                      for k, v in KINDS[d.kind].discrete(d, password).items()
                      if k != b.target_name]
    return found


# -- backups and restores -----------------------------------------------------------------------


class RestoreAttempt(Schema):
    attempt_id: str
    status: Literal["pending", "succeeded", "failed"]
    restored_into: str | None = None  # the database (or volume) restored into
    requested_at: Timestamp
    completed_at: Timestamp | None = None
    failed_at: Timestamp | None = None
    failure_code: str | None = None
    failure_message: str | None = None


class CopyOut(Schema):
    destination_id: str
    object_key: str
    status: Literal["uploaded", "failed"]
    size_bytes: int | None
    failure_message: str | None
    uploaded_at: Timestamp | None


class BackupFacts(Schema):
    """What a backup of any source shows: its state, its file, its copies, its last restore."""

    status: Literal["pending", "ready", "failed"]
    phase: str | None
    attempt_id: str | None
    requested_at: Timestamp
    provider_artifact_handle: str | None
    size_bytes: int | None
    sha256: str | None
    completed_at: Timestamp | None
    failed_at: Timestamp | None
    failure_code: str | None
    failure_message: str | None
    latest_restore_attempt: RestoreAttempt | None
    copies: list[CopyOut]
    created_at: Timestamp


def backup_facts(ctx: Context, rows: Sequence[Backup]) -> dict[str, BackupFacts]:
    """The facts of each backup by its id: two queries for them all."""
    restores = {w.id: w for w in ctx.db.scalars(select(OperatorWork).where(OperatorWork.id.in_(
        [b.restore_work_id for b in rows if b.restore_work_id])))}
    copies: dict[str, list[CopyOut]] = {b.id: [] for b in rows}
    for c in ctx.db.scalars(select(BackupCopy).where(BackupCopy.backup_id.in_(list(copies)))):
        copies[c.backup_id].append(CopyOut(
            destination_id=c.destination_id, object_key=c.object_key,
            status=c.status,
            size_bytes=c.size_bytes, failure_message=c.failure_message,
            uploaded_at=c.uploaded_at))
    facts = {}
    for b in rows:
        failed = b.status == "failed"
        w = restores.get(b.restore_work_id or "")
        attempt = None if w is None else RestoreAttempt(
            attempt_id=w.id, restored_into=w.payload.get("database_id")
            or w.payload.get("storage_volume_id"),
            status="succeeded" if w.status == "succeeded" else "failed"
            if w.status in ("failed", "dead-lettered", "canceled") else "pending",
            requested_at=w.created_at,
            completed_at=w.finished_at if w.status == "succeeded" else None,
            failed_at=w.finished_at if w.status != "succeeded" else None,
            failure_code=w.error_code, failure_message=w.error_message)
        facts[b.id] = BackupFacts(
            status="ready" if b.status == "ready" else "failed" if failed else "pending",
            phase=b.phase, attempt_id=b.work_id, requested_at=b.created_at,
            provider_artifact_handle=b.file_name if b.status == "ready" else None,
            size_bytes=b.size_bytes, sha256=b.sha256,
            completed_at=b.completed_at if not failed else None,
            failed_at=b.completed_at if failed else None, failure_code=b.failure_code,
            failure_message=b.failure_message, latest_restore_attempt=attempt,
            copies=copies[b.id], created_at=b.created_at)
    return facts


class BackupOut(BackupFacts):
    id: str
    dependency_resource_id: str
    project_id: str
    environment_id: str
    dependency_kind: str
    provider_key: str = "local-file"
    reason: str
    retention_status: Literal["retained"] = "retained"


def _backup_outs(ctx: Context, rows: Sequence[tuple[Backup, Database]]) -> list[BackupOut]:
    facts = backup_facts(ctx, [b for b, _ in rows])
    return [BackupOut(id=b.id, dependency_resource_id=d.id, project_id=d.project_id,
                      environment_id=d.environment_id, dependency_kind=b.kind, reason=b.reason,
                      **facts[b.id].model_dump()) for b, d in rows]


def new_backup(ctx: Context, d: Database, reason: str) -> Backup:
    if d.source_mode != "managed":
        raise Conflict("an imported database is not launchbay's to back up",
                       code="dependency_resource_not_managed")
    if d.status != "ready":
        raise Conflict(f"the database is {d.status}, not ready",
                       code="dependency_resource_not_ready")
    b = Backup(id=new_id("dbk"), organization_id=ctx.org_id, database_id=d.id,
                       kind=d.kind, reason=reason, status="pending")
    ctx.db.add(b)
    return b


class BackupIn(DatabaseRef):
    description: str | None = Field(None, max_length=500)
    destination_ids: list[Id] = Field(default_factory=list, max_length=10)


@operation("dependency-resources.backups.create", role="developer",
           audit="dependency-resource.backup-requested")
def create_backup(ctx: Context, data: BackupIn) -> IdOut:
    """A backup now: dumped in a one-off container of the database's image, `ready` only
    once the kind's own reader has read it whole."""
    d = get_database(ctx, data.dependency_resource_id)
    b = new_backup(ctx, d, "manual")
    b.destination_ids = destinations(ctx, data.destination_ids)
    b.work_id = database_work(ctx, d, "backup", backup_id=b.id).id
    ctx.audit(d.id, backupId=b.id)
    return IdOut(id=b.id)


class BackupFilter(DatabaseRef):
    status: Literal["pending", "ready", "failed"] | None = None


class BackupList(Schema):
    schema_version: str = "dependency-resources.backups.list/v1"
    items: list[BackupOut]
    generated_at: Timestamp


@operation("dependency-resources.backups.list")
def list_backups(ctx: Context, data: BackupFilter) -> BackupList:
    """A database's backups, newest first."""
    d = get_database(ctx, data.dependency_resource_id)
    query = select(Backup).where(Backup.database_id == d.id)
    if data.status == "pending":
        query = query.where(Backup.status.in_(("pending", "running")))
    elif data.status:
        query = query.where(Backup.status == data.status)
    rows = ctx.db.scalars(query.order_by(Backup.created_at.desc()).limit(500)).all()
    return BackupList(items=_backup_outs(ctx, [(b, d) for b in rows]), generated_at=utcnow())


class BackupRef(Schema):
    backup_id: Id


class BackupShow(Schema):
    schema_version: str = "dependency-resources.backups.show/v1"
    backup: BackupOut
    generated_at: Timestamp


def _get_backup(ctx: Context, backup_id: str) -> tuple[Backup, Database]:
    b = ctx.db.get(Backup, backup_id)
    if b is None or b.organization_id != ctx.org_id or b.database_id is None:
        raise NotFound("backup not found", code="dependency_resource_backup_not_found")
    return b, get_database(ctx, b.database_id)


@operation("dependency-resources.backups.show")
def show_backup(ctx: Context, data: BackupRef) -> BackupShow:
    """One backup: its size and sha256 once ready, and its latest restore."""
    return BackupShow(backup=_backup_outs(ctx, [_get_backup(ctx, data.backup_id)])[0],
                      generated_at=utcnow())


class RestoreIn(BackupRef):
    acknowledge_data_overwrite: bool
    acknowledge_runtime_not_restarted: bool = False
    # launchbay's own: another managed database of the same kind to restore into
    target_dependency_resource_id: Id | None = None

    @model_validator(mode="after")
    def _acknowledged(self) -> RestoreIn:
        if not self.acknowledge_data_overwrite:
            raise ValueError("a restore overwrites the database: acknowledgeDataOverwrite "
                             "must be true")
        return self


@operation("dependency-resources.backups.restore", role="admin",
           audit="dependency-resource.restore-requested")
def restore(ctx: Context, data: RestoreIn) -> IdOut:
    """Restores a ready backup into its database (or into another managed database of the
    same kind: `targetDependencyResourceId`), after a safety backup of what is there now
    (kept like any other). The bound resources are not restarted."""
    b, source = _get_backup(ctx, data.backup_id)
    if b.status != "ready":
        raise Conflict("only a ready (verified) backup can be restored",
                       code="dependency_resource_backup_not_ready")
    d = get_database(ctx, data.target_dependency_resource_id or source.id)
    if d.kind != source.kind:
        raise Invalid(f"a {source.kind} backup restores only into a {source.kind} database",
                      code="dependency_resource_kind_mismatch")
    if any(w.payload.get("action") == "restore" and w.payload.get("database_id") == d.id
           for w in ctx.db.scalars(select(OperatorWork).where(
               OperatorWork.organization_id == ctx.org_id, OperatorWork.kind == "database",
               OperatorWork.status.in_(("pending", "running", "retry-scheduled"))))):
        raise Conflict("a restore of this database is under way", code="restore_in_progress")
    safety = new_backup(ctx, d, "safety")
    work = database_work(ctx, d, "restore", backup_id=b.id, safety_backup_id=safety.id)
    safety.work_id = b.restore_work_id = work.id
    ctx.audit(d.id, backupId=b.id, safetyBackupId=safety.id, sourceDependencyResourceId=source.id)
    return IdOut(id=work.id)


# -- backup policies ----------------------------------------------------------------------------


class PolicyOut(Schema):
    schema_version: str = "dependency-resource-backup-policies.policy/v1"
    id: str
    version: str
    dependency_resource_id: str
    schedule: str | None
    timezone: str
    schedule_interval_hours: int | None
    retention_days: int | None
    retention_count: int | None
    provider_key: str = "local-file"
    destination_ids: list[str]
    retry_on_failure: bool
    enabled: bool
    last_run_at: Timestamp | None
    next_run_at: Timestamp | None
    upcoming_runs: list[Timestamp]
    updated_at: Timestamp


def _policy_out(p: BackupPolicy) -> PolicyOut:
    upcoming = schedules.upcoming(p.schedule, p.timezone, p.interval_hours,
                                  p.next_run_at - timedelta(seconds=1)) \
        if p.enabled and p.next_run_at else []
    return PolicyOut(id=p.id, version=str(p.version), dependency_resource_id=p.database_id,
                     schedule=p.schedule, timezone=p.timezone,
                     schedule_interval_hours=p.interval_hours, retention_days=p.retention_days,
                     retention_count=p.retention_count, destination_ids=p.destination_ids,
                     retry_on_failure=p.retry_on_failure,
                     enabled=p.enabled, last_run_at=p.last_run_at, next_run_at=p.next_run_at,
                     upcoming_runs=upcoming, updated_at=p.updated_at)


class PolicyIn(Schema):
    dependency_resource_id: Id
    schedule: str | None = Field(None, min_length=1, max_length=100)
    timezone: str = Field("UTC", min_length=1, max_length=64)
    schedule_interval_hours: int | None = Field(None, ge=1, le=8760)
    retention_days: int | None = Field(None, ge=1, le=3650)
    retention_count: int | None = Field(None, ge=1, le=1000)
    retry_on_failure: bool = True
    enabled: bool = True
    destination_ids: list[Id] = Field(default_factory=list, max_length=10)

    @model_validator(mode="after")
    def _one_schedule(self) -> PolicyIn:
        if (self.schedule is None) == (self.schedule_interval_hours is None):
            raise ValueError("give either schedule (cron, in timezone) or "
                             "scheduleIntervalHours")
        if problem := schedules.problem(self.schedule, self.timezone):
            raise ValueError(problem)
        return self


@operation("dependency-resources.backup-policies.configure", role="developer",
           audit="dependency-resource.backup-policy-configured")
def configure_policy(ctx: Context, data: PolicyIn) -> IdOut:
    """Sets when a database is backed up and which of those backups are kept: at most
    `retentionCount`, none older than `retentionDays`, and never the newest good one.
    Retention runs only after a backup succeeded; a failed run deletes nothing."""
    d = get_database(ctx, data.dependency_resource_id)
    if d.source_mode != "managed":
        raise Conflict("an imported database is not launchbay's to back up",
                       code="dependency_resource_not_managed")
    p = ctx.db.scalar(select(BackupPolicy).where(BackupPolicy.database_id == d.id))
    if p is None:
        p = BackupPolicy(id=new_id("dbp"), organization_id=ctx.org_id, database_id=d.id,
                         version=0)
        ctx.db.add(p)
    now = utcnow()
    p.created_by = ctx.user_id or ""
    p.schedule, p.timezone, p.interval_hours = data.schedule, data.timezone, \
        data.schedule_interval_hours
    p.retention_days, p.retention_count = data.retention_days, data.retention_count
    p.retry_on_failure, p.enabled = data.retry_on_failure, data.enabled
    p.destination_ids = destinations(ctx, data.destination_ids)
    p.version, p.updated_at = (p.version or 0) + 1, now
    p.next_run_at = schedules.next_fire(p.schedule, p.timezone, p.interval_hours, now) \
        if p.enabled else None
    ctx.audit(d.id, policyId=p.id, schedule=p.schedule, timezone=p.timezone,
              intervalHours=p.interval_hours, retentionDays=p.retention_days,
              retentionCount=p.retention_count, enabled=p.enabled)
    return IdOut(id=p.id)


class PolicyFilter(Schema):
    dependency_resource_id: Id | None = None
    enabled_only: bool = False


class PolicyList(Schema):
    schema_version: str = "dependency-resource-backup-policies.list/v1"
    items: list[PolicyOut]


@operation("dependency-resources.backup-policies.list")
def list_policies(ctx: Context, data: PolicyFilter) -> PolicyList:
    """The organization's backup policies, with their last and next runs."""
    query = select(BackupPolicy).join(Database).where(
        BackupPolicy.organization_id == ctx.org_id, Database.status != "deleted")
    if data.dependency_resource_id:
        query = query.where(BackupPolicy.database_id == data.dependency_resource_id)
    if data.enabled_only:
        query = query.where(BackupPolicy.enabled.is_(True))
    return PolicyList(items=[_policy_out(p) for p in ctx.db.scalars(
        query.order_by(BackupPolicy.created_at).limit(500))])


class PolicyRef(Schema):
    policy_id: Id


class PolicyShow(Schema):
    schema_version: str = "dependency-resource-backup-policies.show/v1"
    policy: PolicyOut


def _get_policy(ctx: Context, policy_id: str) -> BackupPolicy:
    p = ctx.db.get(BackupPolicy, policy_id)
    if p is None or p.organization_id != ctx.org_id:
        raise NotFound("backup policy not found", code="backup_policy_not_found")
    get_database(ctx, p.database_id)
    return p


@operation("dependency-resources.backup-policies.show")
def show_policy(ctx: Context, data: PolicyRef) -> PolicyShow:
    """One backup policy and its next five runs."""
    return PolicyShow(policy=_policy_out(_get_policy(ctx, data.policy_id)))


@operation("dependency-resources.backup-policies.run", role="developer",
           audit="dependency-resource.backup-requested")
def run_policy(ctx: Context, data: PolicyRef) -> IdOut:
    """A backup by the policy now (its retention applies once it is ready). The scheduler
    runs this when a policy is due; a due policy's next run is then set from now, so runs
    missed while the control plane was down are skipped, not piled up."""
    p = _get_policy(ctx, data.policy_id)
    d = get_database(ctx, p.database_id)
    now = utcnow()
    if p.enabled and p.next_run_at is not None and p.next_run_at <= now:
        p.next_run_at = schedules.next_fire(p.schedule, p.timezone, p.interval_hours, now)
    p.last_run_at = now
    b = new_backup(ctx, d, "scheduled")
    b.policy_id, b.destination_ids = p.id, list(p.destination_ids)
    b.work_id = database_work(ctx, d, "backup", backup_id=b.id).id
    ctx.audit(d.id, backupId=b.id, policyId=p.id)
    return IdOut(id=b.id)


def due_policies(db: DbSession, now: datetime) -> list[tuple[str, str, dict[str, str]]]:
    """(user, organization, input) of each policy due at `now`, by index: the scheduler's
    work is the due policies, not every database."""
    return [(p.created_by, p.organization_id, {"policyId": p.id}) for p in db.scalars(
        select(BackupPolicy).where(BackupPolicy.enabled.is_(True),
                                   BackupPolicy.next_run_at <= now).limit(1000))]


# -- destinations -------------------------------------------------------------------------------


class DestinationOut(Schema):
    id: str
    name: str
    kind: Literal["s3"]
    endpoint: str
    bucket: str
    prefix: str
    region: str | None
    created_at: Timestamp


def _destination_out(t: BackupDestination) -> DestinationOut:
    return DestinationOut(id=t.id, name=t.name, kind="s3", endpoint=t.endpoint, bucket=t.bucket,
                          prefix=t.prefix, region=t.region, created_at=t.created_at)


class DestinationIn(Schema):
    name: Name
    kind: Literal["s3"] = "s3"
    endpoint: str = Field(min_length=1, max_length=500, pattern=r"^https?://[^/?#@\s]+/?$")
    bucket: str = Field(min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9.-]+[a-z0-9]$")
    prefix: str = Field("", max_length=500, pattern=r"^[A-Za-z0-9._/-]*$")
    region: str | None = Field(None, max_length=100, pattern=r"^[a-z0-9-]+$")
    access_key_id: str = Field(min_length=1, max_length=200)
    secret_access_key: str = Field(min_length=1, max_length=500)


@operation("backup-destinations.create", role="admin", audit="backup-destination.created")
def create_destination(ctx: Context, data: DestinationIn) -> IdOut:
    """An S3-compatible bucket backups can be copied to (its keys are sealed, never shown).
    Like git remotes, object stores are reached only at public addresses unless an operator
    allows networks (`backup_allowed_networks`): an address is refused here, a name at each
    upload (where it resolves then)."""
    if problem := outbound_problem(data.endpoint, ctx.settings, resolve=False):
        raise Invalid(problem, code="destination_not_allowed")
    if ctx.db.scalar(select(BackupDestination.id).where(
            BackupDestination.organization_id == ctx.org_id,
            BackupDestination.name == data.name)):
        raise Conflict(f"a destination named {data.name!r} exists", code="destination_exists")
    t = BackupDestination(
        id=new_id("dst"), organization_id=ctx.org_id, name=data.name, kind=data.kind,
        endpoint=data.endpoint.rstrip("/"), bucket=data.bucket, prefix=data.prefix.strip("/"),
        region=data.region, sealed_credentials=ctx.secrets.encrypt(json.dumps(
            {"accessKeyId": data.access_key_id, "secretAccessKey": data.secret_access_key})))
    ctx.db.add(t)
    ctx.audit(t.id, name=t.name, endpoint=t.endpoint, bucket=t.bucket)
    return IdOut(id=t.id)


class DestinationList(Schema):
    items: list[DestinationOut]


@operation("backup-destinations.list")
def list_destinations(ctx: Context, _: Empty) -> DestinationList:
    """The organization's backup destinations (their keys never shown)."""
    return DestinationList(items=[_destination_out(t) for t in ctx.db.scalars(
        select(BackupDestination).where(BackupDestination.organization_id == ctx.org_id)
        .order_by(BackupDestination.name).limit(500))])


class DestinationRef(Schema):
    destination_id: Id


@operation("backup-destinations.delete", role="admin", audit="backup-destination.deleted")
def delete_destination(ctx: Context, data: DestinationRef) -> IdOut:
    """Forgets a destination (what it holds stays there); refused while a policy copies to
    it or a backup's copy is there."""
    t = ctx.db.get(BackupDestination, data.destination_id)
    if t is None or t.organization_id != ctx.org_id:
        raise NotFound("backup destination not found", code="destination_not_found")
    used = any(t.id in p.destination_ids for p in ctx.db.scalars(select(BackupPolicy).where(
        BackupPolicy.organization_id == ctx.org_id)))
    if used or ctx.db.scalar(select(BackupCopy.backup_id).where(
            BackupCopy.destination_id == t.id).limit(1)):
        raise Conflict("the destination is in use by a policy or holds backups",
                       code="destination_in_use")
    ctx.db.delete(t)
    ctx.audit(t.id, name=t.name)
    return IdOut(id=t.id)


def destinations(ctx: Context, ids: list[str]) -> list[str]:
    """`ids`, each a destination of the caller's organization (404 otherwise)."""
    found = set(ctx.db.scalars(select(BackupDestination.id).where(
        BackupDestination.organization_id == ctx.org_id, BackupDestination.id.in_(ids))))
    if missing := [i for i in ids if i not in found]:
        raise NotFound(f"backup destination {missing[0]} not found", code="destination_not_found")
    return list(dict.fromkeys(ids))
