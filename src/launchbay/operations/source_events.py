"""Push to deploy: auto-deploy policies of resources, and the source events that feed them
(seed 004's `resources/{id}/auto-deploy` and `source-events`).

A webhook delivery is verified against the secret of each enabled policy of the repository it
names (each resource has its own, so one organization's hooks never reach another's
resources): a wrong or missing signature is 401 and nothing is stored; no policy for the
repository is 503. A verified delivery is kept as facts (repository, ref, revision, before,
kind, delivery id; never the payload), deduped by delivery id and then by the same facts within
the policy's window, and answered at once (202); each policy it concerns is then evaluated by
a work item run as the policy's author (`source-events.dispatch`): refs, event kinds, paths
of the real diff of the fetched repository (closed when it cannot be computed), superseded by
a newer push; the outcome, with its reason, is recorded on the event.
"""

from __future__ import annotations

import secrets
from collections import Counter
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, StringConstraints
from sqlalchemy import String, cast, delete, func, select
from sqlalchemy.exc import IntegrityError

from launchbay import webhooks
from launchbay.drivers import source_checkout
from launchbay.drivers.github_app import GitHubError
from launchbay.engine import ledger
from launchbay.operations import integrations, previews, variables
from launchbay.operations.catalog import Context, operation
from launchbay.operations.deployments import start
from launchbay.operations.errors import (
    Conflict,
    Invalid,
    NotFound,
    NotYet,
    Unauthenticated,
    Unavailable,
)
from launchbay.operations.resources import ResourceRef, get_resource
from launchbay.operations.schemas import Field, Id, Schema, Timestamp
from launchbay.store import audit
from launchbay.store.models import (
    AutoDeployPolicy,
    GitHubConnection,
    LifecycleStatus,
    Resource,
    SourceEvent,
    new_id,
    utcnow,
)
from launchbay.store.profiles import SourceProfile

EventKind = Literal["push", "tag"]
KINDS_SHOWN = {"generic": "generic-signed"}


# -- policies -----------------------------------------------------------------------------------


class PolicyIn(Schema):
    trigger_kind: Literal["git-push", "generic-signed-webhook"] = "git-push"
    refs: list[str] = Field(default_factory=list, max_length=20)
    event_kinds: list[EventKind] = Field(default_factory=lambda: list[EventKind](["push"]),
                                         min_length=1, max_length=2)
    include_paths: list[str] = Field(default_factory=list, max_length=50)
    exclude_paths: list[str] = Field(default_factory=list, max_length=50)
    # Checks of GitHub (status contexts or check run names) the commit must have passed; the
    # deploy waits for them (at most `CHECKS_WAIT`), and needs the organization's GitHub App.
    required_checks: list[Annotated[str, StringConstraints(min_length=1, max_length=200)]] = \
        Field(default_factory=list, max_length=20)
    dedupe_window_seconds: int = Field(300, ge=0, le=86400)


class AutoDeployIn(ResourceRef):
    mode: Literal["enable", "disable", "replace", "rotate-secret"]
    policy: PolicyIn | None = None


class WebhookPaths(Schema):
    """Where each git host's webhook is sent (paths of this control plane's address)."""

    github: str
    gitlab: str
    gitea: str
    generic: str


class AutoDeployOut(Schema):
    resource_id: str
    status: Literal["enabled", "disabled"]
    trigger_kind: str
    refs: list[str]
    event_kinds: list[str]
    include_paths: list[str]
    exclude_paths: list[str]
    required_checks: list[str]
    dedupe_window_seconds: int
    source_binding_fingerprint: str
    repository: str
    webhook_paths: WebhookPaths
    # Shown once, when made or rotated: the secret to give the git host's webhook.
    webhook_secret: str | None = None


def _checked(globs: list[str]) -> list[str]:
    for g in globs:
        if g.startswith("/") or ".." in g.split("/") or "\\" in g or not g.strip():
            raise Invalid(f"{g!r} is not a path of the repository (relative, no '..')",
                          code="validation_error")
    return list(dict.fromkeys(globs))


@operation("resources.auto-deploy.configure", role="developer",
           audit="resource.auto-deploy-configured")
