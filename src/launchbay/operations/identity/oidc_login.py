"""Sign-in with OpenID Connect: the authorization-code flow (PKCE, state, nonce) and what a
verified identity means here: a user (created at first sign-in, as a developer of the configured
organization) whose `claims` keep the username and groups the provider gave.

The flow's secrets travel in a `flow` value sealed with the master secret (the face keeps it in a
cookie), so no server-side state is needed between `auth.oidc.start` and `auth.oidc.callback`.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select

from launchbay.crypto import SecretBox, hash_token, new_token
from launchbay.drivers.oidc import OidcClient, OidcError, pkce_pair
from launchbay.operations.catalog import Context, operation
from launchbay.operations.errors import Conflict, Invalid, NotFound, Unauthenticated, Unavailable
from launchbay.operations.identity.accounts import SESSION_PREFIX, sign_in_organization
from launchbay.operations.schemas import Field, Schema, Timestamp
from launchbay.slugs import slugify
from launchbay.store.models import Membership, Organization, Session, User, new_id, utcnow
from launchbay.store.profiles import UserClaims

FLOW_SECONDS = 600  # how long a started sign-in may take at the provider
# Claims about the token rather than the person; not kept in `users.claims`.
_TOKEN_CLAIMS = {"iss", "aud", "exp", "iat", "nbf", "nonce", "at_hash", "c_hash", "auth_time",
                 "sid", "azp", "jti", "acr", "amr"}


def _client(ctx: Context) -> OidcClient:
    if ctx.oidc is None:
        raise NotFound("OpenID Connect sign-in is not configured", code="oidc_not_configured")
    return ctx.oidc


def _box(ctx: Context) -> SecretBox:
    return SecretBox(ctx.settings.secret_key, b"launchbay/oidc-flow/v1")


def _allowed_return(ctx: Context, return_url: str, redirect_uri: str) -> bool:
    """A path on this site, or a URL on this face's origin or a configured one: never an open
    redirect that hands the token to someone else."""
    if return_url.startswith("/") and not return_url.startswith("//") and "\\" not in return_url:
        return True
    parts = urlsplit(return_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    origin = f"{parts.scheme}://{parts.netloc}"
    own = urlsplit(redirect_uri)
    return origin in {f"{own.scheme}://{own.netloc}",
                      *(o.rstrip("/") for o in ctx.settings.oidc_return_origins)}


class StartIn(Schema):
    redirect_uri: str = Field(min_length=1, max_length=2000)
    return_url: str = Field("/", max_length=2000)


class StartOut(Schema):
    authorization_url: str
    flow: str = Field(description="sealed state of this sign-in; give it back to the callback")


@operation("auth.oidc.start", scope="public")
def start(ctx: Context, data: StartIn) -> StartOut:
    """Starts signing in at the OpenID Connect provider: the URL to send the browser to, with
    a fresh state, nonce and PKCE challenge."""
    client = _client(ctx)
    return_url = data.return_url or "/"
    if not _allowed_return(ctx, return_url, data.redirect_uri):
        raise Invalid("return_url is not on this site or an allowed origin", code="bad_return_url")
    state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    verifier, challenge = pkce_pair()
    try:
        url = client.authorization_url(data.redirect_uri, state, nonce, challenge)
    except OidcError as exc:
        raise Unavailable(f"the sign-in provider is unavailable: {exc}") from exc
    flow = _box(ctx).encrypt(json.dumps({
        "state": state, "nonce": nonce, "verifier": verifier, "returnUrl": return_url,
        "redirectUri": data.redirect_uri}))
    return StartOut(authorization_url=url, flow=flow)


class SignedIn(Schema):
    user_id: str
    organization_id: str
    username: str
    groups: list[str]


class CallbackIn(Schema):
    code: str = Field(min_length=1, max_length=4000)
    state: str = Field(min_length=1, max_length=200)
    flow: str = Field("", max_length=8000)
    iss: str | None = Field(None, max_length=2000, description="the issuer the provider named "
                            "in its redirect (RFC 9207), checked when present")
    create_session: bool = False


class CallbackOut(SignedIn):
    id_token: str
    return_url: str
    token: str | None = Field(None, description="a launchbay session, when one was asked for")
    expires_at: Timestamp | None = None


@operation("auth.oidc.callback", scope="public", audit="user.signed-in")
def callback(ctx: Context, data: CallbackIn) -> CallbackOut:
    """Finishes signing in: checks the state, exchanges the code for an id_token, verifies it,
    and provisions the user at first sign-in. Optionally opens a launchbay session."""
    client = _client(ctx)
    try:
        flow = json.loads(_box(ctx).decrypt(data.flow, ttl=FLOW_SECONDS))
    except ValueError:
        raise Invalid("the sign-in expired or was not started here; start again",
                      code="bad_oidc_flow") from None
    if not secrets.compare_digest(flow["state"], data.state):
        raise Invalid("invalid state parameter", code="bad_oidc_state")
    if data.iss is not None and data.iss.rstrip("/") != client.issuer:
        raise Invalid("the answer comes from another issuer", code="bad_oidc_issuer")
    try:
        id_token = client.exchange(data.code, flow["redirectUri"], flow["verifier"])
        claims = client.verify(id_token, nonce=flow["nonce"])
    except OidcError as exc:
        raise Unauthenticated(f"sign-in failed: {exc}", code="oidc_failed") from exc
    signed, _ = _provision(ctx, claims)
    token = expires = None
    if data.create_session:
        token = new_token(SESSION_PREFIX)
        expires = utcnow() + timedelta(hours=ctx.settings.session_ttl_hours)
        ctx.db.add(Session(id=new_id("ses"), user_id=signed.user_id,
                           organization_id=signed.organization_id, token_hash=hash_token(token),
                           client_kind="web", ip_address=ctx.meta.ip_address,
                           user_agent=(ctx.meta.user_agent or "")[:500] or None,
                           expires_at=expires))
    ctx.audit(signed.user_id, method="oidc", session=bool(token))
    return CallbackOut(**signed.model_dump(), id_token=id_token, return_url=flow["returnUrl"],
                       token=token, expires_at=expires)


class TokenIn(Schema):
    id_token: str = Field(min_length=1, max_length=16000)


@operation("auth.oidc.sign-in", scope="public", audit="user.oidc-claims-updated")
def sign_in(ctx: Context, data: TokenIn) -> SignedIn:
    """Who an id_token from the provider is (a Bearer credential of the Dploy face): the user,
    created at first sight; their username and groups are refreshed from the token."""
    try:
        claims = _client(ctx).verify(data.id_token)
    except OidcError as exc:
        raise Unauthenticated(f"invalid id_token: {exc}", code="invalid_token") from exc
    signed, changed = _provision(ctx, claims)
    if changed:
        ctx.audit(signed.user_id, method="oidc")
    else:
        ctx.unchanged = True
    return signed


def _external_id(claims: dict[str, Any]) -> str:
    return f"{claims['iss']}|{claims['sub']}"


def _kept(ctx: Context, claims: dict[str, Any]) -> dict[str, Any]:
    """What `users.claims` keeps: the provider's claims about the person, with the configured
    username and groups claims under `username` and `groups`."""
    groups = claims.get(ctx.settings.oidc_groups_claim) or []
    if isinstance(groups, str):
        groups = [groups]
    return UserClaims.model_validate({
        **{k: v for k, v in claims.items() if k not in _TOKEN_CLAIMS},
        "username": str(claims.get(ctx.settings.oidc_username_claim) or claims["sub"]),
        "groups": [str(g) for g in groups]}).model_dump(mode="json")


def _provision(ctx: Context, claims: dict[str, Any]) -> tuple[SignedIn, bool]:
    """The signed-in user, and whether anything about them changed."""
    org = _organization(ctx)
    ctx.organization_id = org.id
    external = _external_id(claims)
    kept = _kept(ctx, claims)
    user = ctx.db.scalar(select(User).where(User.external_id == external))
    changed = user is None or user.claims != kept
    if user is None:
        user = _link_or_create(ctx, external, kept)
    user.claims = kept
    member = ctx.db.scalar(select(Membership.id).where(
        Membership.user_id == user.id, Membership.organization_id == org.id))
    if member is None:
        changed = True
        ctx.db.add(Membership(id=new_id("mem"), organization_id=org.id, user_id=user.id,
                              role="developer"))
    ctx.db.flush()
    return SignedIn(user_id=user.id, organization_id=org.id, username=kept["username"],
                    groups=kept["groups"]), changed


def _link_or_create(ctx: Context, external: str, kept: dict[str, Any]) -> User:
    """The user of a first sign-in: the existing account with the provider's *verified*
    e-mail address, or a new one (without a password: they sign in at the provider)."""
    email = str(kept.get("email") or "").lower()
    if email and kept.get("email_verified") is True:
        existing = ctx.db.scalar(select(User).where(User.email == email,
                                                    User.external_id.is_(None)))
        if existing is not None:
            existing.external_id = external
            return existing
    if not email or ctx.db.scalar(select(User.id).where(User.email == email)):
        digest = hashlib.sha256(external.encode()).hexdigest()[:8]
        email = f"{slugify(kept['username'], 40)}-{digest}@users.invalid"
    user = User(id=new_id("usr"), email=email, external_id=external, claims=kept,
                display_name=str(kept.get("name") or kept["username"])[:200],
                email_verified=kept.get("email_verified") is True)
    ctx.db.add(user)
    return user


def _organization(ctx: Context) -> Organization:
    org = sign_in_organization(ctx.db, ctx.settings)
    if org is None:
        raise Conflict(f"organization {ctx.settings.oidc_organization} does not exist"
                       if ctx.settings.oidc_organization else
                       "launchbay has no organization yet: create the first admin first",
                       code="oidc_organization_missing")
    return org
