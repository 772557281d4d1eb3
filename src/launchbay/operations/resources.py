"""Resources: the applications of an environment, with their source, runtime, network and
health profiles, variables and secrets, storage, and runtime controls."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import (
    BaseModel,
    RootModel,
    ValidationError,
    field_validator,
)
from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import aliased, load_only

from launchbay.crypto import mask
from launchbay.drivers import source_checkout
from launchbay.engine import health_monitor, routing
from launchbay.engine.health import PROBE_AGENT
from launchbay.engine.plan import ReleasePlan
from launchbay.engine.routing import generated_host, on_remote_server, public_url
from launchbay.engine.runtime import SERVICE, LogLine, RuntimeFailure
from launchbay.operations import variables
from launchbay.operations.catalog import Context, Role, operation
from launchbay.operations.environments import get_environment
from launchbay.operations.errors import Conflict, Invalid, NotFound
from launchbay.operations.idempotency import Idempotent
from launchbay.operations.projects import get_project
from launchbay.operations.removal import remove_resources
from launchbay.operations.schemas import CountOut, Field, Id, IdOut, Name, Schema, Timestamp
from launchbay.operations.servers import default_server, get_server
from launchbay.operations.variables import Entry, Exposure, VariableIn, VariableKey, VariableValue
from launchbay.slugs import slugify
from launchbay.store.models import (
    Deployment,
    DomainBinding,
    Environment,
    HealthObservation,
    HealthRollup,
    LifecycleStatus,
    OperatorWork,
    Project,
    Resource,
    ResourceVariable,
    StorageAttachment,
    StorageVolume,
    new_id,
    newest_deployment_of,
    utcnow,
)
from launchbay.store.profiles import (
    AccessProfile,
    EnvironmentSnapshot,
    HealthPolicy,
    HealthRecord,
    MaintenancePayload,
    NetworkProfile,
    RuntimeProfile,
    SourceProfile,
    stored,
)

# -- reading ------------------------------------------------------------------------------------


def get_resource(ctx: Context, resource_id: str, *, mutable: bool = False) -> Resource:
    """The resource if it belongs to the caller's organization; 404 otherwise. `mutable` also
    refuses an archived resource or one in a locked or archived environment (409)."""
    resource = ctx.db.get(Resource, resource_id)
    if resource is None or resource.organization_id != ctx.org_id:
        raise NotFound("resource not found", code="resource_not_found")
    if mutable:
        if resource.lifecycle_status != LifecycleStatus.ACTIVE:
            raise Conflict("the resource is archived", code="resource_archived")
        get_environment(ctx, resource.environment_id, mutable=True)
    return resource


class Service(Schema):
    name: str
    kind: str = "web"


class ResourceSummary(Schema):
    id: str
    project_id: str
    environment_id: str
    destination_id: str
    name: str
    slug: str
    kind: str
    description: str | None
    created_at: Timestamp
    services: list[Service]
    network_profile: NetworkProfile
    access_profile: AccessProfile
    deployment_count: int
    last_deployment_id: str | None
    last_deployment_status: str | None
    last_deployment_at: Timestamp | None = None
    current_deployment_id: str | None
    lifecycle_status: str
    # As the store knows it: the current release's container was left running (it has a
    # port) or stopped (`resources.runtime.stop`). The health history says what was observed.
    runtime_state: Literal["not-deployed", "running", "stopped"] = "not-deployed"


def _latest(ctx: Context, resource_id: str) -> Deployment | None:
    return ctx.db.scalar(select(Deployment).where(Deployment.resource_id == resource_id)
                         .order_by(Deployment.created_at.desc()).limit(1))


# What a summary reads of a resource (a list loads no more).
SUMMARIZED = (Resource.id, Resource.project_id, Resource.environment_id, Resource.server_id,
              Resource.name, Resource.slug, Resource.kind, Resource.description,
              Resource.created_at, Resource.network_profile, Resource.access_profile,
              Resource.current_deployment_id, Resource.lifecycle_status)


# What a resource's generated URL and current release read of it (`preloaded` loads no more).
ROUTED = (Resource.id, Resource.slug, Resource.server_id, Resource.environment_id,
          Resource.project_id, Resource.access_profile, Resource.current_deployment_id)


def summary(ctx: Context, r: Resource) -> ResourceSummary:
    return summaries(ctx, [r])[0]


# Each resource's newest deployment and how many it has, down the (resource, created_at)
# index (no sort, however long the histories); the ports of current releases.
_counted = aliased(Deployment)
_LATEST = select(
    Resource.id.label("resource_id"), Deployment.id, Deployment.status, Deployment.created_at,
    select(func.count()).where(_counted.resource_id == Resource.id)
    .scalar_subquery().label("total"),
).join(Deployment, Deployment.id == newest_deployment_of(Resource.id)).where(
    Resource.id.in_(bindparam("ids", expanding=True)))
_PORTS = select(Deployment.id, Deployment.host_port).where(
    Deployment.id.in_(bindparam("ids", expanding=True)))


def summaries(ctx: Context, rows: list[Resource]) -> list[ResourceSummary]:
    """Resources with their deployment count, latest deployment and runtime state, in two
    queries whatever their number (a list page of hundreds stays fast)."""
    latest = {row.resource_id: row for row in ctx.db.execute(
        _LATEST, {"ids": [r.id for r in rows]})}
    counts = {rid: row.total for rid, row in latest.items()}
    ports = dict(ctx.db.execute(_PORTS, {"ids": [
        r.current_deployment_id for r in rows if r.current_deployment_id]}).all())
    return [ResourceSummary(
        id=r.id, project_id=r.project_id, environment_id=r.environment_id,
        destination_id=r.server_id, name=r.name, slug=r.slug, kind=r.kind,
        description=r.description, created_at=r.created_at, services=[Service(name=r.slug)],
        network_profile=NetworkProfile.model_validate(r.network_profile),
        access_profile=AccessProfile.model_validate(r.access_profile),
        deployment_count=counts.get(r.id, 0),
        last_deployment_id=latest[r.id].id if r.id in latest else None,
        last_deployment_status=latest[r.id].status if r.id in latest else None,
        last_deployment_at=latest[r.id].created_at if r.id in latest else None,
        current_deployment_id=r.current_deployment_id, lifecycle_status=r.lifecycle_status,
        runtime_state="not-deployed" if not r.current_deployment_id
        else "running" if ports.get(r.current_deployment_id) else "stopped",
    ) for r in rows]


class ResourceFilter(Schema):
    project_id: Id | None = None
    environment_id: Id | None = None


def _filtered(ctx: Context, data: ResourceFilter):
    query = select(Resource).where(Resource.organization_id == ctx.org_id)
    if data.project_id:
        query = query.where(Resource.project_id == data.project_id)
    if data.environment_id:
        query = query.where(Resource.environment_id == data.environment_id)
    return query


@operation("resources.count")
def count_resources(ctx: Context, data: ResourceFilter) -> CountOut:
    """How many resources the organization (or a project or environment) has."""
    return CountOut(count=ctx.db.scalar(
        select(func.count()).select_from(_filtered(ctx, data).subquery())) or 0)


class ResourceListIn(ResourceFilter):
    limit: int = Field(50, gt=0, le=500)


class ResourceList(Schema):
    items: list[ResourceSummary]


@operation("resources.list")
def list_resources(ctx: Context, data: ResourceListIn) -> ResourceList:
    """Resources by name."""
    rows = ctx.db.scalars(_filtered(ctx, data).order_by(Resource.name, Resource.id)
                          .options(load_only(*SUMMARIZED)).limit(data.limit))
    return ResourceList(items=summaries(ctx, list(rows)))


class AttachmentOut(Schema):
    id: str
    storage_volume_id: str
    storage_volume_name: str
    storage_volume_kind: str
    destination_path: str
    mount_mode: str
    attached_at: Timestamp


class LatestDeployment(Schema):
    id: str
    status: str
    created_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None
    server_id: str
    destination_id: str


class Route(Schema):
    url: str
    hostname: str
    scheme: str = "http"
    provider_key: str = "local-docker"
    deployment_id: str | None = None
    deployment_status: str | None = None
    path_prefix: str = "/"
    proxy_kind: str = "none"
    target_port: int | None = None
    updated_at: Timestamp | None = None


class AccessSummary(Schema):
    latest_generated_access_route: Route | None = None
    proxy_route_status: str


class Lifecycle(Schema):
    status: str
    archived_at: Timestamp | None
    deleted_at: Timestamp | None = None


class ResourceShow(Schema):
    schema_version: str = "resources.show/v1"
    resource: ResourceSummary
    source: SourceProfile | None
    runtime_profile: RuntimeProfile
    network_profile: NetworkProfile
    access_profile: AccessProfile
    health_policy: HealthPolicy | None
    storage_attachments: list[AttachmentOut]
    latest_deployment: LatestDeployment | None = None
    access_summary: AccessSummary | None = None
    lifecycle: Lifecycle
    diagnostics: list[dict[str, Any]] = Field(default_factory=list)
    generated_at: Timestamp


class ResourceRef(Schema):
    resource_id: Id


class ResourceShowIn(ResourceRef):
    include_latest_deployment: bool = False
    include_access_summary: bool = False


def attachments(ctx: Context, resource_id: str) -> list[tuple[StorageAttachment, StorageVolume]]:
    return [(a, v) for a, v in ctx.db.execute(
        select(StorageAttachment, StorageVolume).join(StorageVolume)
        .where(StorageAttachment.resource_id == resource_id)
        .order_by(StorageAttachment.destination_path)).all()]


@contextmanager
def preloaded(ctx: Context, resource_ids: Iterable[str]) -> Iterator[None]:
    """The resources, and (with the edge proxy) their environments and projects, in three
    queries, kept in the session while the block runs: each row of a list then finds its own
    there (the session holds objects only while something refers to them). Only what `ROUTED`
    names is loaded."""
    resources = ctx.db.scalars(select(Resource).where(Resource.id.in_(set(resource_ids)))
                               .options(load_only(*ROUTED))).all()
    envs: Sequence[Environment] = []
    projects: Sequence[Project] = []
    if ctx.settings.edge_enabled:  # what generated hostnames are made of
        envs = ctx.db.scalars(select(Environment).where(
            Environment.id.in_({r.environment_id for r in resources}))
            .options(load_only(Environment.id, Environment.name))).all()
        projects = ctx.db.scalars(select(Project).where(
            Project.id.in_({r.project_id for r in resources}))
            .options(load_only(Project.id, Project.slug))).all()
    try:
        yield
    finally:
        del resources, envs, projects


def generated_url(ctx: Context, r: Resource,
                  policy: tuple[str, str] | None = None) -> tuple[str, str] | None:
    """The resource's generated (hostname, URL) through the edge proxy, if it has one."""
    host = generated_host(ctx.db, ctx.settings, r, policy=policy) \
        if ctx.settings.edge_enabled else None
    tls = ctx.settings.edge_generated_tls != "disabled"
    return (host, public_url(ctx.settings, host, tls, on_remote_server(ctx.db, r.server_id))
            + "/") if host else None