def configure(ctx: Context, data: AutoDeployIn) -> AutoDeployOut:
    """Turns the resource's deploys on its repository's pushes on, replaces their policy,
    turns them off, or gives their webhook a new secret (the old one stops working at once).
    The secret is shown once; the git host's webhook is set up with it and one of
    `webhookPaths`."""
    r = get_resource(ctx, data.resource_id, mutable=True)
    p = ctx.db.get(AutoDeployPolicy, r.id)
    source = SourceProfile.model_validate(r.source) if r.source else None
    shown_secret = None
    if data.mode in ("enable", "replace"):
        if data.policy is None:
            raise Invalid("a policy is required to enable or replace", code="validation_error")
        if data.policy.trigger_kind == "git-push" and (source is None or source.kind != "git"):
            raise Conflict("push to deploy needs a git source", code=
                           "resource_auto_deploy_source_missing")
        if p is None:
            shown_secret = secrets.token_urlsafe(32)
            p = AutoDeployPolicy(resource_id=r.id, organization_id=ctx.org_id,
                                 fingerprint=new_id("src"), created_by=ctx.user_id or "",
                                 sealed_webhook_secret=ctx.secrets.encrypt(shown_secret))
            ctx.db.add(p)
        branch = source.git_ref if source and source.kind == "git" else None
        p.trigger_kind, p.status = data.policy.trigger_kind, "enabled"
        p.refs = list(dict.fromkeys(data.policy.refs)) or ([branch] if branch else ["*"])
        p.event_kinds = list(dict.fromkeys(data.policy.event_kinds))
        p.include_paths = _checked(data.policy.include_paths)
        p.exclude_paths = _checked(data.policy.exclude_paths)
        p.required_checks = list(dict.fromkeys(data.policy.required_checks))
        p.dedupe_window_seconds = data.policy.dedupe_window_seconds
        p.repository = webhooks.repository_key(source.locator or "") \
            if source and source.kind == "git" else f"resource/{r.id}"
    elif p is None:
        raise NotFound("the resource has no auto-deploy policy", code="not_found")
    elif data.mode == "disable":
        p.status = "disabled"
    else:
        shown_secret = secrets.token_urlsafe(32)
        p.sealed_webhook_secret = ctx.secrets.encrypt(shown_secret)
    p.updated_at = utcnow()
    ctx.audit(r.id, mode=data.mode, status=p.status, refs=p.refs)
    return _policy_out(ctx, r, p, shown_secret)


class AutoDeployShow(Schema):
    policy: AutoDeployOut | None  # None: the resource does not deploy on pushes


@operation("resources.auto-deploy.show")
def show_policy(ctx: Context, data: ResourceRef) -> AutoDeployShow:
    """The resource's auto-deploy policy, if it has one (never its secret)."""
    r = get_resource(ctx, data.resource_id)
    p = ctx.db.get(AutoDeployPolicy, r.id)
    return AutoDeployShow(policy=_policy_out(ctx, r, p) if p else None)


def _policy_out(ctx: Context, r: Resource, p: AutoDeployPolicy,
                secret: str | None = None) -> AutoDeployOut:
    base = "/api"
    return AutoDeployOut(
        resource_id=r.id, status=p.status, trigger_kind=p.trigger_kind,
        refs=p.refs, event_kinds=p.event_kinds, include_paths=p.include_paths,
        exclude_paths=p.exclude_paths, required_checks=p.required_checks,
        dedupe_window_seconds=p.dedupe_window_seconds,
        source_binding_fingerprint=p.fingerprint, repository=p.repository,
        webhook_paths=WebhookPaths(
            github=f"{base}/integrations/github/source-events",
            gitlab=f"{base}/integrations/gitlab/source-events",
            gitea=f"{base}/integrations/gitea/source-events",
            generic=f"{base}/resources/{r.id}/source-events/generic-signed"),
        webhook_secret=secret)


# -- ingestion ----------------------------------------------------------------------------------


class IngestIn(Schema):
    provider: Literal["github", "gitlab", "gitea", "generic"]
    headers: dict[str, str]
    content: bytes
    resource_id: Id | None = None  # the generic webhook's resource


