"""Previews of pull requests (seed 004's preview policies and preview environments, and
`deployments.cleanup-preview`).

A pull request event reaches the resources that deploy from its repository (their auto-deploy
policies verify its signature, `source_events.ingest`); each one's effective preview policy
(its own, else its project's, else `DEFAULTS`) decides what comes of it, in
`source-events.dispatch` run as the policy's author:

- opened, reopened, synchronize: the resource's preview of that pull request is made, or
  updated: an environment cloned from the resource's (`pr-<number>`; its variables, its
  secrets only when the policy allows them and the head is not a fork's; never domains,
  volumes or databases), shared by the previews of the same pull request in that
  environment, holding a copy of the resource that deploys the pull request's head commit;
  it expires `preview_ttl_hours` after its last update;
- closed (merged or not), expiry (`expire_due`, a periodic job) and a manual delete all come
  to `_clean`: in one transaction the copy goes (the engine then removes its containers and
  routes, with retries, `removal.remove_resources`), the environment too once no other preview
  holds it, and the preview stays as `cleaned`, so its history is still there. Cleaning a
  clean preview changes nothing.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import model_validator
from sqlalchemy import func, select

from launchbay.drivers.github_app import GitHubError
from launchbay.engine.routing import access_policy
from launchbay.operations import integrations, variables
from launchbay.operations.catalog import Context, Role, operation
from launchbay.operations.deployments import start
from launchbay.operations.environments import _new_environment
from launchbay.operations.errors import Conflict, Invalid, NotFound
from launchbay.operations.projects import get_project
from launchbay.operations.removal import clean_preview
from launchbay.operations.resources import generated_url, get_resource, preloaded
from launchbay.operations.schemas import Field, Id, IdOut, Schema, Timestamp
from launchbay.store.models import (
    Deployment,
    Environment,
    GitHubConnection,
    LifecycleStatus,
    PreviewEnvironment,
    PreviewPolicy,
    Resource,
    ResourceVariable,
    SourceEvent,
    new_id,
    utcnow,
)
from launchbay.store.profiles import SourceProfile, stored

# -- policies -----------------------------------------------------------------------------------


class PreviewSettings(Schema):
    same_repository_previews: bool = True
    # A fork's pull request runs someone else's code: no preview, or one without secrets.
    fork_previews: Literal["disabled", "without-secrets"] = "disabled"
    # The base environment's secrets in previews of the repository's own branches.
    secret_backed_previews: bool = False
    max_active_previews: int = Field(5, ge=0, le=100)
    preview_ttl_hours: int = Field(72, ge=1, le=24 * 90)


DEFAULTS = PreviewSettings()


class PolicyScope(Schema):
    kind: Literal["project", "resource"]
    project_id: Id
    resource_id: Id | None = None

    @model_validator(mode="after")
    def _resource_named(self) -> PolicyScope:
        if (self.kind == "resource") != (self.resource_id is not None):
            raise ValueError("a resource scope names its resourceId (and only it does)")
        return self


class PolicyConfigure(Schema):
    scope: PolicyScope
    settings: PreviewSettings = Field(default_factory=PreviewSettings)


def _settings_role(data: PolicyConfigure) -> Role:
    """Giving pull requests' code the environment's secrets is an admin's decision."""
    return "admin" if data.settings.secret_backed_previews else "developer"


def _scoped(ctx: Context, scope: PolicyScope) -> tuple[str, str | None]:
    """The scope's (project, resource), both of the caller's organization (404 otherwise)."""
    project = get_project(ctx, scope.project_id)
    if scope.resource_id is None:
        return project.id, None
    r = get_resource(ctx, scope.resource_id)
    if r.project_id != project.id:
        raise Invalid("the resource does not belong to that project", code="context_mismatch")
    return project.id, r.id


def _row(ctx: Context, project_id: str, resource_id: str | None) -> PreviewPolicy | None:
    return ctx.db.scalar(select(PreviewPolicy).where(
        PreviewPolicy.organization_id == ctx.org_id, PreviewPolicy.project_id == project_id,
        PreviewPolicy.resource_id.is_(None) if resource_id is None
        else PreviewPolicy.resource_id == resource_id))


def _settings(p: PreviewPolicy) -> PreviewSettings:
    return PreviewSettings(same_repository_previews=p.same_repository,
                           fork_previews=p.fork_previews,
                           secret_backed_previews=p.secret_backed,
                           max_active_previews=p.max_active, preview_ttl_hours=p.ttl_hours)