def answers(d: Deployment) -> bool:
    """Whether a release can be reached: on its server's loopback port, or as a swarm's
    service (through the edge proxy only)."""
    return d.host_port is not None or (d.container_id or "").startswith(SERVICE)


def current_route(ctx: Context, r: Resource) -> Route | None:
    """Where the current release answers: its generated URL through the edge proxy, or its
    loopback port when there is no edge proxy."""
    current = ctx.db.get(Deployment, r.current_deployment_id) if r.current_deployment_id else None
    if current is None or not answers(current):
        return None
    generated = generated_url(ctx, r)
    if generated:
        host, url = generated
        return Route(url=url, hostname=host, deployment_id=current.id, proxy_kind="caddy",
                     scheme=url.split(":", 1)[0],
                     deployment_status=current.status, target_port=current.host_port,
                     path_prefix=AccessProfile.model_validate(r.access_profile).path_prefix,
                     updated_at=current.finished_at)
    if current.host_port is None:  # a swarm's service, with no edge proxy to reach it
        return None
    return Route(url=f"http://127.0.0.1:{current.host_port}/", hostname="127.0.0.1",
                 deployment_id=current.id, deployment_status=current.status,
                 target_port=current.host_port, updated_at=current.finished_at)


class ResourceUrlsIn(Schema):
    project_id: Id


class ResourceUrls(Schema):
    items: dict[str, list[str]] = Field(
        description="resource id: its public URLs, the generated one first")


