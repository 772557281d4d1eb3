"""Bootstrap of the first admin, password login, sessions, account profile, and resolving a
bearer secret into an `Actor`."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as DbSession

from launchbay.crypto import (
    generate_password,
    hash_password,
    hash_token,
    new_token,
    verify_password,
)
from launchbay.operations.catalog import Actor, Context, DeployTargets, operation, role_in
from launchbay.operations.errors import Conflict, Invalid, NotFound, RateLimited, Unauthenticated
from launchbay.operations.identity import login_throttle
from launchbay.operations.schemas import (
    Email,
    Empty,
    Field,
    ImageUrl,
    Name,
    Schema,
    Timestamp,
    apply_update,
)
from launchbay.settings import Settings
from launchbay.slugs import unique_slug
from launchbay.store.models import (
    ApiToken,
    Bootstrap,
    Membership,
    Organization,
    Session,
    User,
    new_id,
    utcnow,
)

SESSION_PREFIX, TOKEN_PREFIX = "lbs", "lbt"


class LoginMethod(Schema):
    key: str = "local-password"
    configured: bool = True
    enabled: bool = True
    reason: str | None = None


LOGIN_METHODS = [LoginMethod()]


class BootstrapStatus(Schema):
    bootstrap_required: bool
    first_admin_configured: bool
    organization_configured: bool
    login_methods: list[LoginMethod]
    first_admin_email: str | None = None
    login_url: str
    organization_id: str | None = None
    organization_slug: str | None = None
    next_steps: list[str]


@operation("bootstrap.status", scope="public")
def bootstrap_status(ctx: Context, _: Empty) -> BootstrapStatus:
    """Whether this instance still needs its first admin (who it is: for its operators only)."""
    claim = ctx.db.get(Bootstrap, "first-admin")
    admin = ctx.db.get(User, claim.user_id) if claim and claim.user_id else None
    org = ctx.db.scalar(select(Organization).order_by(Organization.created_at).limit(1))
    operator = ctx.actor is not None and org is not None and \
        role_in(ctx.db, ctx.actor, org.id) in ("admin", "owner")
    return BootstrapStatus(
        bootstrap_required=claim is None,
        first_admin_configured=claim is not None,
        organization_configured=org is not None,
        login_methods=LOGIN_METHODS,
        first_admin_email=admin.email if admin and operator else None,
        login_url="/api/auth/login",
        organization_id=org.id if org else None,
        organization_slug=org.slug if org else None,
        next_steps=["POST /api/bootstrap/auth/first-admin"] if claim is None
        else ["POST /api/auth/login"],
    )


class FirstAdminIn(Schema):
    email: Email
    display_name: Name | None = None
    password: str | None = Field(None, min_length=8, max_length=200)
    organization_name: Name | None = None


class FirstAdminOut(Schema):
    bootstrap_required: bool = False
    created: bool = True
    email: str
    login_methods: list[LoginMethod]
    organization_id: str
    organization_slug: str
    user_id: str
    generated_password: str | None = None
    login_url: str = "/api/auth/login"


@operation("bootstrap.first-admin", scope="public", audit="bootstrap.first-admin-created")
def create_first_admin(ctx: Context, data: FirstAdminIn) -> FirstAdminOut:
    """Creates the first admin and their organization. The request that inserts the
    `first-admin` bootstrap row does; every other one, concurrent or later, gets 409."""
    password = data.password or generate_password()
    generated = None if data.password else password
    password_hash = hash_password(password)
    if ctx.db.get(Bootstrap, "first-admin") is not None:
        raise Conflict("the first admin already exists", code="bootstrap_complete")
    email = data.email.lower()
    user = User(id=new_id("usr"), email=email, password_hash=password_hash,
                display_name=data.display_name or email.split("@")[0])
    try:
        ctx.db.add(Bootstrap(step="first-admin"))
        ctx.db.flush()
    except IntegrityError:
        raise Conflict("the first admin already exists", code="bootstrap_complete") from None
    org = create_organization_for(ctx, user, data.organization_name or "Default")
    ctx.db.get_one(Bootstrap, "first-admin").user_id = user.id
    ctx.organization_id = org.id
    ctx.audit(user.id, email=email, organizationId=org.id)
    return FirstAdminOut(email=email, login_methods=LOGIN_METHODS, organization_id=org.id,
                         organization_slug=org.slug, user_id=user.id, generated_password=generated)


def create_organization_for(ctx: Context, user: User, name: str) -> Organization:
    """A new organization owned by `user` (bootstrap and `organizations.create`)."""
    slug = unique_slug(name, lambda s: ctx.db.scalar(
        select(Organization.id).where(Organization.slug == s)) is not None)
    org = Organization(id=new_id("org"), name=name, slug=slug)
    ctx.db.add_all([user, org])
    ctx.db.flush()
    ctx.db.add(Membership(id=new_id("mem"), organization_id=org.id, user_id=user.id, role="owner"))
    return org


class LoginIn(Schema):
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=200)
    client_kind: str = Field("web", pattern="^(web|cli|api)$")


class LoginOut(Schema):
    token: str
    session_id: str
    expires_at: Timestamp


@operation("auth.login", scope="public", audit="session.created")
def login(ctx: Context, data: LoginIn) -> LoginOut:
    """Password login. Too many attempts for an address, or from a client, lock it out for a
    growing time (see `login_throttle`)."""
    email = data.email.strip().lower()
    attempts = [login_throttle.count(ctx.db, key, limit, ctx.settings)
                for key, limit in login_throttle.keys(email, ctx.meta.ip_address, ctx.settings)]
    ctx.db.commit()  # counted before the password is checked: concurrent attempts see it
    waits = [a.wait_seconds for a in attempts if a.wait_seconds is not None]
    if waits:
        raise RateLimited("too many failed logins; try again later",
                          details={"retryAfterSeconds": int(max(waits)) + 1})
    user = ctx.db.scalar(select(User).where(User.email == email))
    # Checked against a dummy hash for an unknown address: the time taken tells nothing.
    if not verify_password(data.password, user.password_hash if user else None) or user is None:
        raise Unauthenticated("invalid email or password", code="invalid_credentials")
    for attempt in attempts:
        login_throttle.forgive(ctx.db, attempt)
    first_org = ctx.db.scalar(
        select(Membership.organization_id).where(Membership.user_id == user.id)
        .order_by(Membership.joined_at).limit(1)
    )
    token = new_token(SESSION_PREFIX)
    now = utcnow()
    session = Session(
        id=new_id("ses"), user_id=user.id, organization_id=first_org,
        token_hash=hash_token(token), client_kind=data.client_kind,
        ip_address=ctx.meta.ip_address, user_agent=(ctx.meta.user_agent or "")[:500] or None,
        expires_at=now + timedelta(hours=ctx.settings.session_ttl_hours),
    )
    ctx.db.add(session)
    ctx.organization_id = first_org
    ctx.audit(session.id, userId=user.id, clientKind=data.client_kind)
    return LoginOut(token=token, session_id=session.id, expires_at=session.expires_at)


class SessionRevoked(Schema):
    session_id: str
    revoked_at: Timestamp


@operation("auth.logout", scope="account", audit="session.revoked")
def logout(ctx: Context, _: Empty) -> SessionRevoked:
    """Ends the calling session."""
    if not ctx.actor or not ctx.actor.session_id:
        raise Invalid("only a session can log out; revoke API tokens instead", code="not_a_session")
    return _revoke_session(ctx, ctx.actor.session_id)


def _revoke_session(ctx: Context, session_id: str) -> SessionRevoked:
    session = ctx.db.get(Session, session_id)
    if session is None or session.user_id != ctx.user_id:
        raise NotFound("session not found")
    session.revoked_at = session.revoked_at or utcnow()
    ctx.audit(session.id)
    return SessionRevoked(session_id=session.id, revoked_at=session.revoked_at)


class Profile(Schema):
    user_id: str
    email: str
    display_name: str
    avatar_url: str | None
    email_verified: bool
    created_at: Timestamp
    updated_at: Timestamp


def _profile(user: User) -> Profile:
    return Profile(user_id=user.id, email=user.email, display_name=user.display_name,
                   avatar_url=user.avatar_url, email_verified=user.email_verified,
                   created_at=user.created_at, updated_at=user.updated_at)


@operation("account.profile.show", scope="account")
def show_profile(ctx: Context, _: Empty) -> Profile:
    """The caller's profile."""
    return _profile(ctx.db.get_one(User, ctx.user_id))


