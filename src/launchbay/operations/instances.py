"""Ephemeral environments ("instances"): a template run for one user, or one team, in an
environment of its own, until it expires (Dploy's unit).

A user has at most one instance of a template; asking again returns it. When the template's
`ownerClaim` names a claim in which the user has a group, the instance is the group's
(`shared`): everyone in it gets the same one. Each instance is a resource of the
organization's `ephemeral` project, in its own environment (so its own network), served at
`{owner}-{uuid}.{base domain}`. Expired instances are removed by the reaper
(`instances.expire`, on behalf of their owner).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import timedelta
from typing import Literal

from sqlalchemy import func, select, update
from sqlalchemy.orm import sessionmaker

from launchbay.engine.routing import public_url
from launchbay.operations.catalog import Context, operation, role_at_least
from launchbay.operations.compat.blueprints import own_project
from launchbay.operations.deployments import start
from launchbay.operations.edge.domains import bind
from launchbay.operations.errors import Conflict, Forbidden, Invalid, NotFound, Unavailable
from launchbay.operations.identity.accounts import sign_in_organization
from launchbay.operations.schemas import UNPAGED_MAX, Empty, Field, Id, Schema, Timestamp
from launchbay.operations.templates import (
    Blueprint,
    TemplateDoc,
    get_template,
    made_state,
    made_states,
    make_resource,
    render,
    take_down,
)
from launchbay.schemas_time import iso_seconds
from launchbay.settings import Settings
from launchbay.slugs import slugify
from launchbay.store.db import changed
from launchbay.store.models import (
    Deployment,
    Environment,
    Instance,
    Membership,
    ProjectKind,
    Resource,
    Template,
    User,
    new_id,
    utcnow,
)
from launchbay.store.profiles import UserClaims

PROJECT = "ephemeral"
STATUS = {"Pending": "pending", "Provisioning": "Progressing", "Ready": "Healthy",
          "Error": "Degraded", "Deleting": "Deleting"}


def _keys(ctx: Context) -> tuple[str, list[str]]:
    """The caller's own owner key and those of their groups."""
    user = ctx.db.get_one(User, ctx.user_id)
    claims = UserClaims.model_validate(user.claims or {})
    name = claims.username or user.email.split("@")[0]
    return slugify(name, 40), [slugify(g, 40) for g in claims.groups if g]


def owner_of(ctx: Context, doc: TemplateDoc) -> tuple[str, bool]:
    """(owner key, shared) of the caller's instance of `doc`: their group, when the template's
    owner claim holds one for them; themselves otherwise."""
    user = ctx.db.get_one(User, ctx.user_id)
    if doc.owner_claim:
        value = UserClaims.model_validate(user.claims or {}).claim(doc.owner_claim)
        group = value[0] if isinstance(value, list) and value else value
        if isinstance(group, str) and group:
            return slugify(group, 40), True
    return _keys(ctx)[0], False


def _visible(ctx: Context):
    """The caller's instances: their own, and their groups' shared ones."""
    me, groups = _keys(ctx)
    return select(Instance).where(
        Instance.organization_id == ctx.org_id, Instance.status != "pooled",
        ((Instance.owner_key == me) & Instance.shared.is_(False))
        | (Instance.owner_key.in_(groups) & Instance.shared.is_(True)))


def _owned(ctx: Context, doc: TemplateDoc):
    """The query of the caller's instance of `doc` (theirs, or their team's)."""
    owner, shared = owner_of(ctx, doc)
    return _visible(ctx).where(Instance.template == doc.name, Instance.owner_key == owner,
                               Instance.shared.is_(shared))


def _mine(ctx: Context, template: str, mutable: bool = False) -> Instance:
    _, doc = get_template(ctx, template)
    inst = ctx.db.scalar(_owned(ctx, doc))
    if inst is None or (mutable and inst.status == "deleting"):
        raise NotFound(f"Environment {template} not found", code="instance_not_found")
    return inst


# -- views --------------------------------------------------------------------------------------