class IngestOut(Schema):
    status: Literal["accepted", "deduped", "ignored", "ping"]
    source_event_ids: list[str]
    reason: str | None = None


@operation("source-events.ingest", scope="public", audit="source-event.received")
def ingest(ctx: Context, data: IngestIn) -> IngestOut:
    """A git host's webhook delivery (or launchbay's generic signed one): verified, kept as
    facts, deduped, and handed to a work item per policy it concerns."""
    try:
        delivery = webhooks.read(data.provider, data.headers, data.content)
    except webhooks.MalformedDelivery as exc:
        raise Invalid(str(exc), code="validation_error") from None
    query = select(AutoDeployPolicy).where(AutoDeployPolicy.status == "enabled")
    if data.provider == "generic":
        query = query.where(AutoDeployPolicy.resource_id == (data.resource_id or ""))
    else:
        query = query.where(AutoDeployPolicy.repository.in_(delivery.repositories),
                            AutoDeployPolicy.trigger_kind == "git-push")
    candidates = ctx.db.scalars(query).all()
    if not candidates and data.provider == "generic":  # it names a resource, which has none
        raise NotFound("no resource here deploys on signed webhooks", code="not_found")
    if not candidates:
        raise Unavailable("no auto-deploy policy (and so no webhook secret) is set up for "
                          "this repository", code="webhook_secret_missing")
    verified = [p for p in candidates if webhooks.signed_by(
        data.provider, data.headers, data.content, ctx.secrets.decrypt(p.sealed_webhook_secret))]
    if not verified:
        raise Unauthenticated("the delivery's signature does not verify",
                              code="webhook_signature_invalid")
    if delivery.event == "ping":
        ctx.unchanged = True
        return IngestOut(status="ping", source_event_ids=[])
    pr = delivery.pull_request
    if delivery.event not in ("push", "tag", "pull-request") or (
            pr is not None and pr.action not in previews.ACTIONS):
        ctx.unchanged = True
        what = f"pull requests {pr.action}" if pr else f"{delivery.event} events"
        return IngestOut(status="ignored", source_event_ids=[], reason=f"{what} do not deploy")
    resources = {r.id: r for r in ctx.db.scalars(select(Resource).where(
        Resource.id.in_([p.resource_id for p in verified])))}
    ids, statuses = [], set()
    for org_id in sorted({p.organization_id for p in verified}):
        mine = [p for p in verified if p.organization_id == org_id]
        event, fresh = _kept(ctx, org_id, data.provider, delivery, mine, resources)
        ids.append(event.id)
        statuses.add(event.status if fresh else "deduped")
        if fresh and event.status == "accepted":
            for p in mine:
                ledger.enqueue(ctx.db, "operation", "source-events.dispatch",
                               organization_id=org_id, resource_id=p.resource_id, payload={
                                   "key": "source-events.dispatch", "user_id": p.created_by,
                                   "input": {"sourceEventId": event.id,
                                             "resourceId": p.resource_id}})
    ctx.after_commit(ctx.wake)
    ctx.unchanged = not ctx.audited
    return IngestOut(status="accepted" if "accepted" in statuses else "deduped",
                     source_event_ids=ids)