@operation("resources.urls")
def resource_urls(ctx: Context, data: ResourceUrlsIn) -> ResourceUrls:
    """Where each resource of a project answers publicly: its generated URL while a release
    serves, then its custom domains. One pass for a whole project (its list page)."""
    _project = get_project(ctx, data.project_id)  # held in the session for every resource
    urls: dict[str, list[str]] = {}
    policies: dict[str, tuple[str, str]] = {}  # one look-up per server
    resources = ctx.db.scalars(select(Resource).where(
        Resource.organization_id == ctx.org_id, Resource.project_id == data.project_id)).all()
    _held = ctx.db.scalars(select(Environment).where(  # held: each resource finds its own
        Environment.project_id == data.project_id)).all()
    # Without an edge proxy, a release answers on its loopback port.
    ports = {} if ctx.settings.edge_enabled else dict(ctx.db.execute(
        select(Deployment.id, Deployment.host_port).where(Deployment.id.in_(
            [r.current_deployment_id for r in resources if r.current_deployment_id]))).all())
    for r in resources:
        policy = policies.get(r.server_id) or routing.access_policy(ctx.db, r.server_id)
        policies[r.server_id] = policy
        found = generated_url(ctx, r, policy) if r.current_deployment_id else None
        port = ports.get(r.current_deployment_id or "")
        urls[r.id] = [found[1]] if found else [f"http://127.0.0.1:{port}/"] if port else []
    for b in ctx.db.scalars(select(DomainBinding).where(
            DomainBinding.organization_id == ctx.org_id,
            DomainBinding.project_id == data.project_id,
            DomainBinding.resource_id.is_not(None)).order_by(DomainBinding.domain_name)):
        urls.setdefault(b.resource_id, []).append(  # type: ignore[arg-type]  # the query keeps bindings with a resource
            public_url(ctx.settings, b.domain_name, b.tls_mode != "disabled",
                       on_remote_server(ctx.db, b.server_id)) + b.path_prefix)
    return ResourceUrls(items=urls)


@operation("resources.show")
def show_resource(ctx: Context, data: ResourceShowIn) -> ResourceShow:
    """One resource with its profiles; optionally its latest deployment and where it answers."""
    r = get_resource(ctx, data.resource_id)
    latest = _latest(ctx, r.id) if data.include_latest_deployment else None
    return ResourceShow(
        resource=summary(ctx, r),
        source=SourceProfile.model_validate(r.source) if r.source else None,
        runtime_profile=RuntimeProfile.model_validate(r.runtime_profile),
        network_profile=NetworkProfile.model_validate(r.network_profile),
        access_profile=AccessProfile.model_validate(r.access_profile),
        health_policy=HealthPolicy.model_validate(r.health_policy) if r.health_policy else None,
        storage_attachments=[
            AttachmentOut(id=a.id, storage_volume_id=v.id, storage_volume_name=v.name,
                          storage_volume_kind=v.kind, destination_path=a.destination_path,
                          mount_mode=a.mount_mode, attached_at=a.attached_at)
            for a, v in attachments(ctx, r.id)],
        latest_deployment=LatestDeployment(
            id=latest.id, status=latest.status, created_at=latest.created_at,
            started_at=latest.started_at, finished_at=latest.finished_at,
            server_id=latest.server_id, destination_id=latest.server_id) if latest else None,
        access_summary=AccessSummary(
            latest_generated_access_route=current_route(ctx, r),
            proxy_route_status="configured" if generated_url(ctx, r) and r.current_deployment_id
            else "not-configured") if data.include_access_summary else None,
        lifecycle=Lifecycle(status=r.lifecycle_status, archived_at=r.archived_at),
        generated_at=utcnow(),
    )


# -- lifecycle ----------------------------------------------------------------------------------


class ResourceCreate(Schema):
    project_id: Id
    environment_id: Id
    name: Name
    kind: Literal["application", "service", "worker", "static-site"] = "application"
    description: str | None = Field(None, max_length=2000)
    destination_id: Id | None = None
    server_id: Id | None = None
    source: SourceProfile | None = None
    runtime_profile: RuntimeProfile = Field(default_factory=RuntimeProfile)
    network_profile: NetworkProfile = Field(default_factory=NetworkProfile)
    health_policy: HealthPolicy | None = None
    access_profile: AccessProfile = Field(default_factory=AccessProfile)


def check_repository(ctx: Context, locator: str) -> None:
    """Refuses (400) a repository the operator's git policy does not let anyone name: a
    folder of the server outside `git_local_folders`. (A remote's addresses are checked each
    time it is fetched.)"""
    if source_checkout.parse_remote(locator).scheme == "local" and \
            not ctx.settings.git_policy.admits_folder(locator):
        raise Invalid("Validation failed", details=[{
            "field": "source.locator", "message": "folders of the server are not fetched: "
            "give the repository's https://, ssh:// or git:// URL"}])


def source_of(ctx: Context, r: Resource, source: SourceProfile) -> dict[str, Any]:
    """`source` as the resource keeps it, once it is known to name nothing it may not: a
    repository the git policy allows, or an upload of this very resource."""
    if source.kind == "git":
        check_repository(ctx, source.locator)  # type: ignore[arg-type]  # the profile validator requires a git locator
    if source.kind == "archive":
        archive_path(ctx, r, source.locator)  # type: ignore[arg-type]  # the profile validator requires an archive locator
    return stored(source)


@operation("resources.create", role="developer", audit="resource.created")
def create_resource(ctx: Context, data: ResourceCreate) -> IdOut:
    """Creates a resource in an environment; its slug is unique in the environment."""
    env = get_environment(ctx, data.environment_id, mutable=True)
    if env.project_id != data.project_id:
        raise Invalid("the environment does not belong to that project", code="context_mismatch")
    server_id = data.server_id or data.destination_id
    server = get_server(ctx, server_id) if server_id else default_server(ctx)
    if server.lifecycle_status != LifecycleStatus.ACTIVE:
        raise Conflict("the server is deactivated: it takes no new work",
                       code="server_inactive")
    _check_placement(server.target_kind, data.runtime_profile)
    slug = slugify(data.name)
    if ctx.db.scalar(select(Resource.id).where(Resource.environment_id == env.id,
                                               Resource.slug == slug)):
        raise Conflict(f"a resource named {slug!r} already exists in this environment",
                       code="resource_exists")
    resource = Resource(
        id=new_id("res"), organization_id=ctx.org_id, project_id=env.project_id,
        environment_id=env.id, server_id=server.id, name=data.name, slug=slug, kind=data.kind,
        description=data.description,
        runtime_profile=stored(data.runtime_profile),
        network_profile=stored(data.network_profile),
        health_policy=stored(data.health_policy) if data.health_policy else None,
        access_profile=stored(data.access_profile),
    )
    resource.source = source_of(ctx, resource, data.source) if data.source else None
    ctx.db.add(resource)
    ctx.db.flush()
    ctx.audit(resource.id, name=resource.name, environmentId=env.id)
    return IdOut(id=resource.id)


class ResourceArchive(ResourceRef):
    reason: str | None = Field(None, max_length=500)


