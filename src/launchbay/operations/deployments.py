"""Deployments: each one freezes a plan (image, config, variables) and hands it to the engine
through a work item; the engine records its progress in the deployment's journal."""

from __future__ import annotations

import shlex
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import field_validator
from sqlalchemy import func, select

from launchbay.crypto import MASK
from launchbay.drivers import source_checkout
from launchbay.engine import journal
from launchbay.engine.build.runtime_detection import Detection, detect
from launchbay.engine.image_access import built_repository
from launchbay.engine.journal import TERMINAL
from launchbay.engine.ledger import OPEN
from launchbay.engine.plan import BuildSpec, HealthSpec, ReleasePlan, Volume
from launchbay.engine.routing import access_policy
from launchbay.operations import databases, variables
from launchbay.operations.catalog import Context, operation
from launchbay.operations.environments import get_environment
from launchbay.operations.errors import Conflict, Invalid, NotFound
from launchbay.operations.resources import (
    answers,
    archive_path,
    attachments,
    check_repository,
    generated_url,
    get_resource,
    preloaded,
    source_of,
)
from launchbay.operations.schemas import CountOut, Field, Id, IdOut, Schema, Timestamp
from launchbay.store.models import (
    Deployment,
    DeploymentEntry,
    DeploymentStatus,
    Environment,
    LifecycleStatus,
    OperatorWork,
    Project,
    Resource,
    Server,
    new_id,
    utcnow,
)
from launchbay.store.profiles import (
    EnvironmentSnapshot,
    HealthPolicy,
    NetworkProfile,
    RuntimeProfile,
    SnapshotVariable,
    SourceProfile,
    stored,
)

Status = DeploymentStatus
ROLLBACK_TARGETS = (DeploymentStatus.SUCCEEDED, DeploymentStatus.ROLLED_BACK)


# -- planning -----------------------------------------------------------------------------------


def readiness(resource: Resource, override: SourceProfile | None = None) -> list[str]:
    """Why the resource cannot be deployed now, with its source or `override` (empty: it
    can)."""
    reasons = []
    if resource.lifecycle_status != LifecycleStatus.ACTIVE:
        reasons.append("resource-archived")
    source = override or (SourceProfile.model_validate(resource.source) if resource.source
                          else None)
    if source is None:
        reasons.append("resource-source-missing")
    elif source.kind not in ("docker-image", "git", "archive"):
        reasons.append("source-kind-not-supported-yet")
    return reasons


def build_plan(ctx: Context, r: Resource, override: SourceProfile | None = None,
               revision: str | None = None) -> ReleasePlan:
    """The release of the resource's configuration, or of `override` (another image or ref),
    which the resource adopts only once that release serves; `revision`: of the resource's
    own repository at that commit (a push's), which it does not adopt."""
    profile = source_of(ctx, r, override) if override else r.source
    source = SourceProfile.model_validate(profile)
    if revision is not None and source.kind == "git":
        source = source.model_copy(update={"git_ref": None, "commit_sha": revision})
    runtime = RuntimeProfile.model_validate(r.runtime_profile)
    network = NetworkProfile.model_validate(r.network_profile)
    policy = HealthPolicy.model_validate(r.health_policy) if r.health_policy else HealthPolicy()
    health = HealthSpec(
        enabled=policy.enabled and policy.type == "http",
        path=runtime.health_check_path or policy.http.path,
        expected_status=policy.http.expected_status_code,
        expected_text=policy.http.expected_response_text,
        interval_seconds=policy.interval_seconds, timeout_seconds=policy.timeout_seconds,
        retries=policy.retries, start_period_seconds=policy.start_period_seconds)
    build = None
    if source.kind in ("git", "archive"):
        archive = source.kind == "archive"
        if not archive:
            check_repository(ctx, source.locator)  # type: ignore[arg-type]  # the profile validator requires a git locator
        build = BuildSpec(
            repository=None if archive else source.locator,
            archive=archive_path(ctx, r, source.locator) if archive else None,  # type: ignore[arg-type]  # the profile validator requires an archive locator
            ref=None if archive else (source.git_ref or source.commit_sha),
            base_directory=source.base_directory or ".",
            runtime_profile=runtime,
            base_images=ctx.settings.build_base_images,
            image_repository=built_repository(r.organization_id, r.id),
            timeout_seconds=ctx.settings.build_timeout_seconds,
            target_service=network.target_service_name,
            credential_key=source.metadata.get("gitCredential"))
    return ReleasePlan(
        image=source.image or "", build=build,
        # A built image's start command is in its Dockerfile (generated) or given to it by the
        # build (a Dockerfile of the source's own).
        command=shlex.split(runtime.start_command) if runtime.start_command and not build
        else None,
        internal_port=network.internal_port, health=health, cpu_limit=runtime.cpu_limit,
        memory_limit_mb=runtime.memory_limit_mb, restart_policy=runtime.restart_policy,
        volumes=[Volume(docker_name=v.docker_name, path=a.destination_path,
                        mode="ro" if a.mount_mode == "read-only" else "rw")
                 for a, v in attachments(ctx, r.id)],
        network=f"lb-{r.environment_id}", aliases=[r.slug],
        drain_seconds=ctx.settings.edge_drain_seconds if ctx.settings.edge_enabled else 0,
        source_profile=profile, adopt_source=override is not None,
        target_kind=ctx.db.scalar(select(Server.target_kind).where(Server.id == r.server_id))
        or "single-server",
    )


