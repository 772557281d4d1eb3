"""Reading the audit trail that every state-changing operation writes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from launchbay.operations.catalog import Context, operation
from launchbay.operations.errors import NotFound
from launchbay.operations.schemas import Field, Id, Schema, Timestamp
from launchbay.store.models import AuditEvent, utcnow


class AuditItem(Schema):
    audit_event_id: str
    aggregate_id: str | None
    event_type: str
    created_at: Timestamp
    actor_user_id: str | None
    actor_token_id: str | None


class AuditDetail(AuditItem):
    payload: dict[str, Any]
    redacted_fields: list[str]


class AuditFilter(Schema):
    aggregate_id: Id | None = None
    event_type: str | None = Field(None, min_length=1, max_length=100)
    limit: int = Field(50, gt=0, le=100)
    cursor: str | None = Field(None, pattern=r"^\d+$")


class AuditList(Schema):
    schema_version: str = "audit-events.list/v1"
    items: list[AuditItem]
    next_cursor: str | None
    generated_at: Timestamp


def _item(e: AuditEvent) -> dict[str, Any]:
    return dict(audit_event_id=e.id, aggregate_id=e.aggregate_id, event_type=e.event_type,
                created_at=e.created_at, actor_user_id=e.actor_user_id,
                actor_token_id=e.actor_token_id)


@operation("audit-events.list", role="admin")
def list_audit_events(ctx: Context, data: AuditFilter) -> AuditList:
    """The organization's audit events, newest first."""
    query = select(AuditEvent).where(AuditEvent.organization_id == ctx.org_id)
    if data.aggregate_id:
        query = query.where(AuditEvent.aggregate_id == data.aggregate_id)
    if data.event_type:
        query = query.where(AuditEvent.event_type == data.event_type)
    offset = int(data.cursor or 0)
    rows = ctx.db.scalars(query.order_by(AuditEvent.created_at.desc(), AuditEvent.id)
                          .offset(offset).limit(data.limit + 1)).all()
    more = len(rows) > data.limit
    return AuditList(items=[AuditItem(**_item(e)) for e in rows[: data.limit]],
                     next_cursor=str(offset + data.limit) if more else None,
                     generated_at=utcnow())


class AuditRef(Schema):
    audit_event_id: Id


class AuditShow(Schema):
    schema_version: str = "audit-events.show/v1"
    event: AuditDetail


@operation("audit-events.show", role="admin")
def show_audit_event(ctx: Context, data: AuditRef) -> AuditShow:
    """One audit event with its redacted payload."""
    event = ctx.db.get(AuditEvent, data.audit_event_id)
    if event is None or event.organization_id != ctx.org_id:
        raise NotFound("audit event not found")
    return AuditShow(event=AuditDetail(**_item(event), payload=event.payload,
                                       redacted_fields=event.redacted_fields))