@operation("resources.archive", role="admin", audit="resource.archived")
def archive_resource(ctx: Context, data: ResourceArchive) -> IdOut:
    """Archives a resource: no new deployments; what runs keeps running."""
    r = get_resource(ctx, data.resource_id, mutable=True)
    r.lifecycle_status, r.archived_at = LifecycleStatus.ARCHIVED, utcnow()
    ctx.audit(r.id, reason=data.reason)
    return IdOut(id=r.id)


class ResourceConfirmation(Schema):
    resource_slug: str = Field(min_length=1, max_length=200)


class ResourceDelete(ResourceRef):
    confirmation: ResourceConfirmation


@operation("resources.delete", role="admin", audit="resource.deleted")
def delete_resource(ctx: Context, data: ResourceDelete) -> IdOut:
    """Deletes a resource, its deployments and its containers (never its volumes); needs the
    slug as confirmation."""
    r = get_resource(ctx, data.resource_id)
    if data.confirmation.resource_slug != r.slug:
        raise Invalid("confirmation.resourceSlug does not match", code="confirmation_mismatch")
    remove_resources(ctx, [r])
    return IdOut(id=r.id)


# -- profiles -----------------------------------------------------------------------------------


class SourceIn(ResourceRef, Idempotent):
    source: SourceProfile


def _configure(ctx: Context, resource_id: str, column: str, profile: BaseModel | None,
               **audit: Any) -> IdOut:
    """Replaces one profile of an active resource (None: back to the default)."""
    r = get_resource(ctx, resource_id, mutable=True)
    if isinstance(profile, SourceProfile):
        r.source = source_of(ctx, r, profile)
    else:
        setattr(r, column, stored(profile) if profile is not None else None)
    ctx.audit(r.id, **audit)
    return IdOut(id=r.id)


@operation("resources.configure-source", role="developer", audit="resource.source-configured")
def configure_source(ctx: Context, data: SourceIn) -> IdOut:
    """Sets where the resource's code or image comes from: an image, a git repository, or an
    archive this resource uploaded (by its `archiveId`)."""
    return _configure(ctx, data.resource_id, "source", data.source, kind=data.source.kind,
                      image=data.source.image)


class RuntimeIn(ResourceRef):
    runtime_profile: RuntimeProfile


@operation("resources.configure-runtime", role="developer", audit="resource.runtime-configured")
def configure_runtime(ctx: Context, data: RuntimeIn) -> IdOut:
    """Sets how the resource is built and started (commands, limits, restart policy,
    replicas on a Docker Swarm)."""
    r = get_resource(ctx, data.resource_id, mutable=True)
    _check_placement(get_server(ctx, r.server_id).target_kind, data.runtime_profile,
                     bool(attachments(ctx, r.id)))
    return _configure(ctx, data.resource_id, "runtime_profile", data.runtime_profile)


def _check_placement(target_kind: str, profile: RuntimeProfile, volumes: bool = False) -> None:
    """Replicas and placement constraints only on a cluster; more than one replica with a
    volume only when pinned to a node (a volume is local to its node)."""
    cluster = target_kind == "orchestrator-cluster"
    if profile.replicas > 1 and not cluster:
        raise Conflict("a server runs one container per resource: replicas need a Docker "
                       "Swarm server", code="replicas_need_cluster")
    if profile.placement_constraints and not cluster:
        raise Conflict("placement constraints need a Docker Swarm server",
                       code="placement_needs_cluster")
    if profile.replicas > 1 and volumes and not profile.pinned:
        raise Conflict("a resource with a volume runs one replica, unless it is pinned to a "
                       "node (`node.hostname==NAME`): the volume is local to a node",
                       code="volume_needs_one_replica")


class ScaleIn(ResourceRef):
    replicas: int = Field(ge=1, le=100)


class Scaled(Schema):
    resource_id: str
    replicas: int
    runtime_control: RuntimeControl | None  # None: nothing runs yet; the next release has them


@operation("resources.scale", role="developer", audit="resource.scaled")
def scale(ctx: Context, data: ScaleIn) -> Scaled:
    """Sets the resource's replicas on its Docker Swarm; its service follows at once."""
    r = get_resource(ctx, data.resource_id, mutable=True)
    profile = RuntimeProfile.model_validate(r.runtime_profile or {}).model_copy(
        update={"replicas": data.replicas})
    _check_placement(get_server(ctx, r.server_id).target_kind, profile,
                     bool(attachments(ctx, r.id)))
    r.runtime_profile = stored(profile)
    control = None
    if r.current_deployment_id is not None:
        control = control_runtime(ctx, data, "scale", replicas=data.replicas)
    else:
        ctx.audit(r.id, replicas=data.replicas)
    return Scaled(resource_id=r.id, replicas=data.replicas, runtime_control=control)


class NetworkIn(ResourceRef):
    network_profile: NetworkProfile


@operation("resources.configure-network", role="developer", audit="resource.network-configured")
def configure_network(ctx: Context, data: NetworkIn) -> IdOut:
    """Sets the port the resource listens on and how it is exposed."""
    return _configure(ctx, data.resource_id, "network_profile", data.network_profile,
                      internalPort=data.network_profile.internal_port)


class AccessIn(ResourceRef):
    access_profile: AccessProfile


@operation("resources.configure-access", role="developer", audit="resource.access-configured")
def configure_access(ctx: Context, data: AccessIn) -> IdOut:
    """Sets whether the resource gets a generated access route, and its path prefix; the edge
    proxy follows at once."""
    done = _configure(ctx, data.resource_id, "access_profile", data.access_profile)
    if ctx.settings.edge_enabled:
        r = get_resource(ctx, data.resource_id)
        ctx.enqueue("route-realization", "resources.configure-access", resource_id=r.id,
                    project_id=r.project_id, server_id=r.server_id)
    return done


class HealthIn(ResourceRef):
    health_check: HealthPolicy


@operation("resources.configure-health", role="developer", audit="resource.health-configured")
def configure_health(ctx: Context, data: HealthIn) -> IdOut:
    """Sets the checks a new release must pass before it takes over."""
    return _configure(ctx, data.resource_id, "health_policy", data.health_check,
                      path=data.health_check.http.path)


@operation("resources.reset-health", role="developer", audit="resource.health-reset")
def reset_health(ctx: Context, data: ResourceRef) -> IdOut:
    """Goes back to the default health policy (HTTP GET / answering 2xx or 3xx)."""
    return _configure(ctx, data.resource_id, "health_policy", None)


# -- variables and secrets ----------------------------------------------------------------------


class ResourceVariableSet(VariableIn):
    resource_id: Id


def _secret_role(data: VariableIn) -> Role:
    return "admin" if data.kind == "secret" else "developer"


@operation("resources.variables.set", role="developer", audit="resource.variable-set",
           role_for=_secret_role)