@operation("preview-policies.configure", role="developer", audit="preview-policy.configured",
           role_for=_settings_role)
def configure_policy(ctx: Context, data: PolicyConfigure) -> IdOut:
    """Sets whether and how the project's (or one resource's) pull requests get previews; a
    resource's policy wins over its project's."""
    project_id, resource_id = _scoped(ctx, data.scope)
    p = _row(ctx, project_id, resource_id)
    if p is None:
        p = PreviewPolicy(id=new_id("ppl"), organization_id=ctx.org_id, project_id=project_id,
                          resource_id=resource_id, created_by=ctx.user_id)
        ctx.db.add(p)
    s = data.settings
    p.same_repository, p.fork_previews, p.secret_backed = \
        s.same_repository_previews, s.fork_previews, s.secret_backed_previews
    p.max_active, p.ttl_hours, p.updated_at = s.max_active_previews, s.preview_ttl_hours, utcnow()
    ctx.db.flush()
    ctx.audit(p.id, projectId=project_id, resourceId=resource_id,
              **s.model_dump(mode="json", by_alias=True))
    return IdOut(id=p.id)


class NoInput(Schema):
    pass


class PolicyShowIn(Schema):
    scope: PolicyScope


class PolicyShown(Schema):
    id: str
    scope: PolicyScope
    settings: PreviewSettings
    source: Literal["default", "project", "resource"]
    updated_at: Timestamp | None


class PolicyShow(Schema):
    schema_version: str = "preview-policies.show/v1"
    policy: PolicyShown
    generated_at: Timestamp


def effective_policy(ctx: Context, project_id: str, resource_id: str | None
                     ) -> tuple[PreviewPolicy | None, PreviewSettings]:
    """The policy that applies to the resource (or project): its own, else its project's,
    else the defaults (None)."""
    rows = ctx.db.scalars(select(PreviewPolicy).where(
        PreviewPolicy.organization_id == ctx.org_id, PreviewPolicy.project_id == project_id,
        PreviewPolicy.resource_id.is_(None) | (PreviewPolicy.resource_id == resource_id))).all()
    chosen = min(rows, key=lambda p: p.resource_id is None, default=None)
    return chosen, _settings(chosen) if chosen else DEFAULTS


@operation("preview-policies.show")
def show_policy(ctx: Context, data: PolicyShowIn) -> PolicyShow:
    """The preview policy that applies to the project or resource, and where it comes from."""
    project_id, resource_id = _scoped(ctx, data.scope)
    p, settings = effective_policy(ctx, project_id, resource_id)
    return PolicyShow(policy=PolicyShown(
        id=p.id if p else "default", scope=data.scope, settings=settings,
        source="default" if p is None else "project" if p.resource_id is None else "resource",
        updated_at=p.updated_at if p else None), generated_at=utcnow())


# -- previews -----------------------------------------------------------------------------------


class PreviewSource(Schema):
    provider: str
    repository_full_name: str
    head_repository_full_name: str
    pull_request_number: int
    base_ref: str
    head_ref: str
    head_sha: str
    fork: bool
    source_binding_fingerprint: str


class PreviewOut(Schema):
    preview_environment_id: str
    project_id: str
    # The preview's own environment and copy of the resource (None once cleaned up), and the
    # resource previewed.
    environment_id: str | None
    resource_id: str
    preview_resource_id: str | None
    base_environment_id: str
    server_id: str
    destination_id: str
    source: PreviewSource
    status: Literal["active", "cleanup-requested", "cleaned"]
    url: str | None
    latest_deployment_id: str | None
    latest_deployment_status: str | None
    with_secrets: bool
    cleanup_reason: str | None
    created_at: Timestamp
    updated_at: Timestamp
    expires_at: Timestamp
    cleaned_at: Timestamp | None


def full_name(repository: str) -> str:
    """`owner/name` of a `repository_key` (`github.com/owner/name`)."""
    return repository.partition("/")[2] or repository


def _outs(ctx: Context, rows: list[PreviewEnvironment]) -> list[PreviewOut]:
    """Previews with their latest deployment and URL, in a constant number of queries."""
    deployments = {d.id: d for d in ctx.db.scalars(select(Deployment).where(Deployment.id.in_(
        [p.last_deployment_id for p in rows if p.last_deployment_id])))}
    policies: dict[str, tuple[str, str] | None] = {}  # each server's, looked up once
    with preloaded(ctx, [p.preview_resource_id for p in rows if p.preview_resource_id]):
        return [_out(ctx, p, deployments.get(p.last_deployment_id or ""), policies)
                for p in rows]


