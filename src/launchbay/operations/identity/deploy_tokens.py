"""Deploy tokens (seed 004's `deploy-tokens`): bearer secrets for CI that deploy, roll back or
read the logs of the resources they name (directly, or by environment or project), and run
nothing else. Shown once, stored hashed, accepted only in the Authorization header; a
rotation cuts the old secret off at once. A token acts for the admin who made it, within what
that admin may still do; every change it makes is audited with its id.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import field_validator
from sqlalchemy import String, cast, func, select

from launchbay.operations.catalog import Context, operation
from launchbay.operations.errors import Invalid, NotFound
from launchbay.operations.identity.accounts import DEPLOY_COMMANDS
from launchbay.operations.identity.tokens import future, issue, reissue
from launchbay.operations.schemas import Field, Id, Name, Schema, Timestamp
from launchbay.store.models import ApiToken, Environment, Project, Resource, new_id, utcnow

Command = Literal["deploy", "rollback", "logs", "source-link-deploy", "server-config-deploy",
                  "preview-cleanup"]


class DeployScope(Schema):
    project_ids: list[Id] = Field(default_factory=list, max_length=50)
    environment_ids: list[Id] = Field(default_factory=list, max_length=50)
    resource_ids: list[Id] = Field(default_factory=list, max_length=100)
    deployment_target_ids: list[Id] = Field(default_factory=list, max_length=50)
    repository_full_names: list[str] = Field(default_factory=list, max_length=50)
    workflow_commands: list[Command] = Field(min_length=1, max_length=6)


class DeployTokenOut(Schema):
    token_id: str
    organization_id: str
    display_name: str
    status: Literal["active", "revoked", "expired"]
    secret_suffix: str
    scope: DeployScope
    created_at: Timestamp
    expires_at: Timestamp | None
    last_used_at: Timestamp | None
    last_used_address: str | None
    rotated_at: Timestamp | None
    revoked_at: Timestamp | None
    token: str | None = None  # only in the answers to create and rotate: shown once


def _out(t: ApiToken, secret: str | None = None) -> DeployTokenOut:
    status = "revoked" if t.revoked_at else "expired" if t.expires_at and \
        t.expires_at <= utcnow() else "active"
    return DeployTokenOut(
        token_id=t.id, organization_id=t.organization_id, display_name=t.display_name,
        status=status, secret_suffix=t.secret_suffix,
        scope=DeployScope.model_validate(t.targets or {"workflowCommands": ["deploy"]}),
        created_at=t.created_at, expires_at=t.expires_at, last_used_at=t.last_used_at,
        last_used_address=t.last_used_address, rotated_at=t.rotated_at,
        revoked_at=t.revoked_at, token=secret)


class DeployTokenIn(Schema):
    display_name: Name
    scope: DeployScope
    expires_at: datetime | None = None

    @field_validator("expires_at")
    @classmethod
    def _future(cls, value: datetime | None) -> datetime | None:
        return future(value)


@operation("deploy-tokens.create", role="admin", audit="deploy-token.created")
def create(ctx: Context, data: DeployTokenIn) -> DeployTokenOut:
    """A deploy token for the resources named (directly, or by environment or project) and
    the commands given (`deploy`, `rollback`, `logs`); its secret is shown once."""
    s = data.scope
    if not (s.project_ids or s.environment_ids or s.resource_ids):
        raise Invalid("a deploy token names the projects, environments or resources it "
                      "reaches", code="validation_error")
    for model, ids in ((Project, s.project_ids), (Environment, s.environment_ids),
                       (Resource, s.resource_ids)):
        found = ctx.db.scalar(select(func.count()).select_from(model).where(
            model.id.in_(ids), model.organization_id == ctx.org_id))
        if found != len(set(ids)):
            raise NotFound(f"a {model.__tablename__[:-1]} of the scope is not found",
                           code="not_found")
    token = ApiToken(id=new_id("dtk"), user_id=ctx.user_id, organization_id=ctx.org_id,
                     display_name=data.display_name, scopes=["*"], kind="deploy",
                     targets=s.model_dump(mode="json", by_alias=True),
                     expires_at=data.expires_at)
    secret = issue(token)
    ctx.db.add(token)
    ctx.db.flush()
    ctx.audit(token.id, displayName=token.display_name, scope=token.targets)
    return _out(token, secret)


class DeployTokenFilter(Schema):
    status: Literal["active", "revoked"] | None = None
    resource_id: Id | None = None
    limit: int = Field(100, gt=0, le=100)


class DeployTokenList(Schema):
    items: list[DeployTokenOut]


@operation("deploy-tokens.list", role="admin")
def list_tokens(ctx: Context, data: DeployTokenFilter) -> DeployTokenList:
    """The organization's deploy tokens, newest first (never their secrets)."""
    query = select(ApiToken).where(ApiToken.organization_id == ctx.org_id,
                                   ApiToken.kind == "deploy")
    if data.status == "revoked":
        query = query.where(ApiToken.revoked_at.is_not(None))
    elif data.status == "active":
        query = query.where(ApiToken.revoked_at.is_(None))
    if data.resource_id:  # its resources are a list in the token's scope (JSON)
        query = query.where(cast(ApiToken.targets, String).contains(
            f'"{data.resource_id}"', autoescape=True))
    rows = [_out(t) for t in ctx.db.scalars(query.order_by(ApiToken.created_at.desc())
                                            .limit(data.limit))]
    if data.resource_id:
        rows = [t for t in rows if data.resource_id in t.scope.resource_ids]
    return DeployTokenList(items=rows)


class DeployTokenRef(Schema):
    token_id: Id


def _get(ctx: Context, token_id: str) -> ApiToken:
    t = ctx.db.get(ApiToken, token_id)
    if t is None or t.organization_id != ctx.org_id or t.kind != "deploy":
        raise NotFound("deploy token not found", code="not_found")
    return t


@operation("deploy-tokens.show", role="admin")
def show(ctx: Context, data: DeployTokenRef) -> DeployTokenOut:
    """One deploy token (never its secret)."""
    return _out(_get(ctx, data.token_id))


class Confirmation(Schema):
    token_id: Id


class RotateIn(DeployTokenRef):
    confirmation: Confirmation | None = None


@operation("deploy-tokens.rotate", role="admin", audit="deploy-token.rotated")
def rotate(ctx: Context, data: RotateIn) -> DeployTokenOut:
    """A new secret for the token; the old one stops working at once."""
    t = _get(ctx, data.token_id)
    if data.confirmation is not None and data.confirmation.token_id != t.id:
        raise Invalid("the confirmation names another token", code="validation_error")
    secret = reissue(t)
    ctx.audit(t.id)
    return _out(t, secret)


@operation("deploy-tokens.revoke", role="admin", audit="deploy-token.revoked")
def revoke(ctx: Context, data: DeployTokenRef) -> DeployTokenOut:
    """Ends a deploy token for good."""
    t = _get(ctx, data.token_id)
    t.revoked_at = t.revoked_at or utcnow()
    ctx.audit(t.id)
    return _out(t)


assert set(DEPLOY_COMMANDS) == set(Command.__args__)  # type: ignore[attr-defined]