def set_resource_variable(ctx: Context, data: ResourceVariableSet) -> None:
    """Sets a resource-level variable, overriding the environment's for this resource."""
    r = get_resource(ctx, data.resource_id, mutable=True)
    variables.put(ctx, ResourceVariable, r.id, data, "resource")
    ctx.audit(r.id, key=data.key, exposure=data.exposure, kind=data.kind)


class ResourceVariableDelete(ResourceRef):
    key: str = VariableKey
    exposure: Exposure = "runtime"


@operation("resources.variables.delete", role="developer", audit="resource.variable-deleted")
def delete_resource_variable(ctx: Context, data: ResourceVariableDelete) -> None:
    """Removes a resource-level variable (the environment's applies again)."""
    r = get_resource(ctx, data.resource_id, mutable=True)
    variables.remove(ctx, ResourceVariable, r.id, data.key, data.exposure)
    ctx.audit(r.id, key=data.key, exposure=data.exposure)


class ImportIn(ResourceRef):
    content: str = Field(max_length=1_000_000)
    exposure: Exposure = "runtime"
    secret_keys: list[str] = Field(default_factory=list)


class Imported(Schema):
    key: str
    value: str
    exposure: Exposure
    kind: str
    is_secret: bool
    action: str
    source_line: int


class Duplicate(Schema):
    key: str
    exposure: Exposure
    first_line: int
    last_line: int
    rule: str = "last-wins"


class ImportOut(Schema):
    resource_id: str
    imported_entries: list[Imported]
    duplicate_overrides: list[Duplicate]
    existing_overrides: list[dict[str, Any]]