def _kept(ctx: Context, org_id: str, provider: str, delivery: webhooks.Delivery,
          policies: list[AutoDeployPolicy], resources: dict[str, Resource]
          ) -> tuple[SourceEvent, bool]:
    """The organization's event for the delivery, and whether it is new: a delivery already
    received is answered with what was kept; the same facts within the window are kept as
    `deduped` of the first."""
    delivered = select(SourceEvent).where(
        SourceEvent.organization_id == org_id, SourceEvent.source_kind == provider,
        SourceEvent.delivery_id == delivery.delivery_id)
    if (known := ctx.db.scalar(delivered)) is not None:
        return known, False
    window = max(p.dedupe_window_seconds for p in policies)
    repository = policies[0].repository
    pr = delivery.pull_request
    twin = ctx.db.scalar(select(SourceEvent.id).where(
        SourceEvent.organization_id == org_id, SourceEvent.repository == repository,
        SourceEvent.ref == delivery.ref, SourceEvent.revision == delivery.revision,
        SourceEvent.event_kind == delivery.event, SourceEvent.status != "deduped",
        SourceEvent.pull_request_number == (pr.number if pr else None),
        SourceEvent.pull_request_action == (pr.action if pr else None),
        SourceEvent.received_at >= utcnow() - timedelta(seconds=window)).limit(1)) \
        if window else None
    first = resources.get(policies[0].resource_id)
    event = SourceEvent(
        id=new_id("sev"), organization_id=org_id, project_id=first.project_id if first else None,
        source_kind=provider, event_kind=delivery.event, delivery_id=delivery.delivery_id,
        repository=repository, ref=delivery.ref, revision=delivery.revision,
        before_revision=delivery.before, status="deduped" if twin else "accepted",
        dedupe_of_id=twin, resource_ids=[p.resource_id for p in policies], policy_results=[],
        pull_request_number=pr.number if pr else None,
        pull_request_action=pr.action if pr else None, base_ref=pr.base_ref if pr else None,
        head_repository=pr.head_repository if pr else None)
    try:
        with ctx.db.begin_nested():
            ctx.db.add(event)
    except IntegrityError:  # the same delivery at the same moment: the first one stands
        return ctx.db.scalars(delivered).one(), False
    ctx.audited.append(audit.record(
        ctx.db, "source-event.received", event.id, organization_id=org_id, sourceKind=provider,
        ref=event.ref, revision=event.revision, status=event.status))
    return event, True


# -- dispatch -----------------------------------------------------------------------------------


class DispatchIn(Schema):
    source_event_id: Id
    resource_id: Id


class PolicyResult(Schema):
    resource_id: str
    status: Literal["dispatched", "ignored", "superseded", "failed"]
    reason: str | None = None
    deployment_id: str | None = None
    error_code: str | None = None
    preview_environment_id: str | None = None  # of a pull request event


class DispatchOut(Schema):
    result: PolicyResult


def _get_event(ctx: Context, event_id: str) -> SourceEvent:
    event = ctx.db.get(SourceEvent, event_id)
    if event is None or event.organization_id != ctx.org_id:
        raise NotFound("source event not found", code="source_event_not_found")
    return event


@operation("source-events.dispatch", role="developer", audit="source-event.dispatched")
def dispatch(ctx: Context, data: DispatchIn) -> DispatchOut:
    """Evaluates one resource's policy for a source event and, when it matches, deploys the
    pushed commit; the outcome and its reason are recorded on the event. Run by the engine on
    behalf of the policy's author."""
    event = _get_event(ctx, data.source_event_id)
    r = get_resource(ctx, data.resource_id)
    p = ctx.db.get(AutoDeployPolicy, r.id)
    result = _evaluate(ctx, event, r, p)
    if result.status == "dispatched" and event.event_kind == "pull-request":
        outcome = previews.on_pull_request(ctx, event, r)
        result = PolicyResult(resource_id=r.id, **outcome.model_dump())
    elif result.status == "dispatched":
        try:
            d = start(ctx, r, "auto-deploy", revision=event.revision or None)
            result.deployment_id = d.id
            integrations.track(ctx, event.source_kind, event.repository, event.revision, d,
                               context=f"launchbay/{r.slug}")
        except Conflict as exc:
            result.status, result.reason, result.error_code = "failed", exc.message, exc.code
    _record(event, result)
    ctx.audit(event.id, resourceId=r.id, status=result.status, reason=result.reason,
              deploymentId=result.deployment_id)
    return DispatchOut(result=result)