def _out(ctx: Context, p: PreviewEnvironment, d: Deployment | None,
         policies: dict[str, tuple[str, str] | None]) -> PreviewOut:
    copy = ctx.db.get(Resource, p.preview_resource_id) if p.preview_resource_id else None
    url = None
    if copy is not None and d is not None and d.status == "succeeded" and d.host_port:
        if copy.server_id not in policies:
            policies[copy.server_id] = access_policy(ctx.db, copy.server_id)
        generated = generated_url(ctx, copy, policies[copy.server_id])
        url = generated[1] if generated else f"http://127.0.0.1:{d.host_port}/"
    return PreviewOut(
        preview_environment_id=p.id, project_id=p.project_id,
        environment_id=p.environment_id, resource_id=p.resource_id,
        preview_resource_id=p.preview_resource_id,
        base_environment_id=p.base_environment_id, server_id=p.server_id,
        destination_id=p.server_id, source=PreviewSource(
            provider=p.provider, repository_full_name=full_name(p.repository),
            head_repository_full_name=full_name(p.head_repository or p.repository),
            pull_request_number=p.pull_request_number, base_ref=p.base_ref,
            head_ref=p.head_ref, head_sha=p.head_sha, fork=p.fork,
            source_binding_fingerprint=p.fingerprint),
        status=p.status, url=url,
        latest_deployment_id=p.last_deployment_id,
        latest_deployment_status=d.status if d else None, with_secrets=p.with_secrets,
        cleanup_reason=p.cleanup_reason, created_at=p.created_at, updated_at=p.updated_at,
        expires_at=p.expires_at, cleaned_at=p.cleaned_at)


class PreviewFilter(Schema):
    project_id: Id | None = None
    environment_id: Id | None = None
    resource_id: Id | None = None
    status: Literal["active", "cleanup-requested", "cleaned"] | None = None
    repository_full_name: str | None = Field(None, min_length=1, max_length=500)
    pull_request_number: int | None = Field(None, gt=0)
    limit: int = Field(50, gt=0, le=200)


class PreviewList(Schema):
    schema_version: str = "preview-environments.list/v1"
    items: list[PreviewOut]
    generated_at: Timestamp


@operation("preview-environments.list")
def list_previews(ctx: Context, data: PreviewFilter) -> PreviewList:
    """Previews of pull requests, newest first (cleaned ones too unless `status` says)."""
    query = select(PreviewEnvironment).where(PreviewEnvironment.organization_id == ctx.org_id)
    for column, value in ((PreviewEnvironment.project_id, data.project_id),
                          (PreviewEnvironment.resource_id, data.resource_id),
                          (PreviewEnvironment.status, data.status),
                          (PreviewEnvironment.pull_request_number, data.pull_request_number)):
        if value is not None:
            query = query.where(column == value)
    if data.environment_id:  # the preview's own, or the one it previews
        query = query.where((PreviewEnvironment.environment_id == data.environment_id) |
                            (PreviewEnvironment.base_environment_id == data.environment_id))
    if data.repository_full_name:
        query = query.where(PreviewEnvironment.repository.endswith(
            "/" + data.repository_full_name.strip("/").lower(), autoescape=True))
    rows = list(ctx.db.scalars(query.order_by(PreviewEnvironment.created_at.desc())
                               .limit(data.limit)))
    return PreviewList(items=_outs(ctx, rows), generated_at=utcnow())


class PreviewRef(Schema):
    preview_environment_id: Id


class PreviewShow(Schema):
    schema_version: str = "preview-environments.show/v1"
    preview_environment: PreviewOut
    generated_at: Timestamp


def get_preview(ctx: Context, preview_id: str) -> PreviewEnvironment:
    p = ctx.db.get(PreviewEnvironment, preview_id)
    if p is None or p.organization_id != ctx.org_id:
        raise NotFound("preview environment not found", code="preview_environment_not_found")
    return p


@operation("preview-environments.show")
def show_preview(ctx: Context, data: PreviewRef) -> PreviewShow:
    """One preview: its pull request, status, URL and expiry."""
    return PreviewShow(preview_environment=_outs(ctx, [get_preview(
        ctx, data.preview_environment_id)])[0], generated_at=utcnow())


