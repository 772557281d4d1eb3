"""Organizations, their members and roles, invitations, and the caller's current context."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from sqlalchemy import func, select

from launchbay.crypto import hash_password, hash_token, new_token, verify_password
from launchbay.operations.catalog import (
    Context,
    membership_role,
    operation,
    role_at_least,
    role_in,
)
from launchbay.operations.errors import Conflict, Forbidden, Invalid, NotFound
from launchbay.operations.identity.accounts import (
    LOGIN_METHODS,
    LoginMethod,
    create_organization_for,
)
from launchbay.operations.schemas import (
    Email,
    Field,
    Id,
    ImageUrl,
    Name,
    Schema,
    Timestamp,
    apply_update,
)
from launchbay.store.models import (
    Invitation,
    Membership,
    Organization,
    Project,
    Session,
    User,
    new_id,
    utcnow,
)

InvitableRole = Literal["admin", "developer", "viewer"]
INVITATION_TTL = timedelta(days=7)


class Permissions(Schema):
    can_invite_members: bool
    can_list_members: bool
    can_manage_deploy_tokens: bool
    can_remove_members: bool
    can_transfer_ownership: bool
    can_update_member_roles: bool


def permissions_for(role: str) -> Permissions:
    admin = role_at_least(role, "admin")
    return Permissions(can_invite_members=admin, can_list_members=True,
                       can_manage_deploy_tokens=admin, can_remove_members=admin,
                       can_transfer_ownership=role == "owner", can_update_member_roles=admin)


class OrgRef(Schema):
    organization_id: Id


class OrgSummary(Schema):
    organization_id: str
    name: str
    slug: str
    role: str


class UserSummary(Schema):
    user_id: str
    email: str
    display_name: str
    avatar_url: str | None


class CurrentContext(Schema):
    user: UserSummary
    current_organization: OrgSummary | None
    organizations: list[OrgSummary]
    login_methods: list[LoginMethod]
    permissions: Permissions | None


def _context(ctx: Context, current_org: str | None) -> CurrentContext:
    user = ctx.db.get_one(User, ctx.user_id)
    rows = ctx.db.execute(
        select(Organization, Membership.role).join(Membership)
        .where(Membership.user_id == user.id).order_by(Organization.name)
    ).all()
    if ctx.actor and ctx.actor.token_id:  # a token sees only its own organization
        rows = [r for r in rows if r[0].id == ctx.actor.organization_id]
    orgs = [OrgSummary(organization_id=o.id, name=o.name, slug=o.slug, role=r) for o, r in rows]
    current = next((o for o in orgs if o.organization_id == current_org), None)
    return CurrentContext(
        user=UserSummary(user_id=user.id, email=user.email, display_name=user.display_name,
                         avatar_url=user.avatar_url),
        current_organization=current, organizations=orgs, login_methods=LOGIN_METHODS,
        permissions=permissions_for(current.role) if current else None,
    )


@operation("organizations.current-context", scope="account")
def current_context(ctx: Context, _: Schema) -> CurrentContext:
    """The caller, their organizations and the one requests act in."""
    return _context(ctx, ctx.organization_id)


@operation("organizations.switch", scope="account", audit="organization.context-switched")
def switch_context(ctx: Context, data: OrgRef) -> CurrentContext:
    """Makes another of the caller's organizations current for this session."""
    actor = ctx.actor
    assert actor is not None
    if actor.session_id is None:
        raise Invalid("an API token is bound to one organization", code="not_a_session")
    if role_in(ctx.db, actor, data.organization_id) is None:
        raise NotFound("organization not found", code="organization_not_found")
    ctx.db.get_one(Session, actor.session_id).organization_id = data.organization_id
    ctx.organization_id = data.organization_id
    ctx.audit(data.organization_id)
    return _context(ctx, data.organization_id)


class OrgProfile(Schema):
    organization_id: str
    name: str
    slug: str
    role: str
    permissions: Permissions
    logo_url: str | None
    created_at: Timestamp
    updated_at: Timestamp


