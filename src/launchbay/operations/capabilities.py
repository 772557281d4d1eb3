"""`capabilities.query`: what the caller may do, answered from the catalog without running it."""

from __future__ import annotations

from typing import Any

from launchbay.operations.catalog import (
    CATALOG,
    Context,
    credential_refusal,
    operation,
    role_in,
    role_refusal,
)
from launchbay.operations.schemas import Field, Schema

HINTS = {
    "unauthenticated": "log in or send an API token",
    "organization_not_found": "switch to an organization you are a member of",
    "insufficient_scope": "use a token with a wider scope",
}


class Query(Schema):
    operation_key: str = Field(min_length=1, max_length=200)


class CapabilitiesIn(Schema):
    queries: list[Query] = Field(default_factory=list, max_length=500)


class Capability(Schema):
    operation_key: str
    allowed: bool
    mode: str
    hint: str | None = None
    reason: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class CapabilitiesOut(Schema):
    capabilities: list[Capability]


@operation("capabilities.query", scope="public")
def query_capabilities(ctx: Context, data: CapabilitiesIn) -> CapabilitiesOut:
    """For each asked operation (all when none is asked): may the caller run it, and if not, why."""
    actor = ctx.actor
    role = role_in(ctx.db, actor, actor.organization_id) if actor else None
    keys = [q.operation_key for q in data.queries] or sorted(CATALOG)
    answers = []
    for key in keys:
        op = CATALOG.get(key)
        if op is None:
            answers.append(Capability(operation_key=key, allowed=False, mode="unknown",
                                      reason="no such operation"))
            continue
        refused = credential_refusal(op, actor) or role_refusal(op, role, op.role)
        reason = refused.message if refused else None
        hint = HINTS.get(refused.code) if refused else None
        answers.append(Capability(
            operation_key=key, allowed=reason is None,
            mode="unrestricted" if reason is None else "denied", hint=hint, reason=reason,
            details={"requiredRole": op.role, "mutates": op.mutates, "auditEvent": op.audit,
                     "description": op.description.splitlines()[0]},
        ))
    return CapabilitiesOut(capabilities=answers)