class InstanceOut(Schema):
    uuid: str
    status: Literal["pending", "Progressing", "Healthy", "Degraded", "Deleting"]
    url: str
    expires_at: str  # RFC 3339 UTC; empty for an unlimited lifetime
    owner: str
    shared: bool


class InstanceItem(InstanceOut):
    name: str
    description: str
    icon: str | None
    extend_count: int
    max_extends: int
    extend_ttl: int = Field(alias="extendTTL")
    is_unlimited: bool


def host_of(ctx: Context, inst: Instance) -> str:
    return f"{inst.owner_key}-{inst.uuid}.{ctx.settings.base_domain}"


def _expires(inst: Instance) -> str:
    return iso_seconds(inst.expires_at) if inst.expires_at else ""


def instance_out(ctx: Context, inst: Instance, status: str | None = None) -> InstanceOut:
    """An instance as Dploy shows it (`status`: its resource's made state, if known)."""
    if status is None:
        status, _ = made_state(ctx, ctx.db.get_one(Resource, inst.resource_id))
    if inst.status == "deleting":
        status = "Deleting"
    return InstanceOut(uuid=inst.uuid, status=STATUS[status],
                       url=public_url(ctx.settings, host_of(ctx, inst),
                                      ctx.settings.edge_domain_tls != "disabled"),
                       expires_at=_expires(inst), owner=inst.owner_key or "",
                       shared=inst.shared)


def _states(ctx: Context, instances: Sequence[Instance]) -> dict[str, str]:
    """The made state of each instance's resource, by instance uuid, in three queries."""
    resources = ctx.db.scalars(select(Resource).where(
        Resource.id.in_([i.resource_id for i in instances]))).all()
    states = made_states(ctx, resources)
    return {i.uuid: states[i.resource_id][0] for i in instances if i.resource_id in states}


def _item(ctx: Context, inst: Instance, doc: TemplateDoc,
          status: str | None = None) -> InstanceItem:
    return InstanceItem(**instance_out(ctx, inst, status).model_dump(), name=doc.name,
                        description=doc.description, icon=doc.icon,
                        extend_count=inst.extend_count, max_extends=doc.max_extends,
                        extendTTL=_extension(ctx, doc), is_unlimited=doc.ttl is None)


def _extension(ctx: Context, doc: TemplateDoc) -> int:
    return doc.extend_ttl or ctx.settings.instance_extend_seconds


# -- operations ---------------------------------------------------------------------------------


class Offered(Schema):
    name: str
    description: str
    icon: str | None
    category: str | None
    ttl: int | None
    extend_ttl: int = Field(alias="extendTTL")
    max_extends: int
    is_unlimited: bool


class OfferedList(Schema):
    items: list[Offered]


@operation("instances.available", scope="public")
def available(ctx: Context, _: Empty) -> OfferedList:
    """The templates anyone may run as an ephemeral environment (visible and enabled)."""
    docs = [TemplateDoc.model_validate(t.document)
            for t in ctx.db.scalars(select(Template).order_by(Template.name))]
    return OfferedList(items=[Offered(
        name=d.name, description=d.description, icon=d.icon, category=d.category, ttl=d.ttl,
        extendTTL=_extension(ctx, d), max_extends=d.max_extends, is_unlimited=d.ttl is None)
        for d in docs if d.visible and d.enabled])


class InstanceList(Schema):
    environments: list[InstanceItem]
    count: int
    limit: int


@operation("instances.list")
def list_instances(ctx: Context, _: Empty) -> InstanceList:
    """The caller's ephemeral environments (their own and their teams'), and their quota."""
    instances = ctx.db.scalars(_visible(ctx).order_by(Instance.created_at)
                               .limit(UNPAGED_MAX)).all()
    if not instances:
        return InstanceList(environments=[], count=0, limit=ctx.settings.instance_quota)
    docs = {t.name: TemplateDoc.model_validate(t.document) for t in ctx.db.scalars(
        select(Template).where(Template.name.in_({i.template for i in instances})))}
    states = _states(ctx, instances)
    items = [_item(ctx, inst, docs[inst.template], states.get(inst.uuid))
             for inst in instances if inst.template in docs]
    return InstanceList(environments=items, count=len(items),
                        limit=ctx.settings.instance_quota)


