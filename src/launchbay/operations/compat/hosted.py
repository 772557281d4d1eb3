"""Hosted deployments: "run this image at a URL" in one call (the Shipyard face's unit).

A hosted deployment is a resource named by a short lowercase name, unique on the instance,
in the caller's personal project (`hosted-<user>`) or, in a team context, the organization's
`hosted-team` project. `public` ones are served at `{name}.{base domain}` (a domain binding);
`internal` ones only inside their environment's network. Plans limit how many an
organization runs; every create and delete is a usage intent. The operations are of the
`deployments` family, so API keys scoped `deployments:read` / `deployments:write` use them.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import field_validator
from sqlalchemy import func, select

from launchbay.engine.plan import ReleasePlan
from launchbay.engine.routing import public_url
from launchbay.engine.runtime import RuntimeFailure
from launchbay.operations import usage
from launchbay.operations.catalog import Context, operation
from launchbay.operations.compat.blueprints import own_environment, put_variables
from launchbay.operations.deployments import build_plan, start
from launchbay.operations.edge.domains import bind
from launchbay.operations.errors import Conflict, NotFound, Unavailable
from launchbay.operations.plans import check_limit, plan_of
from launchbay.operations.resources import (
    ResourceRef,
    RuntimeLogsIn,
    RuntimeTarget,
    control_runtime,
    followable,
    runtime_target,
)
from launchbay.operations.schemas import UNPAGED_MAX, Field, Id, Schema, Timestamp
from launchbay.operations.templates import (
    Blueprint,
    get_template,
    made_states,
    make_resource,
    render,
    take_down,
)
from launchbay.operations.variables import VariableValue, listed
from launchbay.schemas_time import iso_seconds
from launchbay.store.models import (
    AuditEvent,
    Deployment,
    DomainBinding,
    HostedDeployment,
    LifecycleStatus,
    Project,
    ProjectKind,
    Resource,
    ResourceVariable,
    User,
)

NAME = r"^[a-z0-9][a-z0-9-]{1,38}[a-z0-9]$"
TEAM = "hosted-team"
ALPHABET = string.ascii_lowercase + string.digits


def _personal(ctx: Context) -> str:
    return f"hosted-{ctx.user_id.split('_')[-1][:12]}"


def _projects(ctx: Context) -> list[str]:
    """The hosted projects the caller sees: their own and the team's."""
    return [_personal(ctx), TEAM]


def _query(ctx: Context, slugs: list[str]):
    """The resources of the organization's hosted projects named `slugs`: found through the
    (organization, project) index, in order of creation."""
    return select(Resource).where(
        Resource.organization_id == ctx.org_id, Resource.project_id.in_(
            select(Project.id).where(Project.organization_id == ctx.org_id,
                                     Project.kind == ProjectKind.SHIPYARD,
                                     Project.slug.in_(slugs))))


def _count(ctx: Context) -> int:
    """Hosted deployments the organization runs (what its plan limits)."""
    return ctx.db.scalar(select(func.count()).select_from(Resource).join(
        Project, Project.id == Resource.project_id).where(
        Resource.organization_id == ctx.org_id, Project.kind == ProjectKind.SHIPYARD,
        Resource.lifecycle_status != LifecycleStatus.DELETING)) or 0


def get_hosted(ctx: Context, name: str, mutable: bool = False) -> Resource:
    r = ctx.db.scalar(_query(ctx, _projects(ctx)).where(Resource.slug == name))
    if r is None:
        raise NotFound("Deployment not found", code="deployment_not_found")
    if mutable and r.lifecycle_status != LifecycleStatus.ACTIVE:
        raise Conflict("the deployment is being deleted", code="deployment_deleting")
    return r


class Ingress(Schema):
    id: str
    name: str
    host: str
    url: str


class HostedOut(Schema):
    name: str
    status: Literal["Pending", "Provisioning", "Ready", "Error", "Deleting"]
    template: str
    visibility: Literal["public", "internal"]
    ingresses: list[Ingress]
    last_error: str | None = None
    can_delete: bool