def snapshot(ctx: Context, r: Resource) -> dict[str, Any]:
    """The variables a deployment of `r` gets, frozen now; secrets stay sealed."""
    return stored(EnvironmentSnapshot(
        id=new_id("snap"), environment_id=r.environment_id, created_at=utcnow().isoformat(),
        precedence=variables.PRECEDENCE,
        variables=[SnapshotVariable(key=v.key, value=v.value, scope=v.scope,
                                    exposure=v.exposure, kind=v.kind,
                                    is_secret=v.kind == "secret")
                   for v in variables.effective(ctx, r.environment_id, r.id)]
        + [SnapshotVariable(key=key, value=value, scope=databases.SNAPSHOT_SCOPE,
                            exposure="runtime", kind="secret" if secret else "plain-config",
                            is_secret=secret)
           for key, value, secret in databases.binding_variables(ctx, r.id)]))


def start(ctx: Context, r: Resource, trigger: str, *, plan: dict[str, Any] | None = None,
          env: dict[str, Any] | None = None, source_deployment: str | None = None,
          rollback_of: str | None = None, source: SourceProfile | None = None,
          revision: str | None = None) -> Deployment:
    """Creates a deployment (of the resource's configuration, or of another `source`) and
    its work item in the caller's transaction."""
    get_environment(ctx, r.environment_id, mutable=True)
    if plan is None:
        blocked = readiness(r, source)
        if blocked:
            raise Conflict("the resource cannot be deployed yet", code=blocked[0].replace("-", "_"),
                           details={"reasonCodes": blocked})
    elif r.lifecycle_status != LifecycleStatus.ACTIVE:
        raise Conflict("the resource is archived", code="resource_archived")
    if ctx.db.scalar(select(Server.lifecycle_status).where(Server.id == r.server_id)) != \
            LifecycleStatus.ACTIVE:
        raise Conflict("the resource's server is deactivated: it takes no new deployments",
                       code="server_inactive")
    d = Deployment(
        id=new_id("dep"), organization_id=r.organization_id, project_id=r.project_id,
        environment_id=r.environment_id, resource_id=r.id, server_id=r.server_id,
        trigger_kind=trigger, source_deployment_id=source_deployment,
        rollback_of_deployment_id=rollback_of, triggered_by=ctx.user_id,
        plan=plan if plan is not None else build_plan(ctx, r, source, revision).model_dump(
            mode="json"),
        environment_snapshot=env if env is not None else snapshot(ctx, r),
    )
    ctx.db.add(d)
    ctx.db.flush()
    journal.append(ctx.db, d.id, f"deployment requested ({trigger})", kind="event",
                   phase="detect", status="created", event_type="deployment-requested")
    ctx.enqueue("deployment", f"deployments.{trigger}", project_id=r.project_id,
                resource_id=r.id, deployment_id=d.id, server_id=r.server_id)
    return d


def get_deployment(ctx: Context, deployment_id: str) -> Deployment:
    d = ctx.db.get(Deployment, deployment_id)
    if d is None or d.organization_id != ctx.org_id:
        raise NotFound("deployment not found", code="deployment_not_found")
    return d


# -- shapes -------------------------------------------------------------------------------------


class LogEntry(Schema):
    timestamp: Timestamp
    source: str
    phase: str
    level: str
    message: str
    masked: bool


def _masked_snapshot(env: dict[str, Any]) -> dict[str, Any]:
    snapshot = EnvironmentSnapshot.model_validate(env)
    for v in snapshot.variables:
        v.value = MASK if v.kind == "secret" else v.value
    return stored(snapshot)


class DeploymentOut(Schema):
    id: str
    project_id: str
    environment_id: str
    resource_id: str
    server_id: str
    destination_id: str
    status: Status
    trigger_kind: str
    source_deployment_id: str | None
    rollback_of_deployment_id: str | None
    source_commit_sha: str | None = None
    runtime_plan: dict[str, Any]
    environment_snapshot: dict[str, Any]
    logs: list[LogEntry] = Field(default_factory=list)
    log_count: int
    created_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None
    archived_at: Timestamp | None
    triggered_by: str | None
    error_code: str | None
    error_message: str | None
    container_name: str | None
    host_port: int | None
    # Where the release answers: `url` publicly (through the edge proxy when this is the
    # resource's current release), `directUrl` on its own loopback port.
    url: str | None
    direct_url: str | None