def _evaluate(ctx: Context, event: SourceEvent, r: Resource,
              p: AutoDeployPolicy | None) -> PolicyResult:
    """What the resource's policy makes of the event (`dispatched`: deploy it)."""
    def outcome(status: str, reason: str | None = None) -> PolicyResult:
        return PolicyResult(resource_id=r.id, status=status, reason=reason)

    if p is None or p.status != "enabled":
        return outcome("ignored", "policy-disabled")
    if r.lifecycle_status != LifecycleStatus.ACTIVE:
        return outcome("ignored", "resource-archived")
    if event.event_kind == "pull-request":  # a preview of what would merge into its refs
        return outcome("dispatched") if webhooks.matches(p.refs, event.base_ref or "") \
            else outcome("ignored", "base-ref-not-matched")
    if event.event_kind not in p.event_kinds:
        return outcome("ignored", "event-kind-not-matched")
    if not webhooks.matches(p.refs, event.ref):
        return outcome("ignored", "ref-not-matched")
    if event.revision == webhooks.ZERO:
        return outcome("ignored", "ref-deleted")
    newer = ctx.db.scalars(select(SourceEvent.policy_results).where(
        SourceEvent.organization_id == event.organization_id,
        SourceEvent.repository == event.repository, SourceEvent.ref == event.ref,
        SourceEvent.status == "dispatched", SourceEvent.received_at > event.received_at)).all()
    if any(x.get("resourceId") == r.id and x.get("status") == "dispatched"
           for results in newer for x in results):
        return outcome("superseded", "a newer push of the ref was deployed already")
    if p.include_paths or p.exclude_paths:
        changed = _changed(ctx, r, event)
        if changed is None:
            return outcome("ignored", "paths-unavailable")
        if not webhooks.paths_match(p.include_paths, p.exclude_paths, changed):
            return outcome("ignored", "path-not-matched")
    if p.required_checks:
        verdict = _checks(ctx, event, p.required_checks)
        if verdict != "passed":
            return outcome("ignored", verdict)
    return outcome("dispatched")


CHECKS_WAIT = timedelta(hours=2)  # how long a push waits for its required checks


def _checks(ctx: Context, event: SourceEvent, required: list[str]) -> str:
    """`passed` when every required check of the pushed commit passed on GitHub; the reason
    it does not deploy otherwise (a failed check, no GitHub App: closed). NotYet while one
    still runs, or has not started (the engine asks again), for `CHECKS_WAIT`."""
    c = ctx.db.get(GitHubConnection, ctx.org_id)
    if c is None or event.source_kind != "github":
        return "checks-unavailable"
    app = integrations.app_of_or_refused(ctx, c)
    ctx.end_reads()
    try:
        found = app.checks(previews.full_name(event.repository), event.revision)
    except GitHubError as exc:
        if exc.status in (401, 403, 404, 422):
            return "checks-unavailable"
        found = {}
    if any(found.get(name) == "failed" for name in required):
        return "required-checks-failed"
    if all(found.get(name) == "passed" for name in required):
        return "passed"
    if utcnow() - event.received_at > CHECKS_WAIT:
        return "required-checks-timed-out"
    waiting = [n for n in required if found.get(n) != "passed"]
    raise NotYet(f"waiting for the commit's checks: {', '.join(waiting)}", seconds=15,
                 code="checks_pending")


def _changed(ctx: Context, r: Resource, event: SourceEvent) -> list[str] | None:
    """The files the push changed, from the repository itself (None: they cannot be known,
    so a policy with paths does not deploy)."""
    source = SourceProfile.model_validate(r.source) if r.source else None
    if source is None or source.kind != "git" or not source.locator:
        return None
    key = source.metadata.get("gitCredential")
    found = [v for v in variables.effective(ctx, r.environment_id, r.id) if v.key == key]
    credential = (ctx.secrets.decrypt(found[0].value) if found[0].kind == "secret"
                  else found[0].value) if key and found else None
    ctx.end_reads()  # the fetch takes a while; nothing waits on the store meanwhile
    try:
        return source_checkout.changed_paths(
            source.locator, event.ref, event.event_kind == "tag", event.before_revision,
            event.revision, ctx.settings.data_dir / "workspaces" / f"diff-{event.id}-{r.id}",
            credential, ctx.settings.git_policy)
    except source_checkout.CheckoutError:
        return None


def _record(event: SourceEvent, result: PolicyResult) -> None:
    results = [x for x in event.policy_results if x.get("resourceId") != result.resource_id]
    event.policy_results = [*results, result.model_dump(mode="json", by_alias=True)]
    if len(event.policy_results) >= len(event.resource_ids):
        statuses = {x["status"] for x in event.policy_results}
        event.status = "dispatched" if "dispatched" in statuses else \
            "failed" if "failed" in statuses else "ignored"
        event.dispatched_at = utcnow()