class ProfileIn(Schema):
    display_name: Name | None = None
    avatar_url: ImageUrl | None = None


@operation("account.profile.update", scope="account", audit="account.profile-updated")
def update_profile(ctx: Context, data: ProfileIn) -> Profile:
    """Changes the caller's display name or avatar."""
    user = ctx.db.get_one(User, ctx.user_id)
    fields = apply_update(user, data, required=("display_name",))
    ctx.db.flush()
    ctx.audit(user.id, fields=fields)
    return _profile(user)


class PasswordIn(Schema):
    current_password: str = Field(min_length=1, max_length=200)
    new_password: str = Field(min_length=8, max_length=200)


@operation("account.password.change", scope="account", audit="account.password-changed")
def change_password(ctx: Context, data: PasswordIn) -> Profile:
    """Replaces the caller's password and ends their other sessions."""
    user = ctx.db.get_one(User, ctx.user_id)
    if not verify_password(data.current_password, user.password_hash):
        raise Invalid("current password is wrong", code="invalid_credentials",
                      details=[{"field": "currentPassword", "message": "does not match"}])
    user.password_hash = hash_password(data.new_password)
    for session in ctx.db.scalars(select(Session).where(
            Session.user_id == user.id, Session.revoked_at.is_(None))):
        if ctx.actor and session.id != ctx.actor.session_id:
            session.revoked_at = utcnow()
    ctx.audit(user.id)
    return _profile(user)