def runtime_plan(d: Deployment, plan: ReleasePlan) -> dict[str, Any]:
    profile, cluster = plan.source_profile or {}, plan.target_kind == "orchestrator-cluster"
    if plan.build and plan.build.archive:  # named by its id and upload name, never its path
        upload = profile.get("locator") or Path(plan.build.archive).name.split(".")[0]
        source = {"kind": "archive", "locator": upload, "commitSha": plan.commit_sha,
                  "displayName": f"{profile.get('displayName') or 'uploaded source'} "
                                 f"({upload[:12]})"}
    elif plan.build:
        source = {"kind": "git", "locator": plan.build.repository, "commitSha": plan.commit_sha,
                  "displayName": plan.build.repository}
    else:
        source = {"kind": "docker-image", "locator": plan.image, "displayName": plan.image}
    return {
        "id": f"plan_{d.id.split('_')[-1]}", "source": source,
        "buildStrategy": "auto" if plan.build else "prebuilt-image",
        "packagingMode": "compose-stack" if plan.service_name else "single-container",
        "runtimeArtifact": {"kind": "image", "intent": "build-image" if plan.build
                            else "prebuilt-image", "image": plan.image or None},
        "services": [{"name": plan.service_name, "image": plan.image, "web": True}]
        + [{"name": s.name, "image": s.image, "web": False} for s in plan.services]
        if plan.service_name else [],
        "execution": {
            "kind": "swarm-service" if cluster else "docker-container",
            "startCommand": shlex.join(plan.command) if plan.command else None,
            "healthCheckPath": plan.health.path,
            "healthCheck": plan.health.model_dump(mode="json"), "port": plan.internal_port,
            "image": plan.image, "cpuLimit": plan.cpu_limit, "memoryLimitMb": plan.memory_limit_mb,
            "restartPolicy": plan.restart_policy,
            "volumes": [v.model_dump(mode="json") for v in plan.volumes],
            "verificationSteps": [{"kind": "internal-http" if plan.health.enabled
                                   else "container-running", "label": plan.health.path}],
        },
        "target": {"kind": plan.target_kind,
                   "providerKey": "docker-swarm" if cluster else "local-docker",
                   "serverIds": [d.server_id]},
        "steps": ["prepare image", "update the service start-first, task by task",
                  "wait for every replica to pass its health check (else Swarm rolls back)",
                  "switch"] if cluster else
        ["prepare image", "start new release beside the current one", "verify health",
         "switch", "retire the previous release"],
    }


def deployment_out(ctx: Context, d: Deployment, logs: list[LogEntry] | None = None,
                   policies: dict[str, tuple[str, str]] | None = None) -> DeploymentOut:
    """A deployment as the API shows it; `policies` (by server) spare a list the access policy
    look-up of each row."""
    direct = f"http://127.0.0.1:{d.host_port}/" if d.host_port and d.status == "succeeded" \
        else None
    url, plan = direct, ReleasePlan.model_validate(d.plan)
    resource = ctx.db.get(Resource, d.resource_id)
    if answers(d) and d.status == "succeeded" and resource is not None \
            and resource.current_deployment_id == d.id and ctx.settings.edge_enabled:
        if policies is not None and resource.server_id not in policies:
            policies[resource.server_id] = access_policy(ctx.db, resource.server_id)
        generated = generated_url(ctx, resource, (policies or {}).get(resource.server_id))
        url = generated[1] if generated else direct
    return DeploymentOut(
        id=d.id, project_id=d.project_id, environment_id=d.environment_id,
        resource_id=d.resource_id, server_id=d.server_id, destination_id=d.server_id,
        status=d.status, trigger_kind=d.trigger_kind,
        source_deployment_id=d.source_deployment_id,
        rollback_of_deployment_id=d.rollback_of_deployment_id, runtime_plan=runtime_plan(d, plan),
        environment_snapshot=_masked_snapshot(d.environment_snapshot), logs=logs or [],
        log_count=d.entry_count, created_at=d.created_at, started_at=d.started_at,
        finished_at=d.finished_at, archived_at=d.archived_at, triggered_by=d.triggered_by,
        error_code=d.error_code, error_message=d.error_message,
        source_commit_sha=plan.commit_sha,
        container_name=d.container_name, host_port=d.host_port, url=url, direct_url=direct,
    )


# -- create, list, show -------------------------------------------------------------------------


class DeploymentCreate(Schema):
    project_id: Id
    environment_id: Id
    resource_id: Id
    server_id: Id | None = None
    destination_id: Id | None = None
    # Deploy this instead of the configured source; the resource keeps it only once the
    # release serves (a failed deploy of a wrong tag changes nothing).
    source: SourceProfile | None = None


@operation("deployments.create", role="developer", audit="deployment.created")
def create_deployment(ctx: Context, data: DeploymentCreate) -> IdOut:
    """Deploys the resource's current configuration (or `source`); the engine picks it up
    at once."""
    r = get_resource(ctx, data.resource_id)
    if (r.environment_id, r.project_id) != (data.environment_id, data.project_id):
        raise Invalid("the resource does not belong to that project and environment",
                      code="context_mismatch")
    target = data.server_id or data.destination_id
    if target and target != r.server_id:
        raise Invalid("the resource deploys to its own server", code="context_mismatch",
                      details={"serverId": r.server_id})
    d = start(ctx, r, "create", source=data.source)
    ctx.audit(d.id, resourceId=r.id, sourceOverride=data.source is not None)
    return IdOut(id=d.id)