class RunIn(Schema):
    template: str = Field(min_length=1, max_length=100)
    parameters: dict[str, str] = Field(default_factory=dict, max_length=50)


@operation("instances.run", role="developer", audit="instance.created")
def run(ctx: Context, data: RunIn) -> InstanceOut:
    """The caller's instance of a template: the existing one, or a new one (403 over the
    quota, 400 for a missing or invalid parameter)."""
    _, doc = get_template(ctx, data.template, usable=True)
    existing = ctx.db.scalar(_owned(ctx, doc).where(Instance.status == "active"))
    if existing is not None:
        ctx.unchanged = True
        return instance_out(ctx, existing)
    blueprint = render(doc, data.parameters)
    limit = doc.quota or ctx.settings.instance_quota
    running = ctx.db.scalar(select(func.count()).select_from(Instance).where(
        Instance.organization_id == ctx.org_id, Instance.owner_user_id == ctx.user_id,
        Instance.status == "active")) or 0
    if running >= limit:
        raise Forbidden(f"Maximum {limit} environments allowed", code="quota_exceeded",
                        details={"limit": limit})
    from_pool = bool(doc.pool_size) and _is_default(doc, data.parameters) \
        and _keeps_pools(ctx)
    if from_pool:
        inst = _claim(ctx, doc)
    else:
        inst = _make(ctx, doc, blueprint, data.parameters)
    owner, shared = owner_of(ctx, doc)
    inst.owner_key, inst.owner_user_id, inst.shared = owner, ctx.user_id, shared
    inst.claimed_at, inst.status = utcnow(), "active"
    inst.expires_at = inst.claimed_at + timedelta(seconds=doc.ttl) if doc.ttl else None
    r = ctx.db.get_one(Resource, inst.resource_id)
    bind(ctx, host_of(ctx, inst), project_id=r.project_id, environment_id=r.environment_id,
         server_id=r.server_id, resource_id=r.id, tls_mode=ctx.settings.edge_domain_tls)
    ctx.audit(r.id, uuid=inst.uuid, template=doc.name, owner=owner, shared=shared,
              fromPool=from_pool)
    return instance_out(ctx, inst)


# -- warm pools ---------------------------------------------------------------------------------

POOL_RETRY = timedelta(seconds=60)


def _is_default(doc: TemplateDoc, given: dict[str, str]) -> bool:
    """Whether `given` asks for what pool members are made with (every parameter's default)."""
    defaults = {p.name: p.default for p in doc.parameters}
    return all(defaults.get(name) == value for name, value in given.items())


def _keeps_pools(ctx: Context) -> bool:
    """Whether the caller's organization is where warm pools are kept (elsewhere a pool
    template starts cold)."""
    org = sign_in_organization(ctx.db, ctx.settings)
    return org is not None and org.id == ctx.org_id


def _claim(ctx: Context, doc: TemplateDoc) -> Instance:
    """A ready member of the template's warm pool, taken for the caller (a conditional update,
    so two callers never get the same one); 503 when none is ready."""
    members = ctx.db.scalars(select(Instance).where(
        Instance.organization_id == ctx.org_id, Instance.template == doc.name,
        Instance.status == "pooled").order_by(Instance.created_at))
    for inst in members:
        if made_state(ctx, ctx.db.get_one(Resource, inst.resource_id))[0] != "Ready":
            continue
        if changed(ctx.db, update(Instance).where(
                Instance.id == inst.id, Instance.status == "pooled").values(status="active")):
            return inst
    raise Unavailable("no pooled instance available", code="pool_exhausted",
                      details={"template": doc.name})


class PoolIn(Schema):
    organization_id: Id | None = None
    template: str = Field(min_length=1, max_length=100)


class Pool(Schema):
    template: str
    size: int = Field(description="members the template asks for (0 when it is disabled)")
    ready: int
    starting: int
    added: list[str] = Field(description="uuids of the members started now")
    removed: list[str] = Field(description="uuids of failed or surplus members taken down")
    failing: list[str] = Field(description="uuids of members that failed less than a minute "
                                           "ago (replaced then: a broken template does not "
                                           "churn)")


