"""Idempotency keys: a state change asked again with the key of an earlier request does
nothing and answers what the first did (a client retrying after a lost answer changes
nothing twice). The same key with another request is refused: 409 `idempotency_key_reused`.

An operation takes a key when its input is `Idempotent`. Keys are per organization and
operation, and remembered for a day."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import delete, select
from sqlalchemy.orm import Session as DbSession

from launchbay.operations.errors import Conflict
from launchbay.operations.schemas import Schema
from launchbay.store.models import IdempotencyKey, utcnow

KEEP = timedelta(hours=24)


class Idempotent(Schema):
    idempotency_key: str | None = Field(None, min_length=1, max_length=200)


def _fingerprint(payload: BaseModel) -> str:
    return hashlib.sha256(payload.model_dump_json(exclude={"idempotency_key"}).encode()
                          ).hexdigest()


def _row(db: DbSession, org_id: str | None, operation: str, key: str
         ) -> IdempotencyKey | None:
    return db.scalar(select(IdempotencyKey).where(
        IdempotencyKey.organization_id == (org_id or ""),
        IdempotencyKey.operation == operation, IdempotencyKey.key == key))


def recall(db: DbSession, org_id: str | None, operation: str, output: type[BaseModel] | None,
           payload: Idempotent) -> tuple[bool, Any]:
    """(True, the first answer) when this key was used for this request already."""
    assert payload.idempotency_key
    row = _row(db, org_id, operation, payload.idempotency_key)
    if row is None:
        return False, None
    if row.created_at < utcnow() - KEEP:
        db.execute(delete(IdempotencyKey).where(
            IdempotencyKey.organization_id == row.organization_id,
            IdempotencyKey.operation == operation, IdempotencyKey.key == row.key))
        return False, None
    if row.fingerprint != _fingerprint(payload):
        raise Conflict("this idempotency key was used for another request",
                       code="idempotency_key_reused")
    if output is None or row.result is None:
        return True, None
    return True, output.model_validate(row.result)


def remember(db: DbSession, org_id: str | None, operation: str, payload: Idempotent,
             result: Any) -> None:
    """Keeps the answer under the key, in the operation's transaction (two concurrent
    requests with one key: the second's commit fails on the key and it answers the first's)."""
    assert payload.idempotency_key
    db.add(IdempotencyKey(
        organization_id=org_id or "", operation=operation, key=payload.idempotency_key,
        fingerprint=_fingerprint(payload),
        result=result.model_dump(mode="json") if isinstance(result, BaseModel) else None))