class DeploymentFilter(Schema):
    project_id: Id | None = None
    resource_id: Id | None = None
    include_archived: bool = False
    status: Status | None = None
    statuses: list[Status] | None = None

    @field_validator("statuses", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return value.split(",") if isinstance(value, str) else value


def _filtered(ctx: Context, data: DeploymentFilter):
    query = select(Deployment).where(Deployment.organization_id == ctx.org_id)
    if data.project_id:
        query = query.where(Deployment.project_id == data.project_id)
    if data.resource_id:
        query = query.where(Deployment.resource_id == data.resource_id)
    if not data.include_archived:
        query = query.where(Deployment.archived_at.is_(None))
    wanted = ([data.status] if data.status else []) + (data.statuses or [])
    if wanted:
        query = query.where(Deployment.status.in_(wanted))
    return query


@operation("deployments.count")
def count_deployments(ctx: Context, data: DeploymentFilter) -> CountOut:
    """How many deployments match."""
    return CountOut(count=ctx.db.scalar(
        select(func.count()).select_from(_filtered(ctx, data).subquery())) or 0)


class DeploymentListIn(DeploymentFilter):
    limit: int = Field(50, gt=0, le=500)


class DeploymentList(Schema):
    items: list[DeploymentOut]


@operation("deployments.list")
def list_deployments(ctx: Context, data: DeploymentListIn) -> DeploymentList:
    """Deployments, newest first (without their logs: see `deployments.logs`)."""
    rows = ctx.db.scalars(_filtered(ctx, data).order_by(Deployment.created_at.desc())
                          .limit(data.limit)).all()
    policies: dict[str, tuple[str, str]] = {}
    with preloaded(ctx, {d.resource_id for d in rows}):
        return DeploymentList(items=[deployment_out(ctx, d, policies=policies) for d in rows])


class DeploymentRef(Schema):
    deployment_id: Id


def _logs(ctx: Context, deployment_id: str, limit: int | None = None) -> list[LogEntry]:
    query = select(DeploymentEntry).where(DeploymentEntry.deployment_id == deployment_id,
                                          DeploymentEntry.kind == "log")
    if limit:
        rows = list(ctx.db.scalars(query.order_by(DeploymentEntry.sequence.desc()).limit(limit)))
        rows.reverse()
    else:
        rows = list(ctx.db.scalars(query.order_by(DeploymentEntry.sequence)))
    return [LogEntry(timestamp=e.emitted_at, source=e.source, phase=e.phase, level=e.level,
                     message=e.message, masked=e.masked) for e in rows]


class DeploymentShow(Schema):
    schema_version: str = "deployments.show/v1"
    deployment: DeploymentOut
    status: dict[str, Any]
    related_context: dict[str, Any]
    timeline: dict[str, Any]
    latest_failure: dict[str, Any] | None
    recovery_summary: dict[str, Any]
    next_actions: list[str]
    section_errors: list[dict[str, Any]] = Field(default_factory=list)
    generated_at: Timestamp


@operation("deployments.show")
def show_deployment(ctx: Context, data: DeploymentRef) -> DeploymentShow:
    """One deployment with its timeline, context, latest failure and what can be done next."""
    d = get_deployment(ctx, data.deployment_id)
    project, env = ctx.db.get_one(Project, d.project_id), ctx.db.get_one(Environment,
                                                                         d.environment_id)
    resource, server = ctx.db.get(Resource, d.resource_id), ctx.db.get(Server, d.server_id)
    failure = ctx.db.scalar(select(DeploymentEntry).where(
        DeploymentEntry.deployment_id == d.id, DeploymentEntry.level == "error")
        .order_by(DeploymentEntry.sequence.desc()).limit(1)) if d.status == "failed" else None
    recovery = _recovery(ctx, d)
    actions = ["logs", "events"]
    actions += [a for a, ok in (("cancel", d.status not in TERMINAL),
                                ("retry", recovery["retryable"]),
                                ("redeploy", recovery["redeployable"]),
                                ("rollback", recovery["rollbackReady"])) if ok]
    return DeploymentShow(
        deployment=deployment_out(ctx, d, _logs(ctx, d.id, limit=200)),
        status={"current": d.status, "createdAt": d.created_at, "startedAt": d.started_at,
                "finishedAt": d.finished_at, "rollbackOfDeploymentId": d.rollback_of_deployment_id},
        related_context={
            "project": {"id": project.id, "name": project.name, "slug": project.slug},
            "environment": {"id": env.id, "name": env.name, "kind": env.kind},
            "resource": {"id": d.resource_id, "name": resource.name if resource else None,
                         "slug": resource.slug if resource else None},
            "server": {"id": d.server_id, "name": server.name if server else None}},
        timeline={"createdAt": d.created_at, "startedAt": d.started_at,
                  "finishedAt": d.finished_at, "logCount": d.entry_count},
        latest_failure={"timestamp": failure.emitted_at, "source": failure.source,
                        "phase": failure.phase, "level": failure.level,
                        "message": failure.message} if failure else None,
        recovery_summary={"source": "deployments.recovery-readiness",
                          "retryable": recovery["retryable"],
                          "redeployable": recovery["redeployable"],
                          "rollbackReady": recovery["rollbackReady"],
                          "rollbackCandidateCount": recovery["rollbackCandidateCount"],
                          "blockedReasonCodes": []},
        next_actions=actions, generated_at=utcnow())


class PlanIn(Schema):
    project_id: Id
    environment_id: Id
    resource_id: Id
    server_id: Id
    destination_id: Id | None = None


class PlanOut(Schema):
    schema_version: str = "deployments.plan/v1"
    context: dict[str, Any]
    readiness: dict[str, Any]
    source: dict[str, Any]
    planner: dict[str, Any]
    artifact: dict[str, Any] | None
    commands: list[dict[str, Any]]
    network: dict[str, Any]
    health: dict[str, Any]
    access: dict[str, Any]
    warnings: list[dict[str, Any]] = Field(default_factory=list)
    unsupported_reasons: list[dict[str, Any]] = Field(default_factory=list)
    generated_at: Timestamp


FIXES = {
    "resource-source-missing": "POST /api/resources/{id}/source with a docker-image source",
    "resource-archived": "deploy another resource; archived ones are read-only",
    "source-kind-not-supported-yet": "use a docker-image source",
}


def _inspect(spec: BuildSpec, blocked: list[str], policy: source_checkout.GitPolicy,
             credential: str | None = None) -> tuple[Detection | None, list[dict[str, str]]]:
    """Detection over a shallow checkout in a temporary folder (nothing is built or kept)."""
    with tempfile.TemporaryDirectory(prefix="launchbay-plan-") as folder:
        try:
            if spec.archive:
                source_checkout.unpack(Path(spec.archive), Path(folder) / "src")
            else:
                source_checkout.checkout(spec.repository, spec.ref, Path(folder) / "src",  # type: ignore[arg-type]  # a git build has a repository
                                         credential, policy)
        except (source_checkout.CheckoutError, OSError) as exc:
            blocked.append("source-unavailable")
            return None, [{"code": "source-unavailable", "message": str(exc)[:500],
                           "fix": "check the repository URL, the ref and its credentials"}]
        found = detect(Path(folder) / "src" / spec.base_directory, spec.runtime_profile,
                       spec.target_service)
    if not found.buildable:
        blocked.extend(p["code"] for p in found.unsupported)
    return found, list(found.unsupported)


def _git_credential(ctx: Context, r: Resource, spec: BuildSpec) -> str | None:
    """The deploy key or token the source names, to look at a private repository."""
    secret = next((v for v in variables.effective(ctx, r.environment_id, r.id)
                   if v.key == spec.credential_key and v.kind == "secret"), None)
    return ctx.secrets.decrypt(secret.value) if secret else None


STRATEGY = {"docker": "dockerfile", "compose": "docker-compose", "static": "static",
            "workspace": "workspace-commands"}


@operation("deployments.plan")
def plan_deployment(ctx: Context, data: PlanIn) -> PlanOut:
    """What a deployment of the resource would do, without creating or running anything."""
    r = get_resource(ctx, data.resource_id)
    env = get_environment(ctx, data.environment_id)
    project = ctx.db.get_one(Project, r.project_id)
    server = ctx.db.get(Server, r.server_id)
    if (r.environment_id, r.project_id) != (env.id, data.project_id):
        raise Invalid("the resource does not belong to that project and environment",
                      code="context_mismatch")
    blocked = readiness(r)
    if env.lifecycle_status != LifecycleStatus.ACTIVE:
        blocked.append(f"environment-{env.lifecycle_status}")
    no_source = any(b.startswith(("resource-source", "source-")) for b in blocked)
    plan = None if no_source else build_plan(ctx, r)
    source = SourceProfile.model_validate(r.source) if r.source else None
    network = NetworkProfile.model_validate(r.network_profile)
    found: Detection | None = None
    problems: list[dict[str, str]] = []
    if plan and plan.build:
        credential = _git_credential(ctx, r, plan.build)
        ctx.end_reads()  # the checkout may take a while
        found, problems = _inspect(plan.build, blocked, ctx.settings.git_policy, credential)
    commands = ([{"kind": kind, "command": command, "source": "detected"}
                 for kind, command in (("install", found.install_command),
                                       ("build", found.build_command),
                                       ("start", found.start_command)) if command]
                if found else
                [{"kind": "start", "command": shlex.join(plan.command),
                  "source": "resource-runtime-profile"}] if plan and plan.command else [])
    if found:
        reasoning = found.reasoning
    elif source and source.kind == "docker-image":
        reasoning = [f"the source is the prebuilt image {source.image}; nothing is built"]
    else:
        reasoning = ["no runnable source yet"]
    return PlanOut(
        context={"projectId": project.id, "environmentId": env.id, "resourceId": r.id,
                 "serverId": r.server_id, "destinationId": r.server_id,
                 "projectName": project.name, "environmentName": env.name,
                 "resourceName": r.name, "serverName": server.name if server else None},
        readiness={"status": "ready" if not blocked else "blocked", "ready": not blocked,
                   "reasonCodes": blocked},
        source={"kind": source.kind if source else None,
                "displayName": (source.locator or source.image) if source else None,
                "locator": (source.locator or source.image) if source else None,
                "runtimeFamily": found.runtime_family if found else
                ("container-image" if source else None),
                "framework": found.framework if found else None,
                "packageManager": found.package_manager if found else None,
                "detectedFiles": found.detected_files if found else [],
                "detectedScripts": found.detected_scripts if found else [],
                "dockerfilePath": found.dockerfile_path if found else None,
                "composeFilePath": found.compose_file_path if found else None,
                "reasoning": reasoning},
        planner={"plannerKey": "auto" if found else "prebuilt-image",
                 "supportTier": "first-class",
                 "buildStrategy": STRATEGY.get(found.runtime_family, "auto")
                 if found else "prebuilt-image",
                 "packagingMode": "compose-stack" if found and found.stack
                 else "single-container",
                 "targetKind": "single-server", "targetProviderKey": "local-docker"},
        artifact={"kind": "image", "runtimeArtifactKind": "image",
                  "runtimeArtifactIntent": "build-image" if found else "prebuilt-image",
                  "image": plan.image or None,
                  "composeFile": found.compose_file_path if found else None,
                  "metadata": {"services": ",".join(x.name for x in found.stack.services)}
                  if found and found.stack else {}} if plan else None,
        commands=commands,
        network=network.model_dump(by_alias=True, mode="json"),
        health={"enabled": plan.health.enabled, "kind": "http", "path": plan.health.path,
                "port": plan.internal_port or (found.port if found else None)}
        if plan else {"enabled": False},
        access={"routeSource": "loopback-port", "hostname": "127.0.0.1", "scheme": "http",
                "routeCount": 1 if network.internal_port else 0, "routeGroupCount": 0},
        unsupported_reasons=[{"code": b, "message": b.replace("-", " "),
                              "fix": FIXES.get(b, "see the resource's profiles")}
                             for b in blocked] + problems,
        generated_at=utcnow())


# -- journal ------------------------------------------------------------------------------------


class DeploymentLogs(Schema):
    deployment_id: str
    logs: list[LogEntry]


@operation("deployments.logs")
def deployment_logs(ctx: Context, data: DeploymentRef) -> DeploymentLogs:
    """The deployment's log lines, in order (secrets masked)."""
    d = get_deployment(ctx, data.deployment_id)
    return DeploymentLogs(deployment_id=d.id, logs=_logs(ctx, d.id))


class EventsIn(DeploymentRef):
    cursor: str | None = Field(None, pattern=r"^\d+$")
    history_limit: int = Field(100, ge=0, le=200)
    include_history: bool = True  # (following: GET /api/deployments/{id}/events/stream)


class StreamEvent(Schema):
    deployment_id: str
    sequence: int
    cursor: str
    emitted_at: Timestamp
    source: str
    event_type: str
    phase: str
    status: str | None
    level: str
    retriable: bool = False
    summary: str


class Envelope(Schema):
    schema_version: str = "deployments.stream-events/v1"
    kind: Literal["event", "log"]
    event: StreamEvent


class EventsOut(Schema):
    deployment_id: str
    envelopes: list[Envelope]
    # Where to resume, and whether the deployment has ended (no more entries will come).
    next_cursor: str | None
    terminal: bool


@operation("deployments.events")
def deployment_events(ctx: Context, data: EventsIn) -> EventsOut:
    """The deployment's events and log lines after `cursor` (a sequence number), in order."""
    d = get_deployment(ctx, data.deployment_id)
    after = int(data.cursor) if data.cursor else 0
    if not data.cursor and not data.include_history:
        after = d.entry_count
    rows = list(ctx.db.scalars(select(DeploymentEntry).where(
        DeploymentEntry.deployment_id == d.id, DeploymentEntry.sequence > after)
        .order_by(DeploymentEntry.sequence).limit(data.history_limit or 200)))
    envelopes = [Envelope(kind="event" if e.kind == "event" else "log", event=StreamEvent(
        deployment_id=d.id, sequence=e.sequence, cursor=str(e.sequence), emitted_at=e.emitted_at,
        source="domain-event" if e.kind == "event" else e.source,
        event_type=e.event_type or "log", phase=e.phase, status=e.status, level=e.level,
        summary=e.message)) for e in rows]
    last = rows[-1].sequence if rows else after
    return EventsOut(deployment_id=d.id, envelopes=envelopes,
                     next_cursor=str(last) if last else None,
                     terminal=d.status in TERMINAL and last >= d.entry_count)


# -- recovery -----------------------------------------------------------------------------------


class CancelIn(DeploymentRef):
    confirm: str = Field(min_length=1, max_length=100)


class Canceled(Schema):
    id: str
    status: Status
    canceled_at: Timestamp | None


@operation("deployments.cancel", role="developer", audit="deployment.cancel-requested")
def cancel_deployment(ctx: Context, data: CancelIn) -> Canceled:
    """Cancels an unfinished deployment (confirm with its id); the current release keeps serving."""
    d = get_deployment(ctx, data.deployment_id)
    if data.confirm != d.id:
        raise Invalid("confirm must be the deployment id", code="confirmation_mismatch")
    d = ctx.db.get_one(Deployment, d.id, with_for_update=True)
    if d.status in TERMINAL:
        raise Conflict(f"the deployment already ended ({d.status})", code="deployment_terminal")
    canceled_at = request_cancel(ctx, d)
    ctx.audit(d.id)
    return Canceled(id=d.id, status=d.status, canceled_at=canceled_at)


def request_cancel(ctx: Context, d: Deployment) -> datetime | None:
    """Cancels a deployment: at once if no worker has it yet (returns when), otherwise by
    asking its worker, which removes the new container and ends it as `canceled`."""
    if d.status == "created":
        d.status, d.finished_at = "canceled", utcnow()
        for work in ctx.db.scalars(select(OperatorWork).where(
                OperatorWork.deployment_id == d.id, OperatorWork.status.in_(OPEN))):
            work.status, work.finished_at = "canceled", utcnow()
        journal.append(ctx.db, d.id, "deployment canceled before it started", kind="event",
                       phase="finish", status="canceled", event_type="deployment-canceled")
        return d.finished_at
    d.status, d.cancel_requested_at = "cancel-requested", utcnow()
    journal.append(ctx.db, d.id, "cancel requested", kind="event", phase="cancel",
                   status="cancel-requested", event_type="deployment-cancel-requested")
    return None


def _candidates(ctx: Context, d: Deployment) -> list[Deployment]:
    """Earlier releases of the resource that can serve again, newest first."""
    return list(ctx.db.scalars(select(Deployment).where(
        Deployment.resource_id == d.resource_id, Deployment.id != d.id,
        Deployment.status.in_(ROLLBACK_TARGETS), Deployment.created_at < d.created_at)
        .order_by(Deployment.created_at.desc())))


def _recovery(ctx: Context, d: Deployment) -> dict[str, Any]:
    resource = ctx.db.get(Resource, d.resource_id)
    active = resource is not None and resource.lifecycle_status == LifecycleStatus.ACTIVE
    candidates = _candidates(ctx, d)
    return {"retryable": active and d.status in ("failed", "canceled"),
            "redeployable": active and d.status in TERMINAL,
            "rollbackReady": active and bool(candidates),
            "rollbackCandidateCount": len(candidates), "candidates": candidates}


@operation("deployments.retry", role="developer", audit="deployment.retried")
def retry_deployment(ctx: Context, data: DeploymentRef) -> IdOut:
    """Runs a failed or canceled deployment's frozen plan again, as a new deployment."""
    d = get_deployment(ctx, data.deployment_id)
    if d.status not in ("failed", "canceled"):
        raise Conflict("only a failed or canceled deployment can be retried",
                       code="deployment_not_retryable")
    new = start(ctx, get_resource(ctx, d.resource_id), "retry", plan=d.plan,
                env=d.environment_snapshot, source_deployment=d.id)
    ctx.audit(new.id, sourceDeploymentId=d.id)
    return IdOut(id=new.id)


class RedeployIn(Schema):
    resource_id: Id


@operation("deployments.redeploy", role="developer", audit="deployment.redeployed")
def redeploy(ctx: Context, data: RedeployIn) -> IdOut:
    """Deploys the resource's current configuration again."""
    r = get_resource(ctx, data.resource_id)
    d = start(ctx, r, "redeploy", source_deployment=r.current_deployment_id)
    ctx.audit(d.id, resourceId=r.id)
    return IdOut(id=d.id)


class RollbackIn(DeploymentRef):
    rollback_candidate_deployment_id: Id | None = None


@operation("deployments.rollback", role="developer", audit="deployment.rolled-back")
def rollback(ctx: Context, data: RollbackIn) -> IdOut:
    """Serves an earlier release again: a new deployment of that release's frozen plan. When it
    succeeds, the deployment rolled back from is marked `rolled-back`."""
    d = get_deployment(ctx, data.deployment_id)
    candidates = _candidates(ctx, d)
    if data.rollback_candidate_deployment_id:
        candidate = next((c for c in candidates
                          if c.id == data.rollback_candidate_deployment_id), None)
        if candidate is None:
            raise Conflict("that deployment is not an earlier successful release of this resource",
                           code="rollback_candidate_invalid")
    elif candidates:
        candidate = candidates[0]
    else:
        raise Conflict("there is no earlier successful release to roll back to",
                       code="no_rollback_candidate")
    new = start(ctx, get_resource(ctx, d.resource_id), "rollback",
                plan={**candidate.plan, "adopt_source": True},
                env=candidate.environment_snapshot, source_deployment=candidate.id,
                rollback_of=d.id)
    ctx.audit(new.id, rollbackOf=d.id, candidate=candidate.id)
    return IdOut(id=new.id)


class ReadinessIn(DeploymentRef):
    resource_id: Id | None = None
    include_candidates: bool = True
    max_candidates: int = Field(10, ge=0, le=100)


class RecoveryReadiness(Schema):
    schema_version: str = "deployments.recovery-readiness/v1"
    deployment_id: str
    resource_id: str
    generated_at: Timestamp
    state_version: str
    recoverable: bool
    retryable: bool
    redeployable: bool
    rollback_ready: bool
    rollback_candidate_count: int
    retry: dict[str, Any]
    redeploy: dict[str, Any]
    rollback: dict[str, Any]
    recommended_actions: list[dict[str, Any]]


def _verdict(allowed: bool, operation_key: str, blocked_code: str, why: str) -> dict[str, Any]:
    return {"allowed": allowed, "commandActive": True, "targetOperation": operation_key,
            "reasons": [] if allowed else [{"code": blocked_code, "category": "blocked",
                                            "retriable": False, "recommendation": why}]}


@operation("deployments.recovery-readiness")
def recovery_readiness(ctx: Context, data: ReadinessIn) -> RecoveryReadiness:
    """Whether the deployment can be retried, redeployed or rolled back, and to what."""
    d = get_deployment(ctx, data.deployment_id)
    state = _recovery(ctx, d)
    candidates = state["candidates"][: data.max_candidates] if data.include_candidates else []
    rollback_verdict = _verdict(state["rollbackReady"], "deployments.rollback",
                                "no-rollback-candidate", "deploy successfully at least once")
    rollback_verdict["candidates"] = [
        {"deploymentId": c.id, "finishedAt": c.finished_at, "status": c.status,
         "sourceSummary": ReleasePlan.model_validate(c.plan).image,
         "artifactSummary": ReleasePlan.model_validate(c.plan).image,
         "environmentSnapshotId": EnvironmentSnapshot.model_validate(
             c.environment_snapshot).id,
         "runtimeTargetSummary": c.server_id, "rollbackReady": True, "reasons": []}
        for c in candidates]
    rollback_verdict["recommendedCandidateId"] = candidates[0].id if candidates else None
    actions = [{"kind": "command", "targetOperation": key, "label": label, "safeByDefault": True,
                "commandActive": True} for key, label, ok in (
        ("deployments.retry", "retry", state["retryable"]),
        ("deployments.redeploy", "redeploy", state["redeployable"]),
        ("deployments.rollback", "roll back", state["rollbackReady"])) if ok]
    return RecoveryReadiness(
        deployment_id=d.id, resource_id=d.resource_id, generated_at=utcnow(),
        state_version=f"{d.status}:{d.entry_count}",
        recoverable=state["retryable"] or state["redeployable"] or state["rollbackReady"],
        retryable=state["retryable"], redeployable=state["redeployable"],
        rollback_ready=state["rollbackReady"],
        rollback_candidate_count=state["rollbackCandidateCount"],
        retry=_verdict(state["retryable"], "deployments.retry", "attempt-not-failed",
                       "only failed or canceled deployments are retried"),
        redeploy=_verdict(state["redeployable"], "deployments.redeploy", "attempt-not-terminal",
                          "wait for the deployment to end"),
        rollback=rollback_verdict, recommended_actions=actions)


class ArchiveIn(DeploymentRef):
    confirm: str = Field(min_length=1, max_length=100)


class Archived(Schema):
    id: str
    archived_at: Timestamp


@operation("deployments.archive", role="developer", audit="deployment.archived")
def archive_deployment(ctx: Context, data: ArchiveIn) -> Archived:
    """Hides an ended deployment from default lists; its logs and events are kept."""
    d = get_deployment(ctx, data.deployment_id)
    if data.confirm != d.id:
        raise Invalid("confirm must be the deployment id", code="confirmation_mismatch")
    if d.status not in TERMINAL:
        raise Conflict("only an ended deployment can be archived", code="deployment_active")
    d.archived_at = d.archived_at or utcnow()
    ctx.audit(d.id)
    return Archived(id=d.id, archived_at=d.archived_at)


class PruneIn(Schema):
    before: datetime
    resource_id: Id | None = None
    dry_run: bool = True


class PruneOut(Schema):
    schema_version: str = "deployments.prune/v1"
    before: Timestamp
    resource_id: str | None
    dry_run: bool
    matched_count: int
    pruned_count: int
    guarded_count: int
    affected_deployment_ids: list[str]
    guarded_deployment_ids: list[str]
    pruned_at: Timestamp | None


@operation("deployments.prune", role="admin", audit="deployment.pruned")
def prune_deployments(ctx: Context, data: PruneIn) -> PruneOut:
    """Deletes archived deployments that ended before `before` (a dry run unless told
    otherwise); a resource's current release is never pruned."""
    if data.before.tzinfo is None:
        raise Invalid("Validation failed", details=[
            {"field": "before", "message": "needs a time zone, e.g. 2030-01-01T00:00:00Z"}])
    query = select(Deployment).where(Deployment.organization_id == ctx.org_id,
                                     Deployment.archived_at.is_not(None),
                                     Deployment.finished_at < data.before)
    if data.resource_id:
        query = query.where(Deployment.resource_id == data.resource_id)
    matched = list(ctx.db.scalars(query))
    current = set(ctx.db.scalars(select(Resource.current_deployment_id).where(
        Resource.organization_id == ctx.org_id, Resource.current_deployment_id.is_not(None))))
    guarded = [d.id for d in matched if d.id in current]
    prunable = [d for d in matched if d.id not in current]
    if not data.dry_run:
        for d in prunable:
            ctx.db.delete(d)
    ctx.audit(None, dryRun=data.dry_run, pruned=len(prunable))
    return PruneOut(before=data.before, resource_id=data.resource_id, dry_run=data.dry_run,
                    matched_count=len(matched), pruned_count=0 if data.dry_run else len(prunable),
                    guarded_count=len(guarded), affected_deployment_ids=[d.id for d in prunable],
                    guarded_deployment_ids=guarded,
                    pruned_at=None if data.dry_run else utcnow())