@operation("instances.pool.fill", role="admin", audit="instance.pool-filled")
def fill_pool(ctx: Context, data: PoolIn) -> Pool:
    """Brings a template's warm pool to its `poolSize`: failed members are replaced, missing
    ones started (with the parameters' defaults), surplus ones removed. Pools are kept in the
    sign-in organization; the control plane calls this in the background."""
    if not _keeps_pools(ctx):
        raise Conflict("warm pools are kept in the sign-in organization only",
                       code="not_the_pool_organization")
    template, doc = get_template(ctx, data.template)
    # One filler at a time per template (PostgreSQL; SQLite serializes writers, and a pool
    # filled twice over loses its surplus at the next fill).
    ctx.db.scalar(select(Template.id).where(Template.id == template.id).with_for_update())
    size = doc.pool_size if doc.enabled else 0
    ready: list[str] = []  # instance uuids
    starting: list[str] = []
    failing: list[str] = []
    removed: list[str] = []
    for inst in ctx.db.scalars(select(Instance).where(
            Instance.organization_id == ctx.org_id, Instance.template == doc.name,
            Instance.status == "pooled").order_by(Instance.created_at)):
        state, _ = made_state(ctx, ctx.db.get_one(Resource, inst.resource_id))
        kept = len(ready) + len(starting) + len(failing)
        if state == "Error" and kept < size and ctx.db.scalar(select(Deployment.id).where(
                Deployment.resource_id == inst.resource_id,
                Deployment.finished_at > utcnow() - POOL_RETRY).limit(1)):
            failing.append(inst.uuid)
        elif state == "Error" or kept >= size:
            take_down(ctx, ctx.db.get_one(Resource, inst.resource_id), "instances.pool.fill",
                      environment=True)
            inst.status = "deleting"
            removed.append(inst.uuid)
        else:
            (ready if state == "Ready" else starting).append(inst.uuid)
    added = []
    missing = size - len(ready) - len(starting) - len(failing)
    if missing > 0:
        blueprint = render(doc, {})
        for _ in range(missing):
            inst = _make(ctx, doc, blueprint, {})
            inst.status = "pooled"
            added.append(inst.uuid)
    if added or removed:
        ctx.audit(template.id, template=doc.name, added=added, removed=removed)
    else:
        ctx.unchanged = True
    return Pool(template=doc.name, size=size, ready=len(ready), starting=len(starting) +
                len(added), added=added, removed=removed, failing=failing)


def pools(sessions: sessionmaker, settings: Settings) -> list[tuple[str, str, dict[str, str]]]:
    """(owner of the sign-in organization, organization, {template}) for each template with a
    warm pool, or pooled members left: the control plane fills them on the owner's behalf
    (`instances.pool.fill` changes nothing when a pool is as it should be)."""
    with sessions() as db:
        org = sign_in_organization(db, settings)
        if org is None:
            return []
        owner = db.scalar(select(Membership.user_id).where(
            Membership.organization_id == org.id, Membership.role == "owner"))
        pooled = set(db.scalars(select(Instance.template).where(
            Instance.organization_id == org.id, Instance.status == "pooled")))
        due = sorted(pooled | {t.name for t in db.scalars(select(Template))
                               if TemplateDoc.model_validate(t.document).pool_size})
    return [(owner, org.id, {"template": name}) for name in due] if owner else []


def _make(ctx: Context, doc: TemplateDoc, b: Blueprint, parameters: dict[str, str]) -> Instance:
    """A new instance of `doc`: its environment, resource and first release (no owner yet)."""
    uid = secrets.token_hex(4)
    while ctx.db.scalar(select(Instance.id).where(Instance.uuid == uid)):
        uid = secrets.token_hex(4)
    project = own_project(ctx, ProjectKind.DPLOY, PROJECT, "Ephemeral environments",
                          "Environments made from templates, removed when they expire")
    env = Environment(id=new_id("env"), project_id=project.id, organization_id=ctx.org_id,
                      name=f"{doc.name}-{uid}", kind="preview")
    ctx.db.add(env)
    ctx.db.flush()
    r = make_resource(ctx, env, doc.name, b, f"Ephemeral {doc.name} ({uid})", {})
    inst = Instance(id=new_id("inst"), organization_id=ctx.org_id, resource_id=r.id,
                    template=doc.name, uuid=uid, parameters=parameters)
    ctx.db.add(inst)
    start(ctx, r, "instance")
    return inst