def hosted_out(ctx: Context, r: Resource) -> HostedOut:
    return hosted_outs(ctx, [r])[0]


def hosted_outs(ctx: Context, resources: Sequence[Resource]) -> list[HostedOut]:
    """Hosted deployments as Shipyard shows them, in four queries whatever their number (none
    for none)."""
    if not resources:
        return []
    ids = [r.id for r in resources]
    states = made_states(ctx, resources)
    hosted = {h.resource_id: h for h in ctx.db.scalars(
        select(HostedDeployment).where(HostedDeployment.resource_id.in_(ids)))}
    bindings: dict[str, list[DomainBinding]] = {}
    for b in ctx.db.scalars(select(DomainBinding).where(DomainBinding.resource_id.in_(ids))
                            .order_by(DomainBinding.created_at)):
        bindings.setdefault(b.resource_id, []).append(b)  # type: ignore[arg-type]  # selected by resource
    return [HostedOut(
        name=r.slug, status=states[r.id][0], template=hosted[r.id].template,
        visibility=hosted[r.id].visibility, last_error=states[r.id][1],
        can_delete=states[r.id][0] != "Deleting",
        ingresses=[Ingress(id=r.slug, name=r.slug, host=b.domain_name,
                           url=public_url(ctx.settings, b.domain_name, b.tls_mode != "disabled"))
                   for b in bindings.get(r.id, [])]) for r in resources]


class TeamContext(Schema):
    """`organization_id` is the team (the face maps Shipyard's `team_id` to it)."""

    organization_id: Id | None = None


class HostedList(Schema):
    items: list[HostedOut]


@operation("deployments.hosted.list")
def list_hosted(ctx: Context, data: TeamContext) -> HostedList:
    """The caller's own hosted deployments, or the team's in a team context."""
    slugs = [TEAM] if data.organization_id else [_personal(ctx)]
    rows = ctx.db.scalars(_query(ctx, slugs).order_by(Resource.project_id, Resource.created_at)
                          .limit(UNPAGED_MAX)).all()
    return HostedList(items=hosted_outs(ctx, rows))