# -- reading, replaying, pruning ----------------------------------------------------------------


class EventOut(Schema):
    source_event_id: str
    project_id: str | None
    resource_ids: list[str]
    source_kind: str
    event_kind: str
    ref: str
    revision: str
    before_revision: str | None
    status: str
    dedupe_status: Literal["new", "duplicate"]
    dedupe_of_source_event_id: str | None
    ignored_reasons: list[str]
    created_deployment_ids: list[str]
    policy_results: list[PolicyResult]
    source_identity: dict[str, str]
    verification: dict[str, str]
    pull_request: PullRequestFacts | None = None
    received_at: Timestamp
    dispatched_at: Timestamp | None


class PullRequestFacts(Schema):
    number: int
    action: str
    base_ref: str | None
    head_repository: str | None
    fork: bool


def _out(e: SourceEvent) -> EventOut:
    results = [PolicyResult.model_validate(x) for x in e.policy_results]
    return EventOut(
        source_event_id=e.id, project_id=e.project_id, resource_ids=e.resource_ids,
        source_kind=KINDS_SHOWN.get(e.source_kind, e.source_kind), event_kind=e.event_kind,
        ref=e.ref, revision=e.revision, before_revision=e.before_revision, status=e.status,
        dedupe_status="duplicate" if e.dedupe_of_id else "new",
        dedupe_of_source_event_id=e.dedupe_of_id,
        ignored_reasons=sorted({x.reason for x in results if x.status != "dispatched"
                                and x.reason}),
        created_deployment_ids=[x.deployment_id for x in results if x.deployment_id],
        policy_results=results, source_identity={"locator": e.repository},
        verification={"status": "verified", "method": "generic-hmac" if e.source_kind ==
                      "generic" else "provider-signature"},
        pull_request=PullRequestFacts(
            number=e.pull_request_number, action=e.pull_request_action or "",
            base_ref=e.base_ref, head_repository=e.head_repository,
            fork=e.head_repository not in (None, "", e.repository))
        if e.pull_request_number is not None else None,
        received_at=e.received_at, dispatched_at=e.dispatched_at)


class EventFilter(Schema):
    project_id: Id | None = None
    resource_id: Id | None = None
    status: Literal["accepted", "deduped", "ignored", "dispatched", "failed"] | None = None
    source_kind: Literal["github", "gitlab", "gitea", "generic-signed"] | None = None
    limit: int = Field(50, gt=0, le=100)


class EventList(Schema):
    items: list[EventOut]
    generated_at: Timestamp


def _filtered(ctx: Context, data: Any) -> Any:
    query = select(SourceEvent).where(SourceEvent.organization_id == ctx.org_id)
    if data.project_id:
        query = query.where(SourceEvent.project_id == data.project_id)
    if data.resource_id:
        query = query.where(cast(SourceEvent.resource_ids, String).like(
            f'%"{data.resource_id}"%'))
    if data.status:
        query = query.where(SourceEvent.status == data.status)
    if data.source_kind:
        query = query.where(SourceEvent.source_kind == ("generic" if data.source_kind ==
                                                        "generic-signed" else data.source_kind))
    return query


@operation("source-events.list")
def list_events(ctx: Context, data: EventFilter) -> EventList:
    """Source events received, newest first, with what came of each."""
    rows = ctx.db.scalars(_filtered(ctx, data).order_by(SourceEvent.received_at.desc())
                          .limit(data.limit)).all()
    return EventList(items=[_out(e) for e in rows], generated_at=utcnow())


class EventRef(Schema):
    source_event_id: Id


@operation("source-events.show")
def show_event(ctx: Context, data: EventRef) -> EventOut:
    """One source event: its facts, dedupe and each policy's outcome."""
    return _out(_get_event(ctx, data.source_event_id))


class ReplayOut(Schema):
    schema_version: str = "source-events.replay/v1"
    source_event_id: str
    status: str
    matched_resource_ids: list[str]
    replayed_at: Timestamp