class InstanceRef(Schema):
    template: str = Field(min_length=1, max_length=100)


@operation("instances.status")
def status(ctx: Context, data: InstanceRef) -> InstanceOut:
    """The caller's instance of a template; 404 when they have none."""
    return instance_out(ctx, _mine(ctx, data.template))


class Extended(Schema):
    expires_at: str


@operation("instances.extend", role="developer", audit="instance.extended")
def extend(ctx: Context, data: InstanceRef) -> Extended:
    """Pushes the instance's expiry back by the template's `extendTTL` (400 unlimited, 409
    when `maxExtends` are used up)."""
    inst = _mine(ctx, data.template, mutable=True)
    _, doc = get_template(ctx, data.template)
    if inst.expires_at is None:
        raise Invalid("the environment has an unlimited TTL", code="unlimited")
    if inst.extend_count >= doc.max_extends:
        raise Conflict("maximum extensions reached", code="max_extensions")
    inst.expires_at += timedelta(seconds=_extension(ctx, doc))
    inst.extend_count += 1
    ctx.audit(inst.resource_id, uuid=inst.uuid, expiresAt=_expires(inst),
              extendCount=inst.extend_count)
    return Extended(expires_at=_expires(inst))


def _remove(ctx: Context, inst: Instance, why: str) -> None:
    take_down(ctx, ctx.db.get_one(Resource, inst.resource_id), f"instances.{why}",
              environment=True)
    inst.status = "deleting"
    ctx.audit(inst.resource_id, uuid=inst.uuid, template=inst.template, reason=why)


@operation("instances.delete", role="developer", audit="instance.deleted")
def delete(ctx: Context, data: InstanceRef) -> None:
    """Removes the caller's instance of a template (its URL at once, then its containers)."""
    _remove(ctx, _mine(ctx, data.template, mutable=True), "delete")


def expired(sessions: sessionmaker) -> list[tuple[str, str, str]]:
    """(uuid, organization, owner) of the active instances whose lifetime is over."""
    with sessions() as db:
        return [tuple(row) for row in db.execute(
            select(Instance.uuid, Instance.organization_id, Instance.owner_user_id).where(
                Instance.status == "active", Instance.expires_at <= utcnow(),
                Instance.owner_user_id.is_not(None)))]


class ExpireIn(Schema):
    organization_id: Id | None = None
    uuid: str = Field(pattern=r"^[0-9a-f]{8}$")


class Expired(Schema):
    uuid: str
    expired_at: Timestamp


# -- who the caller is, and the operators' view ----------------------------------------------


class Me(Schema):
    username: str
    owner: str  # the owner key of the caller's own instances
    admin: bool  # administers environments on demand (sees every instance and template)


def _administers(ctx: Context) -> bool:
    """An admin of the sign-in organization, where environments on demand live."""
    home = sign_in_organization(ctx.db, ctx.settings)
    return home is not None and home.id == ctx.org_id and role_at_least(ctx.role or "viewer",
                                                                         "admin")


def _require_admin(ctx: Context) -> None:
    if not _administers(ctx):
        raise Forbidden("environments on demand are administered by an admin of the sign-in "
                        "organization", code="instance_admin_required")


@operation("instances.me")
def me(ctx: Context, _: Empty) -> Me:
    """Who the caller is to environments on demand: their name, owner key and whether they
    administer them."""
    user = ctx.db.get_one(User, ctx.user_id)
    name = UserClaims.model_validate(user.claims or {}).username or user.email.split("@")[0]
    return Me(username=name, owner=_keys(ctx)[0], admin=_administers(ctx))


