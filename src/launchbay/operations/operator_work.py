"""The operator work ledger as seen by people: what the engine did, is doing and failed to do,
and the recovery actions an admin can take."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select

from launchbay.engine.journal import TERMINAL
from launchbay.engine.ledger import CLOSED, OPEN
from launchbay.operations.catalog import Context, operation
from launchbay.operations.deployments import request_cancel
from launchbay.operations.errors import Conflict, Invalid, NotFound
from launchbay.operations.schemas import Field, Id, Schema, Timestamp
from launchbay.store.models import Deployment, OperatorWork, WorkKind, new_id, utcnow

Status = Literal["pending", "running", "retry-scheduled", "succeeded", "failed", "canceled",
                 "dead-lettered", "unknown"]


class WorkItem(Schema):
    id: str
    kind: str
    status: str
    operation_key: str
    phase: str | None
    step: str | None
    project_id: str | None
    resource_id: str | None
    deployment_id: str | None
    server_id: str | None
    domain_binding_id: str | None = None
    certificate_id: str | None = None
    attempts: int
    max_attempts: int
    started_at: Timestamp | None
    updated_at: Timestamp
    finished_at: Timestamp | None
    error_code: str | None
    error_category: str | None
    error_message: str | None
    retriable: bool
    next_actions: list[str]
    safe_details: dict[str, Any]


def _out(w: OperatorWork) -> WorkItem:
    actions = {"pending": ["cancel", "dead-letter"], "retry-scheduled": ["cancel", "dead-letter"],
               "running": ["cancel"], "failed": ["retry", "dead-letter", "mark-recovered"],
               "dead-lettered": ["retry", "mark-recovered"], "canceled": ["retry"]}
    return WorkItem(
        id=w.id, kind=w.kind, status=w.status, operation_key=w.operation_key, phase=w.phase,
        step=w.step, project_id=w.project_id, resource_id=w.resource_id,
        deployment_id=w.deployment_id, server_id=w.server_id, attempts=w.attempts,
        max_attempts=w.max_attempts, started_at=w.started_at, updated_at=w.updated_at,
        finished_at=w.finished_at, error_code=w.error_code, error_category=w.error_category,
        error_message=w.error_message,
        retriable=w.status in ("failed", "dead-lettered", "canceled"),
        next_actions=["diagnostic", *actions.get(w.status, [])],
        safe_details={k: str(v) for k, v in w.payload.items()})


def get_work(ctx: Context, work_id: str) -> OperatorWork:
    work = ctx.db.get(OperatorWork, work_id)
    if work is None or work.organization_id != ctx.org_id:
        raise NotFound("work item not found", code="work_not_found")
    return work


class WorkFilter(Schema):
    kind: WorkKind | None = None
    status: Status | None = None
    resource_id: Id | None = None
    server_id: Id | None = None
    deployment_id: Id | None = None
    limit: int = Field(100, gt=0, le=500)


class WorkList(Schema):
    schema_version: str = "operator-work.list/v1"
    items: list[WorkItem]
    generated_at: Timestamp


@operation("operator-work.list")
def list_work(ctx: Context, data: WorkFilter) -> WorkList:
    """The engine's work items, newest first."""
    query = select(OperatorWork).where(OperatorWork.organization_id == ctx.org_id)
    for column, value in ((OperatorWork.kind, data.kind), (OperatorWork.status, data.status),
                          (OperatorWork.resource_id, data.resource_id),
                          (OperatorWork.server_id, data.server_id),
                          (OperatorWork.deployment_id, data.deployment_id)):
        if value:
            query = query.where(column == value)
    rows = ctx.db.scalars(query.order_by(OperatorWork.created_at.desc()).limit(data.limit))
    return WorkList(items=[_out(w) for w in rows], generated_at=utcnow())


class WorkRef(Schema):
    work_id: Id


class WorkShow(Schema):
    schema_version: str = "operator-work.show/v1"
    item: WorkItem
    generated_at: Timestamp


@operation("operator-work.show")
def show_work(ctx: Context, data: WorkRef) -> WorkShow:
    """One work item."""
    return WorkShow(item=_out(get_work(ctx, data.work_id)), generated_at=utcnow())


class Retried(Schema):
    work_id: str
    status: str
    retry_of_work_id: str
    retried_at: Timestamp