def _profile(ctx: Context, org: Organization) -> OrgProfile:
    role = ctx.role or "owner"
    return OrgProfile(organization_id=org.id, name=org.name, slug=org.slug, role=role,
                      permissions=permissions_for(role), logo_url=org.logo_url,
                      created_at=org.created_at, updated_at=org.updated_at)


class OrgCreate(Schema):
    name: Name


@operation("organizations.create", scope="account", audit="organization.created")
def create_organization(ctx: Context, data: OrgCreate) -> OrgProfile:
    """A new organization with the caller as its owner."""
    user = ctx.db.get_one(User, ctx.user_id)
    org = create_organization_for(ctx, user, data.name)
    ctx.db.flush()
    ctx.organization_id = org.id
    ctx.audit(org.id, name=org.name)
    return _profile(ctx, org)


@operation("organizations.show")
def show_organization(ctx: Context, data: OrgRef) -> OrgProfile:
    """One organization's profile and what the caller may do in it."""
    return _profile(ctx, ctx.db.get_one(Organization, ctx.org_id))


class OrgUpdate(OrgRef):
    name: Name | None = None
    logo_url: ImageUrl | None = None


@operation("organizations.update", role="admin", audit="organization.updated")
def update_organization(ctx: Context, data: OrgUpdate) -> OrgProfile:
    """Renames an organization or changes its logo."""
    org = ctx.db.get_one(Organization, ctx.org_id)
    fields = apply_update(org, data, required=("name",), exclude={"organization_id"})
    ctx.db.flush()
    ctx.audit(org.id, fields=fields)
    return _profile(ctx, org)


class OrgConfirmation(Schema):
    organization_id: Id


class OrgDelete(OrgRef):
    confirmation: OrgConfirmation


class OrgDeleted(Schema):
    organization_id: str
    deleted_at: Timestamp


@operation("organizations.delete", role="owner", audit="organization.deleted")
def delete_organization(ctx: Context, data: OrgDelete) -> OrgDeleted:
    """Deletes an empty organization; its projects must be deleted first."""
    if data.confirmation.organization_id != data.organization_id:
        raise Invalid("confirmation.organizationId does not match", code="confirmation_mismatch")
    projects = ctx.db.scalar(
        select(func.count()).select_from(Project).where(Project.organization_id == ctx.org_id))
    if projects:
        raise Conflict("delete the organization's projects first", code="organization_not_empty",
                       details={"projects": projects})
    ctx.db.delete(ctx.db.get_one(Organization, ctx.org_id))
    ctx.audit(ctx.org_id)
    return OrgDeleted(organization_id=ctx.org_id, deleted_at=utcnow())


class Member(Schema):
    member_id: str
    user_id: str
    role: str
    joined_at: Timestamp
    avatar_url: str | None
    display_name: str
    email: str
    status: str = "active"


def _member(m: Membership, u: User) -> Member:
    return Member(member_id=m.id, user_id=u.id, role=m.role, joined_at=m.joined_at,
                  avatar_url=u.avatar_url, display_name=u.display_name, email=u.email)


class Page(OrgRef):
    cursor: str | None = None
    limit: int = Field(100, gt=0, le=250)


class MemberList(Schema):
    items: list[Member]
    next_cursor: str | None = None


@operation("organizations.members.list")
def list_members(ctx: Context, data: Page) -> MemberList:
    """The organization's members, in the order they joined."""
    query = (select(Membership, User).join(User).where(Membership.organization_id == ctx.org_id)
             .order_by(Membership.joined_at, Membership.id).limit(data.limit + 1))
    if data.cursor:
        query = query.where(Membership.id > data.cursor)
    rows = ctx.db.execute(query).all()
    items = [_member(m, u) for m, u in rows[: data.limit]]
    return MemberList(items=items,
                      next_cursor=items[-1].member_id if len(rows) > data.limit else None)


def _get_member(ctx: Context, member_id: str) -> tuple[Membership, User]:
    row = ctx.db.execute(select(Membership, User).join(User).where(
        Membership.id == member_id, Membership.organization_id == ctx.org_id)).first()
    if row is None:
        raise NotFound("member not found")
    return row[0], row[1]


