"""API tokens: scoped bearer secrets acting for their creator in one organization.

A scope is an operation family with an access level (`projects:read`, `deployments:write`,
`projects:*`) or `*`. The token never has more rights than its creator has at the time of use:
the role is looked up on every request.
"""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import field_validator
from sqlalchemy import select

from launchbay.crypto import hash_token, new_token
from launchbay.operations.catalog import CATALOG, Actor, Context, operation, role_in
from launchbay.operations.errors import Forbidden, Invalid, NotFound
from launchbay.operations.identity.accounts import TOKEN_PREFIX
from launchbay.operations.schemas import Field, Id, Name, Schema, Timestamp
from launchbay.store.models import ApiToken, new_id, utcnow

SCOPE = re.compile(r"^(\*|([a-z][a-z-]*):(read|write|\*))$")


def check_scope(scope: str) -> str:
    match = SCOPE.match(scope)
    families = {op.family for op in CATALOG.values()}
    if not match or (match.group(2) and match.group(2) not in families):
        raise ValueError(
            f"unknown scope {scope!r}: use '*' or FAMILY:read|write|* with FAMILY one of "
            + ", ".join(sorted(families))
        )
    return scope


def _covered(actor: Actor, scope: str) -> bool:
    """Whether the caller holds `scope` itself (`FAMILY:*` means the same as `FAMILY:write`)."""
    if scope == "*":
        return actor.scopes is None or "*" in actor.scopes
    family, access = scope.split(":")
    return actor.scope_allows(family, access != "read")


class TokenOut(Schema):
    token_id: str
    organization_id: str
    display_name: str
    status: str
    scopes: list[str]
    secret_suffix: str
    created_at: Timestamp
    expires_at: Timestamp | None
    last_used_at: Timestamp | None
    rotated_at: Timestamp | None
    revoked_at: Timestamp | None
    # Only in the answers to create and rotate: the secret, shown once.
    token: str | None = None


def _out(t: ApiToken, secret: str | None = None) -> TokenOut:
    if t.revoked_at:
        status = "revoked"
    elif t.expires_at and t.expires_at <= utcnow():
        status = "expired"
    else:
        status = "active"
    return TokenOut(token_id=t.id, organization_id=t.organization_id, display_name=t.display_name,
                    status=status, scopes=t.scopes, secret_suffix=t.secret_suffix,
                    created_at=t.created_at, expires_at=t.expires_at, last_used_at=t.last_used_at,
                    rotated_at=t.rotated_at, revoked_at=t.revoked_at, token=secret)


def issue(token: ApiToken) -> str:
    secret = new_token(TOKEN_PREFIX)
    token.token_hash, token.secret_suffix = hash_token(secret), secret[-4:]
    return secret


class TokenList(Schema):
    items: list[TokenOut]


@operation("tokens.list", scope="account")
def list_tokens(ctx: Context, _: Schema) -> TokenList:
    """The caller's API tokens in every organization, newest first."""
    rows = ctx.db.scalars(select(ApiToken).where(ApiToken.user_id == ctx.user_id,
                                                 ApiToken.kind == "api")
                          .order_by(ApiToken.created_at.desc()))
    return TokenList(items=[_out(t) for t in rows])


class TokenCreate(Schema):
    display_name: Name
    scopes: list[str] = Field(min_length=1, max_length=50)
    expires_at: datetime | None = None
    organization_id: Id | None = None

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, scopes: list[str]) -> list[str]:
        return sorted({check_scope(s) for s in scopes})

    @field_validator("expires_at")
    @classmethod
    def _future(cls, value: datetime | None) -> datetime | None:
        return future(value)


def future(value: datetime | None) -> datetime | None:
    """An expiry: with a time zone, and later than now."""
    if value is not None:
        if value.tzinfo is None:
            raise ValueError("needs a time zone, e.g. 2030-01-01T00:00:00Z")
        if value <= utcnow():
            raise ValueError("must be in the future")
    return value


@operation("tokens.create", scope="account", audit="token.created")
def create_token(ctx: Context, data: TokenCreate) -> TokenOut:
    """A new token in the caller's current (or given) organization; the secret is shown once."""
    actor = ctx.actor
    assert actor is not None
    org_id = data.organization_id or actor.organization_id
    if role_in(ctx.db, actor, org_id) is None:
        raise NotFound("organization not found", code="organization_not_found")
    wider = [s for s in data.scopes if not _covered(actor, s)]
    if wider:
        raise Forbidden("a token cannot create a token with wider scopes",
                        code="insufficient_scope", details={"scopes": wider})
    token = ApiToken(id=new_id("tok"), user_id=actor.user_id, organization_id=org_id,
                     display_name=data.display_name, scopes=data.scopes,
                     expires_at=data.expires_at)
    secret = issue(token)
    ctx.db.add(token)
    ctx.db.flush()
    ctx.organization_id = org_id
    ctx.audit(token.id, displayName=token.display_name, scopes=token.scopes)
    return _out(token, secret)


class TokenRef(Schema):
    token_id: Id


def _own(ctx: Context, token_id: str) -> ApiToken:
    token = ctx.db.get(ApiToken, token_id)
    if token is None or token.user_id != ctx.user_id or token.kind != "api":
        raise NotFound("token not found")
    ctx.organization_id = token.organization_id
    return token


@operation("tokens.show", scope="account")
def show_token(ctx: Context, data: TokenRef) -> TokenOut:
    """One of the caller's tokens, without its secret."""
    return _out(_own(ctx, data.token_id))


@operation("tokens.rotate", scope="account", audit="token.rotated")
def rotate_token(ctx: Context, data: TokenRef) -> TokenOut:
    """Replaces the secret; the old one stops working at once."""
    token = _own(ctx, data.token_id)
    secret = reissue(token)
    ctx.audit(token.id)
    return _out(token, secret)


def reissue(token: ApiToken) -> str:
    """A new secret for a live token (API or deploy); the old one stops working at once."""
    if token.revoked_at:
        raise Invalid("a revoked token cannot be rotated", code="token_revoked")
    token.rotated_at = utcnow()
    return issue(token)


@operation("tokens.revoke", scope="account", audit="token.revoked")
def revoke_token(ctx: Context, data: TokenRef) -> TokenOut:
    """Ends a token for good."""
    token = _own(ctx, data.token_id)
    token.revoked_at = token.revoked_at or utcnow()
    ctx.audit(token.id)
    return _out(token)