class CleanupOut(Schema):
    status: Literal["cleaned", "already-clean"]
    preview_environment_id: str
    resource_id: str
    source_binding_fingerprint: str
    preview_environment_status: str
    cleaned_runtime: bool
    removed_route: bool
    removed_source_link: bool
    project_id: str
    environment_id: str | None
    server_id: str
    destination_id: str
    deployment_id: str | None


def _clean(ctx: Context, p: PreviewEnvironment, reason: str) -> CleanupOut:
    environment_id = p.environment_id
    return _report(p, environment_id if clean_preview(ctx, p, reason) else None)


def _report(p: PreviewEnvironment, cleaned_environment: str | None) -> CleanupOut:
    """What a cleanup did: `cleaned_environment` is the environment it removed the preview
    from, None when it found nothing to do."""
    cleaned = cleaned_environment is not None
    return CleanupOut(
        status="cleaned" if cleaned else "already-clean", preview_environment_id=p.id,
        resource_id=p.resource_id, source_binding_fingerprint=p.fingerprint,
        preview_environment_status=p.status, cleaned_runtime=cleaned, removed_route=cleaned,
        removed_source_link=cleaned, project_id=p.project_id,
        environment_id=cleaned_environment or p.environment_id, server_id=p.server_id,
        destination_id=p.server_id, deployment_id=p.last_deployment_id)


class PreviewDelete(PreviewRef):
    resource_id: Id


@operation("preview-environments.delete", role="developer",
           audit="preview-environment.delete-requested")
def delete_preview(ctx: Context, data: PreviewDelete) -> CleanupOut:
    """Cleans up one preview of the resource now (its deployments' history and the audit
    trail stay)."""
    p = get_preview(ctx, data.preview_environment_id)
    if p.resource_id != data.resource_id:
        raise NotFound("preview environment not found", code="preview_environment_not_found")
    ctx.audit(p.id, resourceId=p.resource_id)
    return _clean(ctx, p, "deleted")


class CleanupIn(Schema):
    source_fingerprint: Id


@operation("deployments.cleanup-preview", role="developer", audit="deployment.preview-cleaned")
def cleanup_preview(ctx: Context, data: CleanupIn) -> CleanupOut:
    """Cleans up the preview named by its source fingerprint (`sourceBindingFingerprint`);
    one already clean answers `already-clean`."""
    p = ctx.db.scalar(select(PreviewEnvironment).where(
        PreviewEnvironment.organization_id == ctx.org_id,
        PreviewEnvironment.fingerprint == data.source_fingerprint))
    if p is None:
        raise NotFound("no preview has that source fingerprint", code="source_link_not_found")
    ctx.audit(p.id, resourceId=p.resource_id)
    return _clean(ctx, p, "deleted")


class ExpireIn(Schema):
    preview_environment_id: Id


@operation("preview-environments.expire", role="developer",
           audit="preview-environment.expired")
def expire_preview(ctx: Context, data: ExpireIn) -> CleanupOut:
    """Cleans up a preview whose time is over (run by the control plane on behalf of whoever
    it was made for); one updated meanwhile is left alone."""
    p = get_preview(ctx, data.preview_environment_id)
    if p.status != "active" or p.expires_at > utcnow():
        ctx.unchanged = True
        return _report(p, None)
    ctx.audit(p.id, resourceId=p.resource_id, expiresAt=p.expires_at.isoformat())
    return _clean(ctx, p, "expired")


class ReconcileOut(Schema):
    checked: int
    cleaned: int


@operation("preview-environments.reconcile", role="developer",
           audit="preview-environment.reconciled")
def reconcile(ctx: Context, data: NoInput) -> ReconcileOut:
    """Asks GitHub (through the organization's GitHub App) about each active preview of one of
    its pull requests, and cleans up those whose pull request is closed or gone: a close whose
    webhook never came. Run by the control plane now and then, on behalf of whoever connected
    the app."""
    c = ctx.db.get(GitHubConnection, ctx.org_id)
    active = ctx.db.scalars(select(PreviewEnvironment).where(
        PreviewEnvironment.organization_id == ctx.org_id, PreviewEnvironment.status == "active",
        PreviewEnvironment.provider == "github").limit(500)).all()
    if c is None or not active:
        ctx.unchanged = True
        return ReconcileOut(checked=0, cleaned=0)
    app = integrations.app_of_or_refused(ctx, c)
    asked = {p.id: (full_name(p.repository), p.pull_request_number) for p in active}
    ctx.end_reads()  # GitHub answers in its own time
    states: dict[str, str] = {}
    for preview_id, (repository, number) in asked.items():
        try:
            states[preview_id] = app.pull_request_state(repository, number)
        except GitHubError:
            continue  # asked again next time
    cleaned = 0
    for p in ctx.db.scalars(select(PreviewEnvironment).where(
            PreviewEnvironment.id.in_([i for i, s in states.items() if s in ("closed", "gone")]),
            PreviewEnvironment.status == "active")):
        clean_preview(ctx, p, "closed")
        cleaned += 1
    if cleaned:
        ctx.audit(ctx.org_id, checked=len(states), cleaned=cleaned)
    else:
        ctx.unchanged = True
    return ReconcileOut(checked=len(states), cleaned=cleaned)