@operation("source-events.replay", role="developer", audit="source-event.replayed")
def replay(ctx: Context, data: EventRef) -> ReplayOut:
    """Evaluates a kept event again with the policies as they are now (its facts were
    verified when it came; no payload is needed)."""
    event = _get_event(ctx, data.source_event_id)
    query = select(AutoDeployPolicy).where(AutoDeployPolicy.organization_id == ctx.org_id,
                                           AutoDeployPolicy.status == "enabled")
    policies = ctx.db.scalars(query.where(
        AutoDeployPolicy.resource_id.in_(event.resource_ids)) if event.source_kind == "generic"
        else query.where(AutoDeployPolicy.repository == event.repository)).all()
    event.resource_ids = [p.resource_id for p in policies]
    event.policy_results, event.status, event.dispatched_at = [], "accepted", None
    for p in policies:
        ctx.enqueue("operation", "source-events.dispatch", resource_id=p.resource_id, payload={
            "key": "source-events.dispatch", "user_id": ctx.user_id or p.created_by,
            "input": {"sourceEventId": event.id, "resourceId": p.resource_id}})
    ctx.audit(event.id, resourceIds=event.resource_ids)
    return ReplayOut(source_event_id=event.id, status=event.status,
                     matched_resource_ids=event.resource_ids, replayed_at=utcnow())


class PruneIn(Schema):
    before: AwareDatetime
    dry_run: bool = True
    project_id: Id | None = None
    resource_id: Id | None = None
    status: Literal["accepted", "deduped", "ignored", "dispatched", "failed"] | None = None
    source_kind: Literal["github", "gitlab", "gitea", "generic-signed"] | None = None


class PruneOut(Schema):
    schema_version: str = "source-events.prune/v1"
    before: Timestamp
    dry_run: bool
    matched_count: int
    pruned_count: int
    counts_by_status: dict[str, int]
    counts_by_source_kind: dict[str, int]
    pruned_at: Timestamp | None


@operation("source-events.prune", role="admin", audit="source-events.pruned")
def prune(ctx: Context, data: PruneIn) -> PruneOut:
    """Deletes the events received before `before` (a dry run unless `dryRun` is false)."""
    query = _filtered(ctx, data).where(SourceEvent.received_at < data.before)
    found = query.subquery()
    matched = ctx.db.execute(select(found.c.status, found.c.source_kind, func.count())
                             .group_by(found.c.status, found.c.source_kind)).all()
    by_status: Counter[str] = Counter()
    by_kind: Counter[str] = Counter()
    for status, kind, n in matched:
        by_status[status] += n
        by_kind[KINDS_SHOWN.get(kind, kind)] += n
    total = sum(by_status.values())
    if not data.dry_run and total:
        ctx.db.execute(delete(SourceEvent).where(SourceEvent.id.in_(select(found.c.id))))
        ctx.audit(None, before=data.before.isoformat(), pruned=total)
    ctx.unchanged = not ctx.audited
    return PruneOut(before=data.before, dry_run=data.dry_run, matched_count=total,
                    pruned_count=0 if data.dry_run else total,
                    counts_by_status=dict(by_status), counts_by_source_kind=dict(by_kind),
                    pruned_at=None if data.dry_run or not total else utcnow())


# -- source links -------------------------------------------------------------------------------


class Relinked(Schema):
    """Where a source link leads."""

    source_fingerprint: str
    project_id: str
    environment_id: str
    resource_id: str
    server_id: str | None
    destination_id: str | None = None


class SourceLink(Relinked):
    repository: str
    refs: list[str]
    updated_at: Timestamp
    reason: str


def _link(p: AutoDeployPolicy, r: Resource) -> SourceLink:
    return SourceLink(
        source_fingerprint=p.fingerprint, project_id=r.project_id,
        environment_id=r.environment_id, resource_id=r.id, server_id=r.server_id,
        repository=p.repository, refs=p.refs, updated_at=p.updated_at,
        reason=f"pushes to {', '.join(p.refs)} of {p.repository} deploy it ({p.status})")


class LinkFilter(Schema):
    project_id: Id | None = None
    resource_id: Id | None = None
    server_id: Id | None = None
    limit: int = Field(50, gt=0, le=200)


class LinkList(Schema):
    schema_version: str = "source-links.list/v1"
    items: list[SourceLink]


