"""Blueprints: an app described in one document (name, source, runtime, commands, port,
variables, secrets), deployed in one call. This is how Dployr's API sees launchbay: a service
is a resource of the organization's `services` project, a deployment is a launchbay
deployment, and a deployment's blueprint is read back from its frozen plan and variables.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import ScalarSelect, func, select

from launchbay.engine.plan import ReleasePlan
from launchbay.operations import variables
from launchbay.operations.catalog import Context, operation
from launchbay.operations.deployments import start
from launchbay.operations.edge.domains import bind, check_domain
from launchbay.operations.errors import Invalid, NotFound, validation_failed
from launchbay.operations.removal import remove_resources
from launchbay.operations.resources import (
    get_resource,
    source_of,
)
from launchbay.operations.servers import default_server
from launchbay.operations.variables import VariableIn, VariableValue
from launchbay.slugs import slugify
from launchbay.store.db import upsert
from launchbay.store.models import (
    Deployment,
    DomainBinding,
    Environment,
    Project,
    ProjectKind,
    Resource,
    ResourceVariable,
    User,
    new_id,
    newest_deployments,
)
from launchbay.store.profiles import (
    EnvironmentSnapshot,
    NetworkProfile,
    RuntimeProfile,
    SourceProfile,
    stored,
)

PROJECT = "services"
Runtime = Literal["static", "golang", "php", "python", "nodejs", "ruby", "dotnet", "java",
                  "docker", "k3s", "custom"]
STATUS = {"created": "pending", "planning": "pending", "planned": "pending",
          "running": "in_progress", "cancel-requested": "in_progress", "succeeded": "completed",
          "rolled-back": "completed", "failed": "failed", "canceled": "failed"}


class Plain(BaseModel):
    """Blueprint documents keep their snake_case names (they are Dployr's)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class RuntimeIn(Plain):
    type: Runtime
    version: str | None = Field(None, max_length=50, pattern=r"^[A-Za-z0-9._-]+$")


class RemoteIn(Plain):
    url: str | None = Field(None, max_length=2000)
    branch: str | None = Field(None, max_length=500)
    commit_hash: str | None = Field(None, max_length=64, pattern=r"^[0-9a-fA-F]{4,64}$")


class Commands(Plain):
    """How a service is built and run: what a deploy request and an update share."""

    run_cmd: str | None = Field(None, max_length=4000)
    build_cmd: str | None = Field(None, max_length=4000)
    port: int | None = Field(None, ge=1, le=65535)
    working_dir: str | None = Field(None, max_length=500)
    static_dir: str | None = Field(None, max_length=500)
    image: str | None = Field(None, max_length=500, pattern=r"^[a-z0-9][a-z0-9._/:@-]*$")


class Blueprint(Commands):
    name: str = Field(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    description: str | None = Field(None, max_length=2000)
    user_id: str | None = Field(None, max_length=200)
    source: Literal["remote", "image"]
    runtime: RuntimeIn
    version: str | None = Field(None, max_length=100)
    env_vars: dict[str, VariableValue] = {}
    secrets: dict[str, VariableValue] = {}
    remote: RemoteIn | None = None
    domain: str | None = Field(None, max_length=253)
    dns_provider: str | None = Field(None, max_length=100)


class Deployed(Plain):
    deployment_id: str
    resource_id: str
    name: str
    created_at: datetime


def _relative(path: str | None) -> str | None:
    """A folder of the source: `working_dir`/`static_dir` are relative to the repository
    (a leading `/app/` or `/`, the container's view of it, is dropped)."""
    if not path:
        return None
    for prefix in ("/app/", "/"):
        if path.startswith(prefix):
            path = path[len(prefix):]
    return path.strip("/") or None


def profiles(b: Blueprint) -> tuple[SourceProfile, RuntimeProfile, NetworkProfile]:
    """The resource profiles a blueprint asks for; 400 for what launchbay cannot run, or
    for what the profiles refuse (a repository URL that is not one...)."""
    try:
        return _profiles(b)
    except ValidationError as exc:
        raise validation_failed(exc.errors()) from None


def _profiles(b: Blueprint) -> tuple[SourceProfile, RuntimeProfile, NetworkProfile]:
    if b.runtime.type == "k3s":
        raise Invalid("runtime k3s is not supported: launchbay runs containers on Docker",
                      code="runtime_not_supported")
    if b.source == "image":
        if not b.image:
            raise Invalid("source image needs image", code="image_required")
        name, tag = split_image(b.image)
        source = SourceProfile(kind="docker-image", image_name=name, image_tag=tag)
    else:
        if not b.remote or not b.remote.url:
            raise Invalid("source remote needs remote.url", code="remote_required")
        source = SourceProfile(kind="git", locator=b.remote.url,
                               git_ref=b.remote.commit_hash or b.remote.branch,
                               base_directory=_relative(b.working_dir))
    strategy = {"static": "static", "docker": "dockerfile",
                "custom": "workspace-commands"}.get(b.runtime.type, "auto")
    runtime_name = b.image if b.runtime.type == "custom" and b.source == "remote" else (
        f"{b.runtime.type}@{b.runtime.version}" if b.runtime.version else b.runtime.type)
    runtime = RuntimeProfile(strategy=strategy, runtime_name=runtime_name,
                             build_command=b.build_cmd, start_command=b.run_cmd,
                             publish_directory=_relative(b.static_dir))
    return source, runtime, NetworkProfile(internal_port=b.port)


def split_image(image: str) -> tuple[str, str]:
    name, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "")
    return name, tag or "latest"


def own_project(ctx: Context, kind: ProjectKind, slug: str, name: str,
                description: str) -> Project:
    """The organization's project `slug` of the feature `kind`, made on first use. The
    insert does nothing when another request made it at this moment (no SAVEPOINT: a failed
    operation then leaves nothing behind); a feature's slugs are reserved, so no user
    project holds one (projects.reserved_slug)."""
    ctx.db.execute(upsert(ctx.db, Project).values(
        id=new_id("prj"), organization_id=ctx.org_id, name=name, slug=slug, kind=kind,
        description=description).on_conflict_do_nothing(
        index_elements=[Project.organization_id, Project.slug]))
    return ctx.db.scalars(select(Project).where(
        Project.organization_id == ctx.org_id, Project.slug == slug,
        Project.kind == kind)).one()


def own_environment(ctx: Context, kind: ProjectKind, slug: str, name: str,
                    description: str) -> Environment:
    """The production environment of the organization's project `slug` of the feature
    `kind`, both made on first use: where services of a face (Dployr's, hosted deployments)
    live."""
    project = own_project(ctx, kind, slug, name, description)
    env = ctx.db.scalar(select(Environment).where(Environment.project_id == project.id,
                                                  Environment.name == "production"))
    if env is None:
        env = Environment(id=new_id("env"), project_id=project.id, organization_id=ctx.org_id,
                          name="production", kind="production")
        ctx.db.add(env)
        ctx.db.flush()
    return env


def services_environment(ctx: Context) -> Environment:
    return own_environment(ctx, ProjectKind.DPLOYR, PROJECT, PROJECT,
                           "Services deployed from blueprints")


def _apply(ctx: Context, r: Resource, b: Blueprint) -> None:
    """Gives the resource the profiles the blueprint asks for."""
    source, runtime, network = profiles(b)
    r.description = b.description or r.description
    r.source, r.runtime_profile = source_of(ctx, r, source), stored(runtime)
    r.network_profile = stored(network)


@operation("blueprints.deploy", role="developer", audit="blueprint.deployed")
def deploy_blueprint(ctx: Context, data: Blueprint) -> Deployed:
    """Creates the blueprint's service (or updates the one of that name) with its profiles,
    variables and secrets, then deploys it."""
    profiles(data)  # refuses what cannot run before anything is created
    env = services_environment(ctx)
    slug = slugify(data.name)
    r = ctx.db.scalar(select(Resource).where(Resource.environment_id == env.id,
                                             Resource.slug == slug))
    if r is None:
        r = Resource(id=new_id("res"), organization_id=ctx.org_id, project_id=env.project_id,
                     environment_id=env.id, server_id=default_server(ctx).id, name=data.name,
                     slug=slug, kind="application")
        ctx.db.add(r)
    _apply(ctx, r, data)
    ctx.db.flush()
    put_variables(ctx, r, data.env_vars, "plain-config")
    put_variables(ctx, r, data.secrets, "secret")
    if data.domain:
        _bind_domain(ctx, r, data.domain)
    d = start(ctx, r, "blueprint")
    ctx.audit(r.id, name=r.name, deploymentId=d.id, runtime=data.runtime.type,
              source=data.source)
    return Deployed(deployment_id=d.id, resource_id=r.id, name=r.name, created_at=d.created_at)


def _bind_domain(ctx: Context, r: Resource, domain: str) -> None:
    """The blueprint's domain serves the service (once; 409 if another app has it)."""
    try:
        domain = check_domain(domain)
    except ValueError as exc:
        raise Invalid(f"domain {exc}", code="domain_invalid") from exc
    if not ctx.db.scalar(select(DomainBinding.id).where(DomainBinding.resource_id == r.id,
                                                        DomainBinding.domain_name == domain)):
        bind(ctx, domain, project_id=r.project_id, environment_id=r.environment_id,
             server_id=r.server_id, resource_id=r.id, tls_mode=ctx.settings.edge_domain_tls)


def put_variables(ctx: Context, r: Resource, values: dict[str, str], kind: str) -> None:
    for key, value in values.items():
        try:
            item = VariableIn(key=key, value=value, kind=kind)
        except ValidationError as exc:
            raise Invalid(variables.problem(exc, key), code="variable_invalid") from None
        variables.put(ctx, ResourceVariable, r.id, item, "resource")


# -- reading back -------------------------------------------------------------------------------


def blueprint_of(r: Resource, d: Deployment | None, env_vars: dict[str, str],
                 domain: str | None) -> dict[str, Any]:
    """The blueprint a deployment ran (or, without one, the resource's current one); `domain`
    is the service's first (see `domains_of`)."""
    plan = ReleasePlan.model_validate(d.plan) if d is not None else None
    source = SourceProfile.model_validate(r.source) if r.source else None
    runtime = (plan.build.runtime_profile if plan and plan.build
               else RuntimeProfile.model_validate(r.runtime_profile))
    remote = plan.build if plan and plan.build else None
    kind, _, version = (runtime.runtime_name or "custom").partition("@")
    if runtime.strategy == "workspace-commands":
        kind = "custom"
    image = (plan.image if plan and not plan.build else source.image if source and
             source.kind == "docker-image" else None)
    start_cmd = shlex.join(plan.command) if plan and plan.command and not plan.build \
        else runtime.start_command
    out = {
        "name": r.name, "description": r.description or "",
        "source": "image" if image or (source and source.kind == "docker-image") else "remote",
        "runtime": {"type": kind, **({"version": version} if version else {})},
        "run_cmd": start_cmd, "build_cmd": runtime.build_command,
        "port": (plan.internal_port if plan else None)
        or NetworkProfile.model_validate(r.network_profile).internal_port,
        "working_dir": "/app/" + (remote.base_directory if remote and
                                  remote.base_directory != "." else ""),
        "static_dir": runtime.publish_directory, "image": image, "env_vars": env_vars,
        "status": STATUS.get(d.status, "pending") if d else "pending",
        "project_id": r.project_id, "domain": domain,
    }
    git = source if source and source.kind == "git" else None
    if remote or git:
        out["remote"] = {"url": (remote.repository if remote else git and git.locator) or "",
                         "branch": (remote.ref if remote else git and git.git_ref) or "",
                         "commit_hash": (plan.commit_sha if plan else None) or ""}
    return {k: v for k, v in out.items() if v is not None}


def domains_of(ctx: Context, resource_ids: Iterable[str]) -> dict[str, str]:
    """Each service's first domain (the one its blueprint asked for), in one query."""
    found: dict[str, str] = {}
    for rid, name in ctx.db.execute(select(DomainBinding.resource_id, DomainBinding.domain_name)
                                    .where(DomainBinding.resource_id.in_(set(resource_ids)))
                                    .order_by(DomainBinding.created_at.desc())):
        if rid is not None:
            found[rid] = name  # the oldest is written last
    return found


def _snapshot_env(d: Deployment | None) -> dict[str, str]:
    """The plain runtime variables a deployment was given (secrets are never shown)."""
    if d is None:
        return {}
    return {v.key: v.value for v in EnvironmentSnapshot.model_validate(
        d.environment_snapshot).variables if v.kind != "secret" and v.exposure == "runtime"}


class Page(Plain):
    limit: int = Field(20, ge=1, le=100)
    offset: int = Field(0, ge=0)


class DeploymentView(Plain):
    id: str
    user_id: str | None
    user_email: str | None
    config: dict[str, Any]
    status: str
    metadata: str
    created_at: datetime
    updated_at: datetime


class DeploymentPage(Plain):
    deployments: list[DeploymentView]
    total: int


def services_project(ctx: Context) -> ScalarSelect[str]:
    """The id of the organization's project of services (Dployr's model)."""
    return select(Project.id).where(
        Project.organization_id == ctx.org_id, Project.kind == ProjectKind.DPLOYR,
        Project.slug == PROJECT).scalar_subquery()


def services_query(ctx: Context):
    return select(Resource).where(Resource.organization_id == ctx.org_id,
                                  Resource.project_id == services_project(ctx))


@operation("blueprints.deployments")
def list_blueprint_deployments(ctx: Context, data: Page) -> DeploymentPage:
    """The deployments of the organization's services, newest first."""
    query = select(Deployment).where(Deployment.organization_id == ctx.org_id,
                                     Deployment.project_id == services_project(ctx))
    total = ctx.db.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = ctx.db.scalars(query.order_by(Deployment.created_at.desc())
                          .limit(data.limit).offset(data.offset)).all()
    users = {u.id: u for u in ctx.db.scalars(select(User).where(
        User.id.in_({d.triggered_by for d in rows if d.triggered_by})))}
    resources = {r.id: r for r in ctx.db.scalars(select(Resource).where(
        Resource.id.in_({d.resource_id for d in rows})))}
    domains = domains_of(ctx, resources)
    views = []
    for d in rows:
        r = resources[d.resource_id]
        user = users.get(d.triggered_by or "")
        views.append(DeploymentView(
            id=d.id, user_id=d.triggered_by, user_email=user.email if user else None,
            config=blueprint_of(r, d, _snapshot_env(d), domains.get(r.id)),
            status=STATUS.get(d.status, "pending"),
            metadata=d.error_message or "", created_at=d.created_at,
            updated_at=d.finished_at or d.started_at or d.created_at))
    return DeploymentPage(deployments=views, total=total)


class ServiceView(Plain):
    id: str
    name: str
    description: str
    source: str
    runtime: str
    runtime_version: str | None
    run_cmd: str | None
    build_cmd: str | None
    port: int | None
    working_dir: str | None
    static_dir: str | None
    image: str | None
    env_vars: dict[str, str]
    status: str
    remote: str | None
    branch: str | None
    commit_hash: str | None
    blueprint: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class ServicePage(Plain):
    services: list[ServiceView]
    total: int


def _service_view(ctx: Context, r: Resource) -> ServiceView:
    return _service_views(ctx, [r])[0]


def _service_views(ctx: Context, rows: Sequence[Resource]) -> list[ServiceView]:
    """Services as Dployr shows them, in five queries whatever their number."""
    ids = [r.id for r in rows]
    latest = {d.resource_id: d for d in ctx.db.scalars(select(Deployment).where(
        Deployment.id.in_(newest_deployments(ids))))}
    currents = {d.id: d for d in ctx.db.scalars(select(Deployment).where(Deployment.id.in_(
        [r.current_deployment_id for r in rows if r.current_deployment_id])))}
    plain = variables.listed_by_owner(ctx, ResourceVariable, ids)
    domains = domains_of(ctx, ids)
    views = []
    for r in rows:
        newest_of = latest.get(r.id)
        current = currents.get(r.current_deployment_id or "")
        env_vars = {v.key: v.value for v in plain.get(r.id, [])
                    if v.kind != "secret" and v.exposure == "runtime"}
        b = blueprint_of(r, None, env_vars, domains.get(r.id))
        remote = b.get("remote") or {}
        status = ("deploying" if newest_of and STATUS.get(newest_of.status) in (
                      "pending", "in_progress")
                  else "running" if current and current.container_id else
                  "failed" if newest_of and newest_of.status == "failed" else "stopped")
        views.append(ServiceView(
            id=r.id, name=r.name, description=r.description or "", source=b["source"],
            runtime=b["runtime"]["type"], runtime_version=b["runtime"].get("version"),
            run_cmd=b.get("run_cmd"), build_cmd=b.get("build_cmd"), port=b.get("port"),
            working_dir=b.get("working_dir"), static_dir=b.get("static_dir"),
            image=b.get("image"), env_vars=env_vars, status=status, remote=remote.get("url"),
            branch=remote.get("branch"),
            commit_hash=(ReleasePlan.model_validate(current.plan).commit_sha if current
                         else None) or None,
            blueprint={**b, "status": status}, created_at=r.created_at,
            updated_at=(newest_of.created_at if newest_of else r.created_at)))
    return views


@operation("blueprints.services")
def list_services(ctx: Context, data: Page) -> ServicePage:
    """The organization's services, oldest first."""
    query = services_query(ctx)
    total = ctx.db.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = ctx.db.scalars(query.order_by(Resource.created_at).limit(data.limit)
                          .offset(data.offset)).all()
    return ServicePage(services=_service_views(ctx, rows), total=total)


class ServiceRef(Plain):
    service_id: str = Field(alias="serviceId")


def _service(ctx: Context, service_id: str, mutable: bool = False) -> Resource:
    r = get_resource(ctx, service_id, mutable=mutable)
    if ctx.db.get_one(Project, r.project_id).slug != PROJECT:
        raise NotFound("resource not found", code="resource_not_found")
    return r


@operation("blueprints.services.show")
def show_service(ctx: Context, data: ServiceRef) -> ServiceView:
    """One service of the organization, with its current blueprint."""
    return _service_view(ctx, _service(ctx, data.service_id))


class ServiceUpdate(Commands):
    service_id: str = Field(alias="serviceId")
    name: str | None = Field(None, min_length=1, max_length=63,
                             pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    description: str | None = Field(None, max_length=2000)
    runtime_version: str | None = Field(None, max_length=50, pattern=r"^[A-Za-z0-9._-]+$")
    env_vars: dict[str, VariableValue] | None = None
    branch: str | None = Field(None, max_length=500)
    replace: bool = False  # PUT: the variables become exactly env_vars


@operation("blueprints.services.update", role="developer", audit="blueprint.service-updated")
def update_service(ctx: Context, data: ServiceUpdate) -> ServiceView:
    """Changes a service's blueprint and deploys the change (a new release, health-gated)."""
    r = _service(ctx, data.service_id, mutable=True)
    current = blueprint_of(r, None, {}, domains_of(ctx, [r.id]).get(r.id))
    if current.get("remote"):
        current["remote"] = {k: v for k, v in current["remote"].items() if v}
    b = Blueprint.model_validate({**current, **data.model_dump(
        exclude_unset=True, exclude={"service_id", "replace", "env_vars", "branch",
                                     "runtime_version"})})
    if data.runtime_version is not None:
        b.runtime.version = data.runtime_version
    if data.branch is not None and b.remote is not None:
        b.remote.branch, b.remote.commit_hash = data.branch, None
    if data.name is not None and slugify(data.name) != r.slug:
        raise Invalid("a service cannot be renamed; deploy a new one", code="rename_refused")
    _apply(ctx, r, b)
    if data.env_vars is not None:
        if data.replace:
            for var in variables.listed(ctx, ResourceVariable, r.id):
                if var.kind != "secret" and var.key not in data.env_vars:
                    ctx.db.delete(var)
        put_variables(ctx, r, data.env_vars, "plain-config")
    ctx.db.flush()
    d = start(ctx, r, "blueprint")
    ctx.audit(r.id, deploymentId=d.id, fields=sorted(data.model_fields_set - {"service_id"}))
    return _service_view(ctx, r)


@operation("blueprints.services.delete", role="admin", audit="resource.deleted")
def delete_service(ctx: Context, data: ServiceRef) -> None:
    """Deletes a service: its containers, routes and deployments (never its volumes)."""
    remove_resources(ctx, [_service(ctx, data.service_id)])
