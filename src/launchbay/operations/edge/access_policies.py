"""Default access policies: whether resources get generated hostnames, and which, for the whole
system or one server. The template uses {resource}, {environment}, {project}, {baseDomain}."""

from __future__ import annotations

import string
from typing import Literal

from pydantic import field_validator
from sqlalchemy import select

from launchbay.engine.routing import DEFAULT_TEMPLATE
from launchbay.operations.catalog import Context, operation
from launchbay.operations.edge.domains import check_domain
from launchbay.operations.errors import Invalid
from launchbay.operations.schemas import Field, Id, IdOut, Schema, Timestamp
from launchbay.operations.servers import get_server, require_instance_operator
from launchbay.store.models import AccessPolicy, new_id, utcnow

PLACEHOLDERS = {"resource", "environment", "project", "baseDomain"}
ScopeKind = Literal["system", "deployment-target"]


class Scope(Schema):
    kind: ScopeKind = "system"
    server_id: Id | None = None


class PolicyOut(Schema):
    schema_version: str = "default-access-domain-policies.policy/v1"
    id: str
    scope: Scope
    mode: Literal["enabled", "disabled"]
    provider_key: str = "caddy"
    template_ref: str
    updated_at: Timestamp


def _out(p: AccessPolicy) -> PolicyOut:
    return PolicyOut(id=p.id, scope=Scope(kind=p.scope_kind, server_id=p.server_id),
                     mode=p.mode, template_ref=p.template, updated_at=p.updated_at)


class PolicyList(Schema):
    schema_version: str = "default-access-domain-policies.list/v1"
    items: list[PolicyOut]


@operation("default-access-domain-policies.list")
def list_policies(ctx: Context, _: Schema) -> PolicyList:
    """The stored default access policies (none stored: generated hostnames on, by default)."""
    rows = ctx.db.scalars(select(AccessPolicy).order_by(AccessPolicy.scope_kind))
    return PolicyList(items=[_out(p) for p in rows])


class PolicyIn(Schema):
    scope: Scope = Field(default_factory=Scope)
    mode: Literal["enabled", "disabled"]
    provider_key: Literal["caddy"] | None = None  # the one edge proxy there is
    template_ref: str = Field(DEFAULT_TEMPLATE, min_length=3, max_length=300)

    @field_validator("template_ref")
    @classmethod
    def _template(cls, value: str) -> str:
        names = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
        if not names <= PLACEHOLDERS or "resource" not in names:
            raise ValueError("use {resource} and any of {environment}, {project}, {baseDomain}")
        check_domain(value.format(resource="app", environment="prod", project="shop",
                                  baseDomain="example.com"))
        return value


@operation("default-access-domain-policies.configure", role="owner",
           audit="default-access-policy.configured")
def configure_policy(ctx: Context, data: PolicyIn) -> IdOut:
    """Turns generated hostnames on or off, or changes their template, for the system or a
    server; routes follow at once."""
    require_instance_operator(ctx, "the default access policy", "owner")
    server_id = None
    if data.scope.kind == "deployment-target":
        if not data.scope.server_id:
            raise Invalid("Validation failed", details=[
                {"field": "scope.serverId", "message": "required for a deployment target"}])
        server_id = get_server(ctx, data.scope.server_id).id
    policy = ctx.db.scalar(select(AccessPolicy).where(
        AccessPolicy.scope_kind == data.scope.kind,
        AccessPolicy.server_id == server_id if server_id else AccessPolicy.server_id.is_(None)))
    if policy is None:
        policy = AccessPolicy(id=new_id("pol"), scope_kind=data.scope.kind, server_id=server_id)
        ctx.db.add(policy)
    policy.mode, policy.template, policy.updated_at = data.mode, data.template_ref, utcnow()
    ctx.db.flush()
    ctx.enqueue("route-realization", "default-access-domain-policies.configure",
                server_id=server_id)
    ctx.audit(policy.id, scope=data.scope.kind, mode=data.mode, template=data.template_ref)
    return IdOut(id=policy.id)


class ShowIn(Schema):
    scope_kind: ScopeKind = "system"
    server_id: Id | None = None


class PolicyShow(Schema):
    schema_version: str = "default-access-domain-policies.show/v1"
    scope: Scope
    policy: PolicyOut | None


@operation("default-access-domain-policies.show")
def show_policy(ctx: Context, data: ShowIn) -> PolicyShow:
    """The policy stored for one scope (null: none, the defaults apply)."""
    server_id = get_server(ctx, data.server_id).id if data.server_id else None
    policy = ctx.db.scalar(select(AccessPolicy).where(
        AccessPolicy.scope_kind == data.scope_kind,
        AccessPolicy.server_id == server_id if server_id else AccessPolicy.server_id.is_(None)))
    return PolicyShow(scope=Scope(kind=data.scope_kind, server_id=server_id),
                      policy=_out(policy) if policy else None)