@operation("source-links.list")
def list_links(ctx: Context, data: LinkFilter) -> LinkList:
    """Which repository feeds which resource (each auto-deploy policy is a link)."""
    query = select(AutoDeployPolicy, Resource).join(Resource).where(
        AutoDeployPolicy.organization_id == ctx.org_id)
    for column, value in ((Resource.project_id, data.project_id),
                          (Resource.id, data.resource_id), (Resource.server_id, data.server_id)):
        if value:
            query = query.where(column == value)
    rows = ctx.db.execute(query.order_by(AutoDeployPolicy.updated_at.desc())
                          .limit(data.limit)).all()
    return LinkList(items=[_link(p, r) for p, r in rows])


class LinkRef(Schema):
    source_fingerprint: Id


def _get_link(ctx: Context, fingerprint: str) -> tuple[AutoDeployPolicy, Resource]:
    found = ctx.db.execute(select(AutoDeployPolicy, Resource).join(Resource).where(
        AutoDeployPolicy.fingerprint == fingerprint,
        AutoDeployPolicy.organization_id == ctx.org_id)).first()
    if found is None:
        raise NotFound("source link not found", code="source_link_not_found")
    return found[0], found[1]


class LinkShow(Schema):
    schema_version: str = "source-links.show/v1"
    source_link: SourceLink


@operation("source-links.show")
def show_link(ctx: Context, data: LinkRef) -> LinkShow:
    """One source link."""
    return LinkShow(source_link=_link(*_get_link(ctx, data.source_fingerprint)))


class LinkDeleted(Schema):
    source_fingerprint: str
    deleted: bool


@operation("source-links.delete", role="developer", audit="source-link.deleted")
def delete_link(ctx: Context, data: LinkRef) -> LinkDeleted:
    """Unlinks the repository from the resource: its pushes no longer deploy it (the
    resource's source stays as it is)."""
    p, r = _get_link(ctx, data.source_fingerprint)
    get_resource(ctx, r.id, mutable=True)
    ctx.db.delete(p)
    ctx.audit(r.id, sourceFingerprint=p.fingerprint, repository=p.repository)
    return LinkDeleted(source_fingerprint=p.fingerprint, deleted=True)


class RelinkIn(LinkRef):
    project_id: Id
    environment_id: Id
    resource_id: Id
    server_id: Id | None = None
    expected_current_resource_id: Id | None = None


@operation("source-links.relink", role="developer", audit="source-link.relinked")
def relink(ctx: Context, data: RelinkIn) -> Relinked:
    """Moves a link (its policy and webhook secret) to another resource following the same
    repository: only ever this explicit request, never a deploy, does that."""
    p, current = _get_link(ctx, data.source_fingerprint)
    if data.expected_current_resource_id not in (None, current.id):
        raise Conflict("the link has moved since: look again", code="source_link_changed")
    target = get_resource(ctx, data.resource_id, mutable=True)
    if (target.project_id, target.environment_id) != (data.project_id, data.environment_id) \
            or (data.server_id and target.server_id != data.server_id):
        raise Invalid("the resource is not in that project, environment and server",
                      code="context_mismatch")
    source = SourceProfile.model_validate(target.source) if target.source else None
    if source is None or source.kind != "git" or \
            webhooks.repository_key(source.locator or "") != p.repository:
        raise Conflict("the resource does not follow that repository",
                       code="source_link_repository_mismatch")
    if target.id != current.id:
        if ctx.db.get(AutoDeployPolicy, target.id) is not None:
            raise Conflict("the resource has a link of its own: delete it first",
                           code="source_link_exists")
        moved = AutoDeployPolicy(**{c.key: getattr(p, c.key)
                                    for c in AutoDeployPolicy.__table__.columns})
        ctx.db.delete(p)
        ctx.db.flush()
        moved.resource_id, moved.updated_at = target.id, utcnow()
        ctx.db.add(moved)
    ctx.audit(target.id, sourceFingerprint=p.fingerprint, fromResourceId=current.id)
    return Relinked(source_fingerprint=p.fingerprint, project_id=target.project_id,
                    environment_id=target.environment_id, resource_id=target.id,
                    server_id=target.server_id)