class AdminInstance(Schema):
    name: str
    template: str
    owner: str  # empty for an unclaimed pool member
    phase: str
    url: str
    expires_at: str  # empty when unlimited or unclaimed
    created_at: str
    namespace: str  # the environment it runs in
    uuid: str
    is_unlimited: bool


class AdminInstances(Schema):
    instances: list[AdminInstance]
    count: int


@operation("instances.admin.list", role="admin")
def all_instances(ctx: Context, _: Empty) -> AdminInstances:
    """Every instance of the organization, pool members included (admins of the sign-in
    organization), by template then uuid."""
    _require_admin(ctx)
    rows = []
    instances = ctx.db.scalars(select(Instance).where(Instance.organization_id == ctx.org_id)
                               .order_by(Instance.template, Instance.uuid)
                               .limit(UNPAGED_MAX)).all()
    states = _states(ctx, instances)
    envs = {r.id: e for r, e in ctx.db.execute(select(Resource, Environment).join(
        Environment, Environment.id == Resource.environment_id).where(
        Resource.id.in_([i.resource_id for i in instances])))}
    for inst in instances:
        out = instance_out(ctx, inst, states.get(inst.uuid))
        env = envs[inst.resource_id]
        rows.append(AdminInstance(
            name=env.name, template=inst.template, owner=inst.owner_key or "",
            phase="Pending" if out.status == "pending" else out.status, url=out.url,
            expires_at=out.expires_at, created_at=iso_seconds(inst.created_at),
            namespace=env.name, uuid=inst.uuid, is_unlimited=inst.expires_at is None
            and inst.status != "pooled"))
    return AdminInstances(instances=rows, count=len(rows))


class AdminTemplate(Schema):
    name: str
    display_name: str
    method: Literal["on-demand", "pool"]
    enabled: bool
    visible: bool
    pool_size: int
    available: int  # pool members ready to be claimed
    claimed: int  # instances people hold
    chart_type: str  # what runs: image, compose or files
    chart_repo: str  # the image, when it is one
    chart_ref: str
    revision: str
    created_at: str


class AdminTemplates(Schema):
    templates: list[AdminTemplate]
    count: int


@operation("instances.admin.templates", role="admin")
def all_templates(ctx: Context, _: Empty) -> AdminTemplates:
    """Every template of the catalog with its pool's counts, hidden and disabled ones too
    (admins of the sign-in organization)."""
    _require_admin(ctx)
    counts = {(name, status): n for name, status, n in ctx.db.execute(
        select(Instance.template, Instance.status, func.count())
        .where(Instance.organization_id == ctx.org_id)
        .group_by(Instance.template, Instance.status))}
    rows = []
    for t in ctx.db.scalars(select(Template).order_by(Template.name)):
        doc = TemplateDoc.model_validate(t.document)
        b = doc.blueprint
        rows.append(AdminTemplate(
            name=doc.name, display_name=doc.description or doc.name,
            method="pool" if doc.pool_size else "on-demand", enabled=doc.enabled,
            visible=doc.visible, pool_size=doc.pool_size,
            available=counts.get((doc.name, "pooled"), 0),
            claimed=counts.get((doc.name, "active"), 0),
            chart_type="image" if b.image else "compose" if b.compose else "files",
            chart_repo=b.image or "", chart_ref="", revision="",
            created_at=iso_seconds(t.created_at)))
    return AdminTemplates(templates=rows, count=len(rows))


@operation("instances.expire", role="developer", audit="instance.expired")
def expire(ctx: Context, data: ExpireIn) -> Expired:
    """Removes an instance whose lifetime is over (what the reaper calls, on behalf of its
    owner); 409 when it has not expired."""
    inst = ctx.db.scalar(select(Instance).where(Instance.organization_id == ctx.org_id,
                                                Instance.uuid == data.uuid))
    if inst is None or inst.owner_user_id != ctx.user_id:
        raise NotFound("instance not found", code="instance_not_found")
    if inst.status != "active" or inst.expires_at is None or inst.expires_at > utcnow():
        raise Conflict("the instance has not expired", code="not_expired")
    expired_at = inst.expires_at
    _remove(ctx, inst, "expire")
    return Expired(uuid=inst.uuid, expired_at=expired_at)