def connected(db: Any) -> list[tuple[str, str, dict[str, Any]]]:
    """(user, organization, input) of each organization with a GitHub App and a preview of
    one of its pull requests (`reconcile`)."""
    return [(user, org, {}) for org, user in db.execute(
        select(GitHubConnection.organization_id, GitHubConnection.created_by).where(
            GitHubConnection.organization_id.in_(select(PreviewEnvironment.organization_id)
                                                 .where(PreviewEnvironment.status == "active"))))]


def due(db: Any, now: Any) -> list[tuple[str, str, dict[str, Any]]]:
    """(user, organization, input) of each preview whose time is over (an index's range)."""
    return [(p.created_by, p.organization_id, {"previewEnvironmentId": p.id})
            for p in db.scalars(select(PreviewEnvironment).where(
                PreviewEnvironment.status == "active", PreviewEnvironment.expires_at <= now)
                .limit(500))]


# -- pull request events ------------------------------------------------------------------------


ACTIONS = ("opened", "reopened", "synchronize", "closed")  # what a preview acts on


class Outcome(Schema):
    status: Literal["dispatched", "ignored", "failed"]
    reason: str | None = None
    deployment_id: str | None = None
    preview_environment_id: str | None = None


def on_pull_request(ctx: Context, event: SourceEvent, r: Resource) -> Outcome:
    """What the resource's preview policy makes of a pull request event (`source-events.
    dispatch` records it on the event)."""
    number, action = event.pull_request_number or 0, event.pull_request_action or ""
    p = ctx.db.scalar(select(PreviewEnvironment).where(
        PreviewEnvironment.resource_id == r.id, PreviewEnvironment.repository == event.repository,
        PreviewEnvironment.pull_request_number == number))
    if action == "closed":
        if p is None or p.status == "cleaned":
            return Outcome(status="ignored", reason="no-preview")
        _clean(ctx, p, "closed")
        return Outcome(status="dispatched", reason="preview-cleaned", preview_environment_id=p.id)
    if action not in ("opened", "reopened", "synchronize"):
        return Outcome(status="ignored", reason="pull-request-action-ignored")
    if r.lifecycle_status != LifecycleStatus.ACTIVE:
        return Outcome(status="ignored", reason="resource-archived")
    _, policy = effective_policy(ctx, r.project_id, r.id)
    fork = event.head_repository not in (None, "", event.repository)
    if fork and policy.fork_previews == "disabled":
        return Outcome(status="ignored", reason="fork-previews-disabled")
    if not fork and not policy.same_repository_previews:
        return Outcome(status="ignored", reason="previews-disabled")
    if p is not None and p.status == "active" and p.head_sha == event.revision:
        return Outcome(status="ignored", reason="preview-up-to-date",
                       preview_environment_id=p.id)
    if p is None or p.status == "cleaned":
        active = ctx.db.scalar(select(func.count()).select_from(PreviewEnvironment).where(
            PreviewEnvironment.resource_id == r.id, PreviewEnvironment.status == "active")) or 0
        if active >= policy.max_active_previews:
            return Outcome(status="ignored", reason="preview-limit-reached")
    with_secrets = policy.secret_backed_previews and not fork
    p = _materialized(ctx, p, event, r, fork, with_secrets)
    p.expires_at = utcnow() + timedelta(hours=policy.preview_ttl_hours)
    copy = ctx.db.get_one(Resource, p.preview_resource_id)
    try:
        d = start(ctx, copy, "preview", revision=event.revision)
    except Conflict as exc:
        return Outcome(status="failed", reason=exc.message, preview_environment_id=p.id)
    p.last_deployment_id, p.head_sha, p.updated_at = d.id, event.revision, utcnow()
    integrations.track(ctx, event.source_kind, event.repository, event.revision, d,
                       context=f"launchbay/{r.slug} (preview)")
    return Outcome(status="dispatched", deployment_id=d.id, preview_environment_id=p.id)