def parse_dotenv(content: str) -> list[tuple[int, str, str]]:
    """`.env` lines as (line, key, value): `export` prefixes, comments, quotes and `\\n`."""
    entries = []
    for number, raw in enumerate(content.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise Invalid("Validation failed", details=[
                {"field": "content", "message": f"line {number}: expected KEY=VALUE"}])
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            quote, value = value[0], value[1:-1]
            if quote == '"':
                value = value.replace("\\n", "\n").replace('\\"', '"')
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        entries.append((number, key, value))
    return entries


@operation("resources.variables.import", role="developer", audit="resource.variables-imported",
           role_for=lambda data: "admin" if data.secret_keys else "developer")
def import_variables(ctx: Context, data: ImportIn) -> ImportOut:
    """Imports pasted `.env` content; keys listed in `secretKeys` become secrets."""
    r = get_resource(ctx, data.resource_id, mutable=True)
    parsed = parse_dotenv(data.content)
    first: dict[str, int] = {}
    last: dict[str, tuple[int, str]] = {}
    for number, key, value in parsed:
        first.setdefault(key, number)
        last[key] = (number, value)
    secret = set(data.secret_keys)
    imported = []
    for key, (number, value) in last.items():
        kind = "secret" if key in secret else "plain-config"
        try:
            entry = VariableIn(key=key, value=value, kind=kind, exposure=data.exposure)
        except ValidationError as exc:
            raise Invalid("Validation failed", details=[{"field": "content", "message":
                          f"line {number}: {variables.problem(exc, key)}"}]) from None
        action = variables.put(ctx, ResourceVariable, r.id, entry, "resource")
        imported.append(Imported(key=key, value="****" if kind == "secret" else value,
                                 exposure=data.exposure, kind=kind, is_secret=kind == "secret",
                                 action=action, source_line=number))
    duplicates = [Duplicate(key=k, exposure=data.exposure, first_line=first[k],
                            last_line=last[k][0]) for k in last if first[k] != last[k][0]]
    ctx.audit(r.id, keys=sorted(last), exposure=data.exposure)
    return ImportOut(resource_id=r.id, imported_entries=imported, duplicate_overrides=duplicates,
                     existing_overrides=[])


class SecretEntry(Entry):
    resource_id: str


class SecretList(Schema):
    schema_version: str = "resources.secrets.list/v1"
    resource_id: str
    items: list[SecretEntry]
    generated_at: Timestamp


class SecretsIn(ResourceRef):
    exposure: Exposure = "runtime"


def _secret_entries(ctx: Context, r: Resource, exposure: str) -> list[SecretEntry]:
    return [SecretEntry(**variables.entry(v).model_dump(), resource_id=r.id)
            for v in variables.listed(ctx, ResourceVariable, r.id)
            if v.kind == "secret" and v.exposure == exposure]


@operation("resources.secrets.list")
def list_secrets(ctx: Context, data: SecretsIn) -> SecretList:
    """The resource's secrets, masked."""
    r = get_resource(ctx, data.resource_id)
    return SecretList(resource_id=r.id, items=_secret_entries(ctx, r, data.exposure),
                      generated_at=utcnow())


class SecretCreate(ResourceRef):
    key: str = VariableKey
    value: VariableValue
    exposure: Exposure = "runtime"


class SecretRef(Schema):
    resource_id: str
    key: str
    exposure: Exposure


@operation("resources.secrets.create", role="admin", audit="resource.secret-created")
def create_secret(ctx: Context, data: SecretCreate) -> SecretRef:
    """Creates a resource secret; 409 if it exists (rotate it instead)."""
    r = get_resource(ctx, data.resource_id, mutable=True)
    if variables.find(ctx, ResourceVariable, r.id, data.key, data.exposure):
        raise Conflict(f"{data.key} already exists; rotate it instead", code="secret_exists")
    variables.put(ctx, ResourceVariable, r.id, VariableIn(
        key=data.key, value=data.value, kind="secret", exposure=data.exposure), "resource")
    ctx.audit(r.id, key=data.key, exposure=data.exposure)
    return SecretRef(resource_id=r.id, key=data.key, exposure=data.exposure)


class SecretKeyIn(SecretsIn):
    key: str = VariableKey


class SecretShow(Schema):
    schema_version: str = "resources.secrets.show/v1"
    secret: SecretEntry
    generated_at: Timestamp


def _existing_secret(ctx: Context, r: Resource, key: str, exposure: str) -> ResourceVariable:
    var = variables.find(ctx, ResourceVariable, r.id, key, exposure)
    if var is None or var.kind != "secret":
        raise NotFound(f"secret {key} ({exposure}) not found", code="secret_not_found")
    return var  # type: ignore[return-value]  # found in the ResourceVariable model


@operation("resources.secrets.show")
def show_secret(ctx: Context, data: SecretKeyIn) -> SecretShow:
    """One resource secret, masked."""
    r = get_resource(ctx, data.resource_id)
    var = _existing_secret(ctx, r, data.key, data.exposure)
    return SecretShow(secret=SecretEntry(**variables.entry(var).model_dump(), resource_id=r.id),
                      generated_at=utcnow())


class SecretRotate(SecretKeyIn):
    value: VariableValue


@operation("resources.secrets.rotate", role="admin", audit="resource.secret-rotated")
def rotate_secret(ctx: Context, data: SecretRotate) -> SecretRef:
    """Replaces a secret's value; running releases keep the old one until the next deployment."""
    r = get_resource(ctx, data.resource_id, mutable=True)
    _existing_secret(ctx, r, data.key, data.exposure)
    variables.put(ctx, ResourceVariable, r.id, VariableIn(
        key=data.key, value=data.value, kind="secret", exposure=data.exposure), "resource")
    ctx.audit(r.id, key=data.key, exposure=data.exposure)
    return SecretRef(resource_id=r.id, key=data.key, exposure=data.exposure)


@operation("resources.secrets.delete", role="admin", audit="resource.secret-deleted")
def delete_secret(ctx: Context, data: SecretKeyIn) -> SecretRef:
    """Deletes a resource secret."""
    r = get_resource(ctx, data.resource_id, mutable=True)
    ctx.db.delete(_existing_secret(ctx, r, data.key, data.exposure))
    ctx.audit(r.id, key=data.key, exposure=data.exposure)
    return SecretRef(resource_id=r.id, key=data.key, exposure=data.exposure)


class EffectiveConfig(Schema):
    schema_version: str = "resources.effective-config/v1"
    resource_id: str
    environment_id: str
    owned_entries: list[Entry]
    effective_entries: list[Entry]
    overrides: list[dict[str, Any]]
    precedence: list[str]
    generated_at: Timestamp


@operation("resources.effective-config")
def effective_config(ctx: Context, data: ResourceRef) -> EffectiveConfig:
    """The variables a new deployment of the resource would get, masked."""
    r = get_resource(ctx, data.resource_id)
    owned = variables.listed(ctx, ResourceVariable, r.id)
    env_keys = {(v.key, v.exposure) for v in variables.effective(ctx, r.environment_id)}
    return EffectiveConfig(
        resource_id=r.id, environment_id=r.environment_id,
        owned_entries=[variables.entry(v) for v in owned],
        effective_entries=[variables.entry(v) for v in variables.effective(
            ctx, r.environment_id, r.id)],
        overrides=[{"key": v.key, "exposure": v.exposure, "overriddenScope": "environment",
                    "winningScope": "resource"} for v in owned if (v.key, v.exposure) in env_keys],
        precedence=variables.PRECEDENCE, generated_at=utcnow())


# -- storage ------------------------------------------------------------------------------------


class AttachIn(ResourceRef):
    storage_volume_id: Id
    destination_path: str = Field(min_length=2, max_length=500, pattern=r"^/[^\x00]*$")
    mount_mode: Literal["read-write", "read-only"] = "read-write"

    @field_validator("destination_path")
    @classmethod
    def _not_root(cls, path: str) -> str:
        if path.rstrip("/") in ("", "/proc", "/sys", "/dev") or ".." in path.split("/"):
            raise ValueError("choose a directory of the application, not a system path")
        return path.rstrip("/")


@operation("resources.storage.attach", role="developer", audit="resource.storage-attached")
def attach_storage(ctx: Context, data: AttachIn) -> IdOut:
    """Mounts a volume of the same environment into the resource (from its next deployment)."""
    r = get_resource(ctx, data.resource_id, mutable=True)
    volume = ctx.db.get(StorageVolume, data.storage_volume_id)
    if volume is None or volume.organization_id != ctx.org_id:
        raise NotFound("storage volume not found", code="storage_volume_not_found")
    _check_placement(get_server(ctx, r.server_id).target_kind,
                     RuntimeProfile.model_validate(r.runtime_profile or {}), volumes=True)
    if volume.environment_id != r.environment_id:
        raise Conflict("the volume belongs to another environment", code="context_mismatch")
    if ctx.db.scalar(select(StorageAttachment.id).where(
            StorageAttachment.resource_id == r.id,
            StorageAttachment.destination_path == data.destination_path)):
        raise Conflict(f"something is already mounted at {data.destination_path}",
                       code="attachment_exists")
    attachment = StorageAttachment(id=new_id("att"), resource_id=r.id, storage_volume_id=volume.id,
                                   destination_path=data.destination_path,
                                   mount_mode=data.mount_mode)
    ctx.db.add(attachment)
    ctx.audit(r.id, storageVolumeId=volume.id, destinationPath=data.destination_path)
    return IdOut(id=attachment.id)


class DetachIn(ResourceRef):
    attachment_id: Id


@operation("resources.storage.detach", role="developer", audit="resource.storage-detached")
def detach_storage(ctx: Context, data: DetachIn) -> IdOut:
    """Unmounts a volume (from the next deployment); the volume and its data stay."""
    r = get_resource(ctx, data.resource_id, mutable=True)
    attachment = ctx.db.get(StorageAttachment, data.attachment_id)
    if attachment is None or attachment.resource_id != r.id:
        raise NotFound("storage attachment not found")
    ctx.db.delete(attachment)
    ctx.audit(r.id, attachmentId=attachment.id)
    return IdOut(id=attachment.id)


# -- runtime ------------------------------------------------------------------------------------


class Phase(Schema):
    phase: str
    status: str
    error_code: str | None = None


class RuntimeControl(Schema):
    runtime_control_attempt_id: str
    operation: str
    status: str
    started_at: Timestamp | None
    completed_at: Timestamp | None
    runtime_state: str
    blocked_reason: str | None = None
    error_code: str | None = None
    phases: list[Phase]


def control_runtime(ctx: Context, data: ResourceRef, action: str,
                    replicas: int | None = None) -> RuntimeControl:
    r = get_resource(ctx, data.resource_id)
    if r.current_deployment_id is None:
        raise Conflict("the resource has no running release to control", code="no_runtime")
    work = ctx.enqueue("runtime-maintenance", f"resources.runtime.{action}", resource_id=r.id,
                       server_id=r.server_id, project_id=r.project_id,
                       deployment_id=r.current_deployment_id,
                       payload=stored(MaintenancePayload(action=action, replicas=replicas)))
    ctx.db.flush()
    extra: dict[str, Any] = {"replicas": replicas} if replicas else {}
    ctx.audit(r.id, action=action, workId=work.id, **extra)
    return control_status(work)


def control_status(work: OperatorWork) -> RuntimeControl:
    action = MaintenancePayload.model_validate(work.payload).action
    status = {"pending": "accepted", "retry-scheduled": "accepted"}.get(work.status, work.status)
    state = {"stop": "stopped", "start": "running", "restart": "running",
             "scale": "running"}.get(action, "unknown")
    if work.status not in ("succeeded",):
        state = "stopping" if action == "stop" else "starting"
    return RuntimeControl(
        runtime_control_attempt_id=work.id, operation=action, status=status,
        started_at=work.started_at, completed_at=work.finished_at, runtime_state=state,
        error_code=work.error_code,
        phases=[Phase(phase=action, status=work.status, error_code=work.error_code)])


@operation("resources.runtime.stop", role="developer", audit="resource.runtime-stop-requested")
def stop_runtime(ctx: Context, data: ResourceRef) -> RuntimeControl:
    """Stops the current release's container (a deployment starts it again)."""
    return control_runtime(ctx, data, "stop")


@operation("resources.runtime.start", role="developer", audit="resource.runtime-start-requested")
def start_runtime(ctx: Context, data: ResourceRef) -> RuntimeControl:
    """Starts the current release's container again."""
    return control_runtime(ctx, data, "start")


@operation("resources.runtime.restart", role="developer",
           audit="resource.runtime-restart-requested")
def restart_runtime(ctx: Context, data: ResourceRef) -> RuntimeControl:
    """Restarts the current release's container."""
    return control_runtime(ctx, data, "restart")


class RuntimeLogsIn(ResourceRef):
    deployment_id: Id | None = None
    service_name: str | None = None
    tail_lines: int = Field(100, ge=0, le=1000)
    since: datetime | None = None
    cursor: str | None = None
    follow: bool = False
    # Lines about launchbay's own health probes (they name its agent) are left out.
    include_probes: bool = False


class RuntimeLogLine(Schema):
    resource_id: str
    deployment_id: str
    service_name: str
    runtime_kind: str = "docker-container"
    runtime_instance_id: str
    stream: str
    timestamp: Timestamp
    sequence: int
    cursor: str
    message: str
    masked: bool = False


class RuntimeLogs(Schema):
    resource_id: str
    deployment_id: str | None
    logs: list[RuntimeLogLine]


class RuntimeTarget(Schema):
    """What a log follower needs: resolved and authorized by an operation, used by a face."""

    resource_id: str
    deployment_id: str
    server_id: str
    container_id: str
    service_name: str
    # The secret values the release was given: masked in every line read (never sent).
    hidden: list[str] = Field(default_factory=list, exclude=True, repr=False)
    include_probes: bool = Field(False, exclude=True)

    def masked(self, line: LogLine) -> LogLine:
        message, masked = mask(line.message, self.hidden)
        return replace(line, message=message, masked=True) if masked else line

    def shown(self, line: LogLine) -> bool:
        """False for a line about launchbay's own health probe (the app logged its agent)."""
        return self.include_probes or PROBE_AGENT not in line.message


def runtime_target(ctx: Context, data: RuntimeLogsIn) -> RuntimeTarget | None:
    r = get_resource(ctx, data.resource_id)
    deployment_id = data.deployment_id or r.current_deployment_id
    d = ctx.db.get(Deployment, deployment_id) if deployment_id else None
    if d is None or d.resource_id != r.id or d.container_id is None:
        return None
    web = ReleasePlan.model_validate(d.plan).service_name or r.slug
    hidden = secret_values(ctx, d)
    if data.service_name in (None, web, r.slug):
        return RuntimeTarget(resource_id=r.id, deployment_id=d.id, server_id=d.server_id,
                             container_id=d.container_id, service_name=web, hidden=hidden,
                             include_probes=data.include_probes)
    # Another service of a compose stack.
    found = ctx.runtime.of(d.server_id).containers(**{
        "launchbay.deployment": d.id, "launchbay.service": data.service_name})
    if not found:
        raise NotFound(f"the release has no service {data.service_name}",
                       code="service_not_found")
    return RuntimeTarget(resource_id=r.id, deployment_id=d.id, server_id=d.server_id,
                         container_id=found[0].id, service_name=data.service_name,
                         hidden=hidden, include_probes=data.include_probes)


def secret_values(ctx: Context, d: Deployment) -> list[str]:
    """The secret values a release was given (its snapshot's), and the resource's and
    environment's current ones (a rotated secret the app may still print)."""
    snapshot = [ctx.secrets.decrypt(v.value) for v in EnvironmentSnapshot.model_validate(
        d.environment_snapshot).variables if v.kind == "secret"]
    current = [variables.plaintext(ctx, v) for v in variables.effective(
        ctx, d.environment_id, d.resource_id) if v.kind == "secret"]
    return sorted(set(snapshot + current))


def log_line(target: RuntimeTarget, n: int, line: LogLine) -> RuntimeLogLine:
    """A line of the release's output as the API shows it, its secrets masked."""
    line = target.masked(line)
    return RuntimeLogLine(
        resource_id=target.resource_id, deployment_id=target.deployment_id,
        service_name=target.service_name, runtime_instance_id=target.container_id[:12],
        stream=line.stream, timestamp=line.timestamp, sequence=n,
        cursor=line.timestamp.isoformat(), message=line.message, masked=line.masked)


@operation("resources.runtime-logs")
def runtime_logs(ctx: Context, data: RuntimeLogsIn) -> RuntimeLogs:
    """The last lines the resource's current (or a given) release wrote."""
    target = runtime_target(ctx, data)
    if target is None:
        return RuntimeLogs(resource_id=data.resource_id, deployment_id=None, logs=[])
    try:
        lines = ctx.runtime.of(target.server_id).logs(
            target.container_id, tail=data.tail_lines, since=data.since)
    except RuntimeFailure:
        lines = []
    return RuntimeLogs(resource_id=target.resource_id, deployment_id=target.deployment_id,
                       logs=[log_line(target, n, line) for n, line in enumerate(
                           filter(target.shown, lines), 1)])


@operation("resources.runtime-logs.follow")
def follow_runtime_logs(ctx: Context, data: RuntimeLogsIn) -> RuntimeTarget:
    """Authorizes following a release's logs; the face then streams them from the engine."""
    return followable(runtime_target(ctx, data))


def followable(target: RuntimeTarget | None) -> RuntimeTarget:
    """The container whose logs are followed; 404 when there is none running."""
    if target is None:
        raise NotFound("there is no running container to follow", code="no_runtime")
    return target


class ProxyConfiguration(Schema):
    schema_version: str = "resources.proxy-configuration/v1"
    resource_id: str
    provider_key: str
    status: str
    routes: list[dict[str, Any]]
    generated_at: Timestamp


@operation("resources.proxy-configuration")
def proxy_configuration(ctx: Context, data: ResourceRef) -> ProxyConfiguration:
    """The edge proxy (Caddy JSON) routes that serve the resource, as launchbay loads them."""
    r = get_resource(ctx, data.resource_id)
    found = routing.routes(ctx.db, ctx.settings, r.id) if ctx.settings.edge_enabled else []
    return ProxyConfiguration(
        resource_id=r.id, provider_key="caddy" if ctx.settings.edge_enabled else "none",
        status="configured" if found else "not-configured",
        routes=[route.caddy() for route in found], generated_at=utcnow())


class HealthQuery(ResourceRef):
    mode: Literal["cached", "live"] = "cached"


class HealthSummary(RootModel[dict[str, Any]]):
    pass


# A cached observation younger than this is answered as is.
FRESH = 60


@operation("resources.health")
def resource_health(ctx: Context, data: HealthQuery) -> HealthSummary:
    """The resource's health: runtime, health check, public route. `cached` answers what was
    last recorded when it is fresh (or the monitor saw it unchanged since); `live` observes
    now (and records it, if it is a change)."""
    r = get_resource(ctx, data.resource_id)
    if data.mode == "cached" and (
            kept := health_monitor.cached(ctx.db, r, FRESH, ctx.health)) is not None:
        return HealthSummary({**kept, "mode": "cached"})
    summary = health_monitor.observe(ctx.db, ctx.settings, ctx.runtime, r)
    recorded = health_monitor.record(ctx.db, summary)
    if ctx.health is not None:
        ctx.health.note(summary, recorded)
    return HealthSummary({**summary, "mode": "live"})


class HealthHistoryIn(ResourceRef):
    limit: int = Field(200, ge=1, le=720)
    window_from: datetime | None = Field(None, alias="window.from")
    window_to: datetime | None = Field(None, alias="window.to")


class HealthRollupOut(Schema):
    hour: Timestamp
    minutes: str = Field(description="a character per minute, the worst state seen in it: "
                         "`-` unobserved, `n` not deployed, `h` healthy, `d` degraded, "
                         "`u` unhealthy")


class HealthHistory(Schema):
    schema_version: str = "resources.health-history/v1"
    resource_id: str
    from_: Timestamp | None = Field(None, alias="from")
    to: Timestamp | None
    generated_at: Timestamp
    observations: list[dict[str, Any]]
    rollups: list[HealthRollupOut] = Field(description="per-minute states, an hour a row, "
                                           "newest first (the last 24 hours of the window)")


@operation("resources.health-history")
def health_history(ctx: Context, data: HealthHistoryIn) -> HealthHistory:
    """The resource's changes of health state, newest first, and its per-minute rollups (both
    kept `health_retention_days`)."""
    r = get_resource(ctx, data.resource_id)
    now = utcnow()
    query = select(HealthObservation).where(HealthObservation.resource_id == r.id)
    if data.window_from:
        query = query.where(HealthObservation.observed_at >= data.window_from)
    if data.window_to:
        query = query.where(HealthObservation.observed_at <= data.window_to)
    rows = ctx.db.scalars(query.order_by(HealthObservation.observed_at.desc()).limit(data.limit))
    observations = []
    for o in rows:
        seen = HealthRecord.model_validate(o.summary)
        observations.append({
            "observationId": o.id, "observedAt": seen.observed_at, "overall": o.overall,
            "runtimeLifecycle": seen.runtime.lifecycle, "runtimeHealth": seen.runtime.health,
            "publicAccessStatus": seen.public_access.status, "proxyStatus": seen.proxy.status,
            "healthPolicyStatus": seen.health_policy.status,
            "latestDeploymentId": seen.latest_deployment.id if seen.latest_deployment else None,
            "summary": o.summary})
    last = data.window_to or now
    first = max(data.window_from or last - timedelta(hours=24), last - timedelta(hours=24))
    hours = {row.hour: row.minutes for row in ctx.db.scalars(select(HealthRollup).where(
        HealthRollup.resource_id == r.id, HealthRollup.hour >= health_monitor.hour_of(first),
        HealthRollup.hour <= last))}
    for hour, minutes in (ctx.health.unflushed(r.id) if ctx.health else {}).items():
        if health_monitor.hour_of(first) <= hour <= last:
            hours[hour] = health_monitor.merged(hours.get(hour, minutes), minutes)
    return HealthHistory(resource_id=r.id, from_=data.window_from, to=data.window_to,
                         generated_at=now, observations=observations,
                         rollups=[HealthRollupOut(hour=h, minutes=m)
                                  for h, m in sorted(hours.items(), reverse=True)])


ARCHIVE_KINDS = ("tar.gz", "zip")


def archive_source(ctx: Context, r: Resource, content: bytes, kind: str,
                   display_name: str) -> dict[str, Any]:
    """Keeps a source archive among the resource's uploads, named by its content, and returns
    the archive source that names it (by that id, never by a path)."""
    digest = hashlib.sha256(content).hexdigest()[:40]
    folder = ctx.settings.data_dir / "sources" / r.id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{digest}.{kind}").write_bytes(content)
    return {"kind": "archive", "locator": digest, "displayName": display_name,
            "commitSha": digest}


def archive_path(ctx: Context, r: Resource, archive_id: str) -> str:
    """The file of the resource's upload `archive_id`; 400 when the resource has none."""
    folder = ctx.settings.data_dir / "sources" / r.id
    for kind in ARCHIVE_KINDS:
        if (folder / f"{archive_id}.{kind}").is_file():
            return str(folder / f"{archive_id}.{kind}")
    raise Invalid(f"the resource has no uploaded archive {archive_id}",
                  code="archive_not_found")


class ArchiveIn(ResourceRef):
    content: bytes = Field(min_length=1)
    filename: str = Field("source", max_length=200)


class ArchiveOut(Schema):
    id: str
    archive_id: str
    size: int


@operation("resources.upload-archive", role="developer", audit="resource.archive-uploaded")
def upload_archive(ctx: Context, data: ArchiveIn) -> ArchiveOut:
    """Makes an uploaded tar.gz or zip of the source the resource's source (built on deploy)."""
    r = get_resource(ctx, data.resource_id, mutable=True)
    kind = source_checkout.archive_kind(data.content)
    if kind is None:
        raise Invalid("the upload is not a tar.gz or zip archive", code="archive_invalid")
    if len(data.content) > ctx.settings.upload_max_mb * 1024 * 1024:
        raise Invalid(f"the archive is larger than {ctx.settings.upload_max_mb} MB",
                      code="archive_too_large")
    r.source = archive_source(ctx, r, data.content, kind, data.filename)
    digest = r.source["commitSha"]
    ctx.audit(r.id, archiveId=digest, size=len(data.content))
    return ArchiveOut(id=r.id, archive_id=digest, size=len(data.content))