class HostedIn(TeamContext):
    env_vars: dict[str, VariableValue] = Field(default_factory=dict)
    visibility: Literal["public", "internal"] = "public"

    @field_validator("env_vars")
    @classmethod
    def _few(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > 200:
            raise ValueError("at most 200 variables")
        return value


class ImageDeploy(HostedIn):
    image: str = Field(min_length=1, max_length=500, pattern=r"^[a-z0-9][a-z0-9._/:@-]*$")
    name: str | None = Field(None, pattern=NAME)
    container_port: int = Field(8080, ge=1, le=65535)


class TemplateDeploy(HostedIn):
    template: str = Field(min_length=1, max_length=100)


def _new_name(ctx: Context) -> str:
    while True:
        name = "".join(secrets.choice(ALPHABET) for _ in range(10))
        if not name[0].isdigit() and not _taken(ctx, name):
            return name


def _taken(ctx: Context, name: str) -> bool:
    """Names are unique on the whole instance: they become hostnames."""
    return bool(ctx.db.scalar(select(Resource.id).join(Project, Project.id == Resource.project_id)
                              .where(Project.kind == ProjectKind.SHIPYARD,
                                     Resource.slug == name)))


def create_hosted(ctx: Context, data: HostedIn, name: str | None, template: str,
                  b: Blueprint) -> Resource:
    """The hosted deployment's resource, variables and route, and its first release; 403 over
    the plan, 409 for a taken name."""
    check_limit(ctx, ctx.org_id, _count(ctx))
    if name and _taken(ctx, name):
        raise Conflict("Deployment name already exists", code="name_taken")
    name = name or _new_name(ctx)
    slug, title = ((TEAM, "Team deployments") if data.organization_id else
                   (_personal(ctx), "My deployments"))
    env = own_environment(ctx, ProjectKind.SHIPYARD, slug, title, "Hosted deployments")
    r = make_resource(ctx, env, name, b, f"Hosted deployment ({template})", data.env_vars)
    ctx.db.add(HostedDeployment(resource_id=r.id, template=template, visibility=data.visibility))
    if data.visibility == "public":
        bind(ctx, f"{name}.{ctx.settings.base_domain}", project_id=r.project_id,
             environment_id=r.environment_id, server_id=r.server_id, resource_id=r.id,
             tls_mode=ctx.settings.edge_domain_tls)
    d = start(ctx, r, "hosted")
    _usage(ctx, r, "created", deploymentId=d.id)
    return r


def _usage(ctx: Context, r: Resource, what: str, **refs: Any) -> None:
    usage.record(ctx, f"hosted-deployment:{r.id}:{what}", f"deployments.hosted.{what}",
                 "shipyard", resource_refs={"projectId": r.project_id,
                                            "environmentId": r.environment_id,
                                            "resourceId": r.id, "serverId": r.server_id,
                                            **refs},
                 attributes={"name": r.slug, "plan": plan_of(ctx, ctx.org_id)[0]})


@operation("deployments.hosted.deploy-image", role="developer", audit="hosted-deployment.created")
def deploy_image(ctx: Context, data: ImageDeploy) -> HostedOut:
    """Runs a container image at a URL (or only inside its network when `internal`)."""
    r = create_hosted(ctx, data, data.name, "image",
                      Blueprint(image=data.image, port=data.container_port))
    ctx.audit(r.id, name=r.slug, image=data.image, visibility=data.visibility)
    return hosted_out(ctx, r)


@operation("deployments.hosted.create", role="developer", audit="hosted-deployment.created")
def deploy_template(ctx: Context, data: TemplateDeploy) -> HostedOut:
    """Runs a template of the catalog at a URL; `envVars` also fill in its parameters."""
    _, doc = get_template(ctx, data.template, usable=True)
    r = create_hosted(ctx, data, None, doc.name, render(doc, data.env_vars))
    ctx.audit(r.id, name=r.slug, template=doc.name, visibility=data.visibility)
    return hosted_out(ctx, r)


class HostedRef(TeamContext):
    name: str = Field(min_length=1, max_length=100)


class HostedStatus(Schema):
    status: str
    deployment_ready: bool
    allow_delete: bool
    allow_request: bool
    ingresses: list[Ingress]
    status_message: str | None = None


@operation("deployments.hosted.status")
def hosted_status(ctx: Context, data: HostedRef) -> HostedStatus:
    """A hosted deployment's status, with its ingresses once it is ready."""
    out = hosted_out(ctx, get_hosted(ctx, data.name))
    _, limit = plan_of(ctx, ctx.org_id)
    ready = out.status == "Ready"
    return HostedStatus(status=out.status, deployment_ready=ready, allow_delete=out.can_delete,
                        allow_request=limit is None or _count(ctx) < limit,
                        ingresses=out.ingresses if ready else [],
                        status_message=out.last_error)


class HostedAction(TeamContext):
    deployment_name: str = Field(min_length=1, max_length=100)


class Done(Schema):
    success: bool = True
    message: str


@operation("deployments.hosted.delete", role="developer", audit="hosted-deployment.deleted")
def delete_hosted(ctx: Context, data: HostedAction) -> Done:
    """Stops serving the deployment at once and removes it (status `Deleting` until its
    containers are gone)."""
    r = get_hosted(ctx, data.deployment_name, mutable=True)
    take_down(ctx, r, "deployments.hosted.delete")
    _usage(ctx, r, "deleted")
    ctx.audit(r.id, name=r.slug)
    return Done(message=f"Deployment {r.slug} is being deleted")


@operation("deployments.hosted.restart", role="developer", audit="hosted-deployment.restarted")
def restart_hosted(ctx: Context, data: HostedAction) -> Done:
    """Restarts the deployment's container (same image, same configuration)."""
    r = get_hosted(ctx, data.deployment_name, mutable=True)
    control_runtime(ctx, ResourceRef(resource_id=r.id), "restart")
    return Done(message=f"Deployment {r.slug} is restarting")


class ConfigOut(Schema):
    config_data: dict[str, str]


def _config(ctx: Context, r: Resource) -> dict[str, str]:
    return {v.key: v.value for v in listed(ctx, ResourceVariable, r.id)
            if v.kind != "secret" and v.exposure == "runtime"}


@operation("deployments.hosted.config")
def hosted_config(ctx: Context, data: HostedRef) -> ConfigOut:
    """The deployment's environment variables."""
    return ConfigOut(config_data=_config(ctx, get_hosted(ctx, data.name)))


class ConfigIn(HostedAction):
    config_data: dict[str, str]


@operation("deployments.hosted.configure", role="developer",
           audit="hosted-deployment.configured")
def configure_hosted(ctx: Context, data: ConfigIn) -> ConfigOut:
    """Replaces the environment variables and deploys them (a new release beside the old one:
    no downtime)."""
    r = get_hosted(ctx, data.deployment_name, mutable=True)
    before = _config(ctx, r)
    for var in listed(ctx, ResourceVariable, r.id):
        if var.kind != "secret" and var.key not in data.config_data:
            ctx.db.delete(var)
    put_variables(ctx, r, data.config_data, "plain-config")
    ctx.db.flush()
    d = start(ctx, r, "hosted-config")
    ctx.audit(r.id, deploymentId=d.id, changed=sorted(
        k for k in {*before, *data.config_data} if before.get(k) != data.config_data.get(k)))
    return ConfigOut(config_data=data.config_data)


class LogsIn(HostedRef):
    service: str | None = Field(None, max_length=100)
    tail: int = Field(100, ge=0, le=10000)


class LogsOut(Schema):
    logs: str


def _target(ctx: Context, name: str, service: str | None) -> RuntimeTarget | None:
    r = get_hosted(ctx, name)
    return runtime_target(ctx, RuntimeLogsIn(resource_id=r.id, service_name=service))


@operation("deployments.hosted.logs")
def hosted_logs(ctx: Context, data: LogsIn) -> LogsOut:
    """The last `tail` lines the deployment's container (or its `service`) wrote."""
    target = _target(ctx, data.name, data.service)
    if target is None or data.tail == 0:
        return LogsOut(logs="")
    try:
        lines = ctx.runtime.of(target.server_id).logs(target.container_id,
                                                          tail=min(data.tail, 10000))
    except RuntimeFailure:
        lines = []
    return LogsOut(logs="".join(target.masked(line).message.rstrip("\n") + "\n"
                                for line in lines))


@operation("deployments.hosted.logs.follow")
def follow_hosted_logs(ctx: Context, data: LogsIn) -> RuntimeTarget:
    """Authorizes following the deployment's logs; the face streams them from the engine."""
    return followable(_target(ctx, data.name, data.service))


class Metrics(Schema):
    cpu_usage: str
    memory_usage: str
    timestamp: str


def millicores(stats: dict[str, Any]) -> int:
    """CPU use between Docker's two samples, in thousandths of a core."""
    cpu, pre = stats.get("cpu_stats", {}), stats.get("precpu_stats", {})
    used = cpu.get("cpu_usage", {}).get("total_usage", 0) - \
        pre.get("cpu_usage", {}).get("total_usage", 0)
    system = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    cores = cpu.get("online_cpus") or len(cpu.get("cpu_usage", {}).get("percpu_usage") or [1])
    return round(1000 * cores * used / system) if used > 0 and system > 0 else 0


def memory_bytes(stats: dict[str, Any]) -> int:
    """Memory in use, without the page cache (as `docker stats` shows it)."""
    mem = stats.get("memory_stats", {})
    cache = mem.get("stats", {}).get("inactive_file", mem.get("stats", {}).get("cache", 0))
    return max(mem.get("usage", 0) - cache, 0)


class MetricsIn(HostedRef):
    service: str | None = Field(None, max_length=100)


@operation("deployments.hosted.metrics")
def hosted_metrics(ctx: Context, data: MetricsIn) -> Metrics:
    """CPU (millicores) and memory (Mi) of the deployment's container (or its `service`),
    from Docker's stats."""
    target = _target(ctx, data.name, data.service)
    if target is None:
        raise Conflict("the deployment has no running container", code="no_runtime")
    try:
        stats = ctx.runtime.of(target.server_id).stats(target.container_id)
    except RuntimeFailure as exc:
        raise Conflict(f"no metrics: {exc}", code="no_runtime") from None
    return Metrics(cpu_usage=f"{millicores(stats)}m",
                   memory_usage=f"{round(memory_bytes(stats) / 2**20)}Mi",
                   timestamp=_now())


def _now() -> str:
    return iso_seconds(datetime.now(UTC))


# -- history and events -----------------------------------------------------------------------

REVISIONS = {"hosted-deployment.created": "created", "hosted-deployment.configured": "config",
             "hosted-deployment.restarted": "restart",
             "hosted-deployment.image-updated": "image",
             "hosted-deployment.auto-update-configured": "auto-update"}


class Revision(Schema):
    revision: int
    type: str
    created_at: Timestamp
    user_id: str | None
    user: str | None  # who, by email; None for the platform itself
    deployment_id: str | None = None
    details: dict[str, Any]


class History(Schema):
    revisions: list[Revision]


@operation("deployments.hosted.history")
def hosted_history(ctx: Context, data: HostedRef) -> History:
    """What changed the deployment and who did it: creation, configuration changes (the
    variables' names), restarts, image changes and auto-update settings, oldest first."""
    r = get_hosted(ctx, data.name)
    rows = ctx.db.execute(select(AuditEvent, User.email).outerjoin(
        User, User.id == AuditEvent.actor_user_id).where(
        AuditEvent.organization_id == ctx.org_id, AuditEvent.aggregate_id == r.id,
        AuditEvent.event_type.in_(REVISIONS)).order_by(AuditEvent.created_at, AuditEvent.id))
    return History(revisions=[Revision(
        revision=n, type=REVISIONS[e.event_type], created_at=e.created_at,
        user_id=e.actor_user_id, user=email, deployment_id=e.payload.get("deploymentId"),
        details={k: v for k, v in e.payload.items() if k != "deploymentId"})
        for n, (e, email) in enumerate(rows, 1)])


class Event(Schema):
    type: Literal["Normal", "Warning"]
    reason: str
    message: str
    container: str
    service: str
    timestamp: str


class Events(Schema):
    events: list[Event]


EVENTS = {"create": ("Normal", "Created"), "start": ("Normal", "Started"),
          "restart": ("Normal", "Restarted"), "stop": ("Normal", "Stopped"),
          "kill": ("Normal", "Killing"), "die": ("Warning", "Died"),
          "oom": ("Warning", "OOMKilled"), "destroy": ("Normal", "Removed"),
          "health_status: healthy": ("Normal", "Healthy"),
          "health_status: unhealthy": ("Warning", "Unhealthy")}


def runtime_event(raw: dict[str, Any], web: str) -> Event | None:
    """A Docker container event as the deployment's event (`web`: the service of containers
    that name none); None for the ones not kept."""
    action = raw.get("Action") or raw.get("status") or ""
    kind = EVENTS.get(action)
    if kind is None:
        return None
    attrs = raw.get("Actor", {}).get("Attributes", {})
    name = attrs.get("name", "")
    message = {"die": f"exited with code {attrs.get('exitCode', '?')}",
               "kill": f"sent signal {attrs.get('signal', '?')}"}.get(action, action)
    stamp = datetime.fromtimestamp(raw.get("timeNano", 0) / 1e9, UTC)
    return Event(type=kind[0], reason=kind[1], message=f"{name}: {message}", container=name,
                 service=attrs.get("launchbay.service", web),
                 timestamp=iso_seconds(stamp))


@operation("deployments.hosted.events")
def hosted_events(ctx: Context, data: HostedRef) -> Events:
    """What happened to the deployment's containers (created, started, died, OOM-killed,
    health changes...), from the Docker engine's recent events."""
    r = get_hosted(ctx, data.name)
    try:
        raw = ctx.runtime.of(r.server_id).events(r.created_at,
                                                      **{"launchbay.resource": r.id})
    except RuntimeFailure as exc:
        raise Unavailable(f"the Docker engine is unreachable: {exc}", code="runtime_down") \
            from None
    current = ctx.db.get(Deployment, r.current_deployment_id) if r.current_deployment_id \
        else None
    web = (ReleasePlan.model_validate(current.plan).service_name if current else None) or r.slug
    return Events(events=[e for e in (runtime_event(x, web) for x in raw) if e is not None])


# -- auto-update ------------------------------------------------------------------------------


class AutoUpdate(Schema):
    enabled: bool
    strategy: Literal["rolling", "recreate"]


@operation("deployments.hosted.auto-update")
def hosted_auto_update(ctx: Context, data: HostedRef) -> AutoUpdate:
    """Whether the deployment follows its image's tag, and how it replaces the container."""
    h = ctx.db.get_one(HostedDeployment, get_hosted(ctx, data.name).id)
    return AutoUpdate(enabled=h.auto_update, strategy=h.update_strategy)


class AutoUpdateIn(HostedAction):
    enabled: bool
    strategy: Literal["rolling", "recreate"] | None = None


@operation("deployments.hosted.auto-update.configure", role="developer",
           audit="hosted-deployment.auto-update-configured")
def configure_auto_update(ctx: Context, data: AutoUpdateIn) -> AutoUpdate:
    """Turns auto-update on or off: when the deployment's image tag points to another image
    (a new push to its registry, or a re-tagged local image), it is redeployed, `rolling`
    (beside the old container, switched when healthy) or `recreate` (stopped, then started).
    Updates run on behalf of whoever turned it on."""
    r = get_hosted(ctx, data.deployment_name, mutable=True)
    h = ctx.db.get_one(HostedDeployment, r.id)
    h.auto_update, h.update_strategy = data.enabled, data.strategy or h.update_strategy
    h.auto_update_by = ctx.user_id if data.enabled else None
    ctx.audit(r.id, enabled=h.auto_update, strategy=h.update_strategy)
    return AutoUpdate(enabled=h.auto_update, strategy=h.update_strategy)


class ImageUpdated(Schema):
    deployment_id: str
    image: str
    image_id: str


@operation("deployments.hosted.auto-update.apply", role="developer",
           audit="hosted-deployment.image-updated")
def apply_auto_update(ctx: Context, data: HostedAction) -> ImageUpdated:
    """Redeploys the deployment when its image tag now points to another image than the
    running container's (what the auto-update watcher calls); 409 when nothing changed."""
    r = get_hosted(ctx, data.deployment_name, mutable=True)
    h = ctx.db.get_one(HostedDeployment, r.id)
    current = ctx.db.get(Deployment, r.current_deployment_id) if r.current_deployment_id \
        else None
    image = ReleasePlan.model_validate(current.plan).image if current is not None else None
    if not h.auto_update or current is None or not current.container_id or not image:
        raise Conflict("auto-update is off or the deployment has no running image",
                       code="auto_update_off")
    docker = ctx.runtime.of(r.server_id)
    running = docker.inspect(current.container_id)
    latest = docker.current_image_id(image)
    if latest is None or running is None or running.image_id == latest:
        raise Conflict(f"{image} is unchanged", code="image_unchanged")
    plan = build_plan(ctx, r)
    plan.recreate = h.update_strategy == "recreate"
    plan.labels["launchbay.image-id"] = latest
    d = start(ctx, r, "auto-update", plan=plan.model_dump(mode="json"))
    ctx.audit(r.id, deploymentId=d.id, image=image, imageId=latest,
              previousImageId=running.image_id, strategy=h.update_strategy)
    return ImageUpdated(deployment_id=d.id, image=image, image_id=latest)
