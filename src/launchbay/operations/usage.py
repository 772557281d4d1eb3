"""Usage intents (seed 004): metered events such as a hosted deployment created or deleted,
recorded once per idempotency key, for whoever bills organizations. Recording the same key
again returns the first record, marked as a duplicate."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select

from launchbay.operations.catalog import Context, operation
from launchbay.operations.schemas import Field, Schema, Timestamp
from launchbay.operations.servers import require_instance_operator
from launchbay.store.models import UsageIntent, User, new_id, utcnow


class Quantity(Schema):
    value: float = 1
    unit: str = Field("count", max_length=40)


class UsageRecord(Schema):
    schema_version: str = "usage-intent.record/v1"
    id: str
    idempotency_key: str
    capability_key: str
    status: Literal["accepted", "rejected"]
    reason: str | None
    source: str
    organization_id: str | None
    actor: dict[str, Any]
    resource_refs: dict[str, Any]
    quantity: Quantity
    occurred_at: Timestamp
    recorded_at: Timestamp
    attributes: dict[str, Any]


def _out(u: UsageIntent) -> UsageRecord:
    return UsageRecord(id=u.id, idempotency_key=u.idempotency_key,
                       capability_key=u.capability_key, status=u.status,
                       reason=u.reason, source=u.source, organization_id=u.organization_id,
                       actor=u.actor, resource_refs=u.resource_refs,
                       quantity=Quantity(**u.quantity), occurred_at=u.occurred_at,
                       recorded_at=u.recorded_at, attributes=u.attributes)


def record(ctx: Context, idempotency_key: str, capability_key: str, source: str, *,
           resource_refs: dict[str, Any] | None = None, quantity: Quantity | None = None,
           attributes: dict[str, Any] | None = None,
           occurred_at: datetime | None = None) -> tuple[UsageIntent, bool]:
    """The usage intent of `idempotency_key`, recorded now unless it already was; the flag
    says whether it was a duplicate."""
    found = ctx.db.scalar(select(UsageIntent).where(
        UsageIntent.idempotency_key == idempotency_key))
    if found is not None:
        return found, True
    user = ctx.db.get(User, ctx.actor.user_id) if ctx.actor else None
    u = UsageIntent(
        id=new_id("use"), idempotency_key=idempotency_key, capability_key=capability_key,
        source=source, organization_id=ctx.organization_id,
        actor={"kind": "api-token" if ctx.actor and ctx.actor.token_id else "user",
               "id": (ctx.actor.token_id or ctx.actor.user_id) if ctx.actor else None,
               "userId": user.id if user else None, "email": user.email if user else None},
        resource_refs={"organizationId": ctx.organization_id, **(resource_refs or {})},
        quantity=(quantity or Quantity()).model_dump(), attributes=attributes or {},
        occurred_at=occurred_at or utcnow())
    ctx.db.add(u)
    ctx.db.flush()
    return u, False


class UsageFilter(Schema):
    capability_key: str | None = Field(None, min_length=1, max_length=200)
    source: str | None = Field(None, min_length=1, max_length=100)
    limit: int = Field(100, gt=0, le=500)


class UsageList(Schema):
    records: list[UsageRecord]


@operation("usage-intents.list", role="admin")
def list_usage(ctx: Context, data: UsageFilter) -> UsageList:
    """The organization's usage intents, newest first."""
    query = select(UsageIntent).where(UsageIntent.organization_id == ctx.org_id)
    if data.capability_key:
        query = query.where(UsageIntent.capability_key == data.capability_key)
    if data.source:
        query = query.where(UsageIntent.source == data.source)
    rows = ctx.db.scalars(query.order_by(UsageIntent.recorded_at.desc()).limit(data.limit))
    return UsageList(records=[_out(u) for u in rows])


class UsageIn(Schema):
    idempotency_key: str = Field(min_length=1, max_length=200)
    capability_key: str = Field(min_length=1, max_length=200)
    source: str = Field(min_length=1, max_length=100)
    resource_refs: dict[str, str] = Field(default_factory=dict)
    quantity: Quantity = Field(default_factory=Quantity)
    attributes: dict[str, Any] = Field(default_factory=dict)
    occurred_at: datetime | None = None


class UsageResult(Schema):
    idempotency_key: str
    capability_key: str
    accepted: bool
    duplicate: bool
    status: str
    reason: str | None
    source: str
    record: UsageRecord


class UsageRecorded(Schema):
    result: UsageResult


@operation("usage-intents.record", role="admin", audit="usage-intent.recorded")
def record_usage(ctx: Context, data: UsageIn) -> UsageRecorded:
    """Records a usage intent from outside launchbay (operators), once per idempotency key."""
    require_instance_operator(ctx, "usage records")
    u, duplicate = record(ctx, data.idempotency_key, data.capability_key, data.source,
                          resource_refs=data.resource_refs, quantity=data.quantity,
                          attributes=data.attributes, occurred_at=data.occurred_at)
    ctx.audit(u.id, idempotencyKey=u.idempotency_key, duplicate=duplicate)
    return UsageRecorded(result=UsageResult(
        idempotency_key=u.idempotency_key, capability_key=u.capability_key, accepted=True,
        duplicate=duplicate, status=u.status, reason=u.reason, source=u.source,
        record=_out(u)))