def _materialized(ctx: Context, p: PreviewEnvironment | None, event: SourceEvent, r: Resource,
                  fork: bool, with_secrets: bool) -> PreviewEnvironment:
    """The preview of the pull request, with its environment and copy of the resource: made
    (or made again when reopened) from the resource as it is now."""
    number = event.pull_request_number or 0
    if p is None:
        p = PreviewEnvironment(
            id=new_id("pen"), organization_id=ctx.org_id, project_id=r.project_id,
            resource_id=r.id, base_environment_id=r.environment_id, server_id=r.server_id,
            fingerprint=new_id("pvw"), provider=event.source_kind,
            repository=event.repository, pull_request_number=number,
            created_by=ctx.user_id, created_at=utcnow())
        ctx.db.add(p)
    p.head_repository = event.head_repository or event.repository
    p.base_ref, p.head_ref = event.base_ref or "", event.ref
    p.head_sha, p.fork = event.revision, fork
    if p.status == "cleaned" or p.preview_resource_id is None:
        p.status, p.cleanup_reason, p.cleaned_at = "active", None, None
        p.with_secrets = with_secrets
        env = _environment(ctx, r, event, number, with_secrets)
        p.environment_id = env.id
        p.preview_resource_id = _copy(ctx, r, env, event.ref, with_secrets).id
        ctx.audit(p.id, event_type="preview-environment.created", resourceId=r.id,
                  environmentId=env.id, pullRequestNumber=number, fork=fork,
                  withSecrets=with_secrets)
    ctx.db.flush()
    return p


def _environment(ctx: Context, r: Resource, event: SourceEvent, number: int,
                 with_secrets: bool) -> Environment:
    """The pull request's environment beside the resource's: the one another preview of it
    made there already, else a new one with the base's variables."""
    shared = ctx.db.scalar(select(Environment).join(
        PreviewEnvironment, PreviewEnvironment.environment_id == Environment.id).where(
        PreviewEnvironment.base_environment_id == r.environment_id,
        PreviewEnvironment.repository == event.repository,
        PreviewEnvironment.pull_request_number == number,
        PreviewEnvironment.status == "active", PreviewEnvironment.with_secrets == with_secrets))
    if shared is not None:
        return shared
    base = ctx.db.get_one(Environment, r.environment_id)
    taken = set(ctx.db.scalars(select(func.lower(Environment.name)).where(
        Environment.project_id == r.project_id)))
    name = next(n for n in (f"pr-{number}", f"pr-{number}-{base.name}",
                            *(f"pr-{number}-{k}" for k in range(2, 1000)))
                if n.lower() not in taken)
    env = _new_environment(ctx, r.project_id, name, "preview", parent_id=base.id)
    variables.copy_all(ctx, base.id, env.id, secrets=with_secrets)
    return env


def _copy(ctx: Context, r: Resource, env: Environment, head_ref: str,
          with_secrets: bool) -> Resource:
    """The resource again in the preview's environment, following the pull request's branch:
    its profiles and own variables (secrets only `with_secrets`), none of its domains,
    volumes or databases."""
    source = SourceProfile.model_validate(r.source) if r.source else None
    copy = Resource(
        id=new_id("res"), organization_id=r.organization_id, project_id=r.project_id,
        environment_id=env.id, server_id=r.server_id, name=r.name, slug=r.slug, kind=r.kind,
        description=r.description, runtime_profile=r.runtime_profile,
        network_profile=r.network_profile, health_policy=r.health_policy,
        access_profile=r.access_profile,
        source=stored(source.model_copy(update={"git_ref": head_ref, "commit_sha": None}))
        if source and source.kind == "git" else r.source)
    ctx.db.add(copy)
    ctx.db.flush()
    ctx.db.add_all(ResourceVariable(id=new_id("var"), resource_id=copy.id, key=v.key,
                                    exposure=v.exposure, kind=v.kind, scope=v.scope,
                                    value=v.value)
                   for v in variables.listed(ctx, ResourceVariable, r.id)
                   if with_secrets or v.kind != "secret")
    ctx.audit(copy.id, event_type="resource.created", name=copy.name, environmentId=env.id,
              previewOf=r.id)
    return copy