class SessionItem(Schema):
    session_id: str
    user_id: str
    client_kind: str
    display_name: str | None
    created_at: Timestamp
    expires_at: Timestamp
    ip_address: str | None
    user_agent: str | None
    current: bool
    last_active_at: Timestamp


class SessionList(Schema):
    items: list[SessionItem]
    next_cursor: str | None = None


@operation("account.sessions.list", scope="account")
def list_sessions(ctx: Context, _: Empty) -> SessionList:
    """The caller's live sessions, newest first."""
    rows = ctx.db.scalars(
        select(Session).where(Session.user_id == ctx.user_id, Session.revoked_at.is_(None),
                              Session.expires_at > utcnow())
        .order_by(Session.created_at.desc())
    )
    return SessionList(items=[
        SessionItem(session_id=s.id, user_id=s.user_id, client_kind=s.client_kind,
                    display_name=s.user_agent, created_at=s.created_at, expires_at=s.expires_at,
                    ip_address=s.ip_address, user_agent=s.user_agent,
                    current=ctx.actor is not None and s.id == ctx.actor.session_id,
                    last_active_at=s.last_active_at)
        for s in rows
    ])


class SessionRef(Schema):
    session_id: str


@operation("account.sessions.revoke", scope="account", audit="session.revoked")
def revoke_session(ctx: Context, data: SessionRef) -> SessionRevoked:
    """Ends one of the caller's sessions (another device, say)."""
    return _revoke_session(ctx, data.session_id)


# Activity stamps are written at most this often, so that reads stay reads.
_TOUCH_EVERY = timedelta(minutes=1)


def authenticate(db: DbSession, secret: str, address: str | None = None) -> Actor | None:
    """The actor behind a session or API token secret, or None if it is unknown or dead. A
    token keeps when it was last used (to the minute) and from which `address`."""
    now = utcnow()
    token_hash = hash_token(secret)
    if secret.startswith(f"{SESSION_PREFIX}_"):
        s = db.scalar(select(Session).where(Session.token_hash == token_hash))
        if s is None or s.revoked_at or s.expires_at <= now:
            return None
        if now - s.last_active_at > _TOUCH_EVERY:
            s.last_active_at = now
            db.commit()
        return Actor(user_id=s.user_id, organization_id=s.organization_id, session_id=s.id)
    if secret.startswith(f"{TOKEN_PREFIX}_"):
        t = db.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash))
        if t is None or t.revoked_at or (t.expires_at and t.expires_at <= now):
            return None
        if t.last_used_at is None or now - t.last_used_at > _TOUCH_EVERY or (
                address and address != t.last_used_address):
            t.last_used_at, t.last_used_address = now, address or t.last_used_address
            db.commit()
        return Actor(user_id=t.user_id, organization_id=t.organization_id, token_id=t.id,
                     scopes=frozenset(t.scopes),
                     targets=deploy_targets(t.targets) if t.kind == "deploy" else None)
    return None


# What each command a deploy token is given lets it run (reading what it deploys included).
DEPLOY_COMMANDS = {
    "deploy": ("deployments.create", "deployments.show", "deployments.events",
               "deployments.logs", "resources.show"),
    "rollback": ("deployments.rollback", "deployments.list", "deployments.show",
                 "deployments.events", "resources.show"),
    "logs": ("resources.runtime-logs", "resources.runtime-logs.follow", "deployments.logs",
             "resources.show"),
}
DEPLOY_COMMANDS["source-link-deploy"] = DEPLOY_COMMANDS["server-config-deploy"] = \
    DEPLOY_COMMANDS["deploy"]  # seed 004's names of a deploy
DEPLOY_COMMANDS["preview-cleanup"] = ("deployments.cleanup-preview",)


def deploy_targets(targets: dict | None) -> DeployTargets:
    t = targets or {}
    return DeployTargets(
        operations=frozenset(k for c in t.get("workflowCommands", [])
                             for k in DEPLOY_COMMANDS.get(c, ())),
        resource_ids=frozenset(t.get("resourceIds", [])),
        environment_ids=frozenset(t.get("environmentIds", [])),
        project_ids=frozenset(t.get("projectIds", [])))


def sign_in_organization(db: DbSession, settings: Settings) -> Organization | None:
    """Where people who sign in with OpenID Connect land (`LAUNCHBAY_OIDC_ORGANIZATION`, or the
    instance's first organization), and where warm pools are kept for them."""
    query = select(Organization)
    if settings.oidc_organization:
        return db.scalar(query.where(Organization.slug == settings.oidc_organization))
    return db.scalar(query.order_by(Organization.created_at).limit(1))