@operation("operator-work.retry", role="admin", audit="operator-work.retried")
def retry_work(ctx: Context, data: WorkRef) -> Retried:
    """Queues a failed, dead-lettered or canceled item again, as a new item."""
    work = get_work(ctx, data.work_id)
    if work.status not in ("failed", "dead-lettered", "canceled"):
        raise Conflict(f"a {work.status} item cannot be retried", code="work_not_retryable")
    if work.kind == "deployment":
        raise Conflict("a deployment's work is retried with POST /api/deployments/{id}/retry",
                       code="use_deployment_retry")
    new = ctx.enqueue(work.kind, work.operation_key, project_id=work.project_id,
                      resource_id=work.resource_id, server_id=work.server_id,
                      deployment_id=work.deployment_id, payload=dict(work.payload))
    new.id, new.retry_of_work_id = new_id("wrk"), work.id
    ctx.audit(new.id, retryOf=work.id)
    return Retried(work_id=new.id, status="pending", retry_of_work_id=work.id,
                   retried_at=utcnow())


class ReasonIn(WorkRef):
    reason: str | None = Field(None, max_length=500)


class Canceled(Schema):
    work_id: str
    status: str
    canceled_at: Timestamp


@operation("operator-work.cancel", role="admin", audit="operator-work.canceled")
def cancel_work(ctx: Context, data: ReasonIn) -> Canceled:
    """Cancels an unfinished item; a worker running it stops at its next step. A deployment's
    item cancels the deployment."""
    work = get_work(ctx, data.work_id)
    if work.status not in OPEN:
        raise Conflict(f"the item already ended ({work.status})", code="work_closed")
    if work.deployment_id and work.kind == "deployment":
        d = ctx.db.get(Deployment, work.deployment_id, with_for_update=True)
        if d is not None and d.status not in TERMINAL:
            request_cancel(ctx, d)
    work.status, work.finished_at, work.lease_owner = "canceled", utcnow(), None
    work.error_message = data.reason
    ctx.audit(work.id, reason=data.reason)
    return Canceled(work_id=work.id, status="canceled", canceled_at=work.finished_at)


class DeadLettered(Schema):
    work_id: str
    status: str
    dead_lettered_at: Timestamp


@operation("operator-work.dead-letter", role="admin", audit="operator-work.dead-lettered")
def dead_letter_work(ctx: Context, data: ReasonIn) -> DeadLettered:
    """Parks an item that should not run again until someone looks at it."""
    work = get_work(ctx, data.work_id)
    if work.status in ("running", "succeeded", "dead-lettered"):
        raise Conflict(f"a {work.status} item cannot be dead-lettered", code="work_not_parkable")
    work.status, work.finished_at = "dead-lettered", utcnow()
    work.error_message = data.reason or work.error_message
    ctx.audit(work.id, reason=data.reason)
    return DeadLettered(work_id=work.id, status=work.status, dead_lettered_at=work.finished_at)


class Recovered(Schema):
    work_id: str
    status: str
    recovered_at: Timestamp


@operation("operator-work.mark-recovered", role="admin", audit="operator-work.recovered")
def mark_recovered(ctx: Context, data: WorkRef) -> Recovered:
    """Records that someone fixed by hand what a failed item was for."""
    work = get_work(ctx, data.work_id)
    if work.status not in ("failed", "dead-lettered"):
        raise Conflict("only failed or dead-lettered items are marked recovered",
                       code="work_not_failed")
    work.status = "succeeded"
    ctx.audit(work.id)
    return Recovered(work_id=work.id, status="succeeded", recovered_at=utcnow())


class WorkPrune(Schema):
    before: datetime
    statuses: list[Literal["succeeded", "failed", "canceled", "dead-lettered"]] = [
        "succeeded", "canceled"]
    dry_run: bool = True


class WorkPruned(Schema):
    pruned_count: int
    matched_count: int
    dry_run: bool
    before: Timestamp
    statuses: list[str]
    counts_by_status: dict[str, int]
    pruned_at: Timestamp | None


@operation("operator-work.prune", role="admin", audit="operator-work.pruned")
def prune_work(ctx: Context, data: WorkPrune) -> WorkPruned:
    """Deletes ended items finished before `before` (a dry run unless told otherwise)."""
    if data.before.tzinfo is None:
        raise Invalid("Validation failed", details=[
            {"field": "before", "message": "needs a time zone, e.g. 2030-01-01T00:00:00Z"}])
    rows = list(ctx.db.scalars(select(OperatorWork).where(
        OperatorWork.organization_id == ctx.org_id, OperatorWork.status.in_(data.statuses),
        OperatorWork.status.in_(CLOSED), OperatorWork.finished_at < data.before)))
    counts = {s: sum(1 for w in rows if w.status == s) for s in CLOSED}
    if not data.dry_run:
        for w in rows:
            ctx.db.delete(w)
    ctx.audit(None, dryRun=data.dry_run, matched=len(rows))
    return WorkPruned(pruned_count=0 if data.dry_run else len(rows), matched_count=len(rows),
                      dry_run=data.dry_run, before=data.before, statuses=list(data.statuses),
                      counts_by_status=counts, pruned_at=None if data.dry_run else utcnow())