class MemberRef(OrgRef):
    member_id: Id


class RoleChange(MemberRef):
    role: InvitableRole


@operation("organizations.members.role", role="admin", audit="organization.member-role-changed")
def change_member_role(ctx: Context, data: RoleChange) -> Member:
    """Sets a member's role; the owner's role changes only by owner transfer."""
    member, user = _get_member(ctx, data.member_id)
    if member.role == "owner":
        raise Conflict("the owner's role changes only by owner transfer", code="owner_role")
    previous, member.role = member.role, data.role
    ctx.audit(member.id, userId=user.id, previousRole=previous, role=data.role)
    return _member(member, user)


class MemberRemoved(Schema):
    member_id: str
    organization_id: str
    removed_at: Timestamp


@operation("organizations.members.remove", role="admin", audit="organization.member-removed")
def remove_member(ctx: Context, data: MemberRef) -> MemberRemoved:
    """Removes a member (not the owner); their sessions leave the organization."""
    member, user = _get_member(ctx, data.member_id)
    if member.role == "owner":
        raise Conflict("transfer ownership before removing the owner", code="owner_role")
    ctx.db.delete(member)
    for session in ctx.db.scalars(select(Session).where(
            Session.user_id == user.id, Session.organization_id == ctx.org_id)):
        session.organization_id = None
    ctx.audit(member.id, userId=user.id)
    return MemberRemoved(member_id=member.id, organization_id=ctx.org_id, removed_at=utcnow())


class OwnerTransfer(OrgRef):
    from_member_id: Id
    to_member_id: Id


class OwnerTransferred(Schema):
    from_member: Member
    to_member: Member
    transferred_at: Timestamp


@operation("organizations.owner-transfer", role="owner", audit="organization.owner-transferred")
def transfer_owner(ctx: Context, data: OwnerTransfer) -> OwnerTransferred:
    """Hands ownership to another member; the previous owner becomes an admin."""
    old, old_user = _get_member(ctx, data.from_member_id)
    new, new_user = _get_member(ctx, data.to_member_id)
    if old.role != "owner" or old.user_id != ctx.user_id:
        raise Forbidden("only the owner can hand over ownership", code="not_owner")
    if old.id == new.id:
        raise Invalid("the new owner must be another member", code="same_member")
    old.role, new.role = "admin", "owner"
    ctx.audit(ctx.org_id, fromUserId=old_user.id, toUserId=new_user.id)
    return OwnerTransferred(from_member=_member(old, old_user), to_member=_member(new, new_user),
                            transferred_at=utcnow())


class Inviter(Schema):
    user_id: str
    display_name: str
    email: str


class InvitationOut(Schema):
    invitation_id: str
    organization_id: str
    email: str
    role: str
    status: str
    created_at: Timestamp
    expires_at: Timestamp
    inviter: Inviter | None
    # Shown once, at creation: the secret the invitee accepts with.
    accept_token: str | None = None


def _invitation(ctx: Context, inv: Invitation, token: str | None = None) -> InvitationOut:
    status = inv.status
    if status == "pending" and inv.expires_at <= utcnow():
        status = "expired"
    inviter = ctx.db.get(User, inv.inviter_user_id) if inv.inviter_user_id else None
    return InvitationOut(
        invitation_id=inv.id, organization_id=inv.organization_id, email=inv.email, role=inv.role,
        status=status, created_at=inv.created_at, expires_at=inv.expires_at,
        inviter=Inviter(user_id=inviter.id, display_name=inviter.display_name,
                        email=inviter.email) if inviter else None,
        accept_token=token,
    )


class InvitationCreate(OrgRef):
    email: Email
    role: InvitableRole


