"""Writing audit events, for operations (through their context) and for the engine."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session as DbSession

from launchbay.store.models import AuditEvent, new_id

REDACTED_KEYS = ("value", "password", "token", "secret")


def record(db: DbSession, event_type: str, aggregate_id: str | None, *,
           organization_id: str | None, actor_user_id: str | None = None,
           actor_token_id: str | None = None, **payload: Any) -> AuditEvent:
    """Adds an audit event to the transaction; payload fields that may hold secrets are redacted."""
    redacted = sorted(k for k in payload if any(word in k.lower() for word in REDACTED_KEYS))
    event = AuditEvent(
        id=new_id("aud"), organization_id=organization_id, actor_user_id=actor_user_id,
        actor_token_id=actor_token_id, event_type=event_type, aggregate_id=aggregate_id,
        payload={k: ("[redacted]" if k in redacted else v) for k, v in payload.items()},
        redacted_fields=redacted,
    )
    db.add(event)
    return event