@operation("organizations.invitations.create", role="admin", audit="organization.member-invited")
def create_invitation(ctx: Context, data: InvitationCreate) -> InvitationOut:
    """Invites an e-mail address with a role; the answer carries the accept token once."""
    email = data.email.lower()
    already = ctx.db.scalar(select(Membership.id).join(User).where(
        Membership.organization_id == ctx.org_id, User.email == email))
    if already:
        raise Conflict(f"{email} is already a member", code="already_member")
    token = new_token("lbi")
    inv = Invitation(id=new_id("inv"), organization_id=ctx.org_id, email=email, role=data.role,
                     token_hash=hash_token(token), inviter_user_id=ctx.user_id,
                     expires_at=utcnow() + INVITATION_TTL)
    ctx.db.add(inv)
    ctx.db.flush()
    ctx.audit(inv.id, email=email, role=data.role)
    return _invitation(ctx, inv, token)


class InvitationPage(Page):
    status: Literal["accepted", "expired", "pending", "revoked"] | None = None


class InvitationList(Schema):
    items: list[InvitationOut]
    next_cursor: str | None = None


@operation("organizations.invitations.list", role="admin")
def list_invitations(ctx: Context, data: InvitationPage) -> InvitationList:
    """The organization's invitations, newest first."""
    query = select(Invitation).where(Invitation.organization_id == ctx.org_id)
    if data.cursor:
        query = query.where(Invitation.id < data.cursor)
    if data.status in ("pending", "expired"):  # a pending one past its time shows as expired
        live = Invitation.expires_at > utcnow()
        query = query.where(Invitation.status == "pending",
                            live if data.status == "pending" else ~live)
    elif data.status:
        query = query.where(Invitation.status == data.status)
    rows = ctx.db.scalars(query.order_by(Invitation.id.desc()).limit(data.limit + 1)).all()
    inviters = {i.inviter_user_id for i in rows if i.inviter_user_id}
    held = ctx.db.scalars(select(User).where(User.id.in_(inviters))).all()  # `get` finds them
    page = [_invitation(ctx, inv) for inv in rows[: data.limit]]
    del held
    return InvitationList(items=page,
                          next_cursor=page[-1].invitation_id if len(rows) > data.limit else None)


class InvitationAccept(Schema):
    token: str = Field(min_length=1, max_length=200)
    password: str | None = Field(None, min_length=8, max_length=200)
    display_name: Name | None = None


class InvitationAccepted(Schema):
    organization_id: str
    member_id: str
    user_id: str
    role: str


@operation("organizations.invitations.accept", scope="public", audit="organization.member-joined")
def accept_invitation(ctx: Context, data: InvitationAccept) -> InvitationAccepted:
    """Joins the invited organization: as the logged-in user, or as a new account (with a
    password)."""
    inv = ctx.db.scalar(select(Invitation).where(Invitation.token_hash == hash_token(data.token)))
    if inv is None or inv.status != "pending" or inv.expires_at <= utcnow():
        raise NotFound("invitation not found or no longer valid", code="invitation_invalid")
    user = ctx.db.scalar(select(User).where(User.email == inv.email))
    if ctx.actor is not None:
        if user is None or user.id != ctx.actor.user_id:
            raise Forbidden("this invitation is for another e-mail address", code="wrong_account")
    elif user is not None:
        if not data.password or not verify_password(data.password, user.password_hash):
            raise Forbidden("log in as the invited user, or give their password",
                            code="invalid_credentials")
    else:
        if not data.password:
            raise Invalid("Validation failed",
                          details=[{"field": "password", "message": "required for a new account"}])
        user = User(id=new_id("usr"), email=inv.email, email_verified=True,
                    display_name=data.display_name or inv.email.split("@")[0],
                    password_hash=hash_password(data.password))
        ctx.db.add(user)
        ctx.db.flush()
    if membership_role(ctx.db, user.id, inv.organization_id):
        raise Conflict("you are already a member", code="already_member")
    member = Membership(id=new_id("mem"), organization_id=inv.organization_id, user_id=user.id,
                        role=inv.role)
    ctx.db.add(member)
    inv.status, inv.accepted_at = "accepted", utcnow()
    ctx.organization_id = inv.organization_id
    ctx.audit(member.id, userId=user.id, role=inv.role, invitationId=inv.id)
    return InvitationAccepted(organization_id=inv.organization_id, member_id=member.id,
                              user_id=user.id, role=inv.role)

