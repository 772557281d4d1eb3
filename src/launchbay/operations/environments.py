"""Environments of a project and their variables.

Secret values are encrypted at rest and leave the store only as `****`; a variable is keyed by
(key, exposure), so the same key can differ between build time and run time.
"""

from __future__ import annotations

from typing import Literal

from pydantic import RootModel
from sqlalchemy import func, select

from launchbay.operations import variables
from launchbay.operations.catalog import Context, Role, operation
from launchbay.operations.errors import Conflict, Invalid, NotFound
from launchbay.operations.projects import get_project
from launchbay.operations.removal import forget_databases, remove_resources
from launchbay.operations.schemas import CountOut, Field, Id, IdOut, Name, Schema, Timestamp
from launchbay.operations.variables import (
    PRECEDENCE,
    Entry,
    Exposure,
    MaskedVariable,
    VariableIn,
    VariableKey,
    masked,
)
from launchbay.store.models import (
    Environment,
    EnvironmentVariable,
    LifecycleStatus,
    ProjectKind,
    Resource,
    new_id,
    utcnow,
)

Kind = Literal["local", "development", "test", "staging", "production", "preview", "custom"]


class EnvironmentOut(Schema):
    id: str
    project_id: str
    name: str
    kind: Kind
    parent_environment_id: str | None
    lifecycle_status: Literal["active", "locked", "archived"]
    locked_at: Timestamp | None
    lock_reason: str | None
    archived_at: Timestamp | None
    archive_reason: str | None
    created_at: Timestamp
    masked_variables: list[MaskedVariable]


def _out(ctx: Context, e: Environment,
         listed: list[variables.Variable] | None = None) -> EnvironmentOut:
    """An environment as the API shows it (with its variables, unless they were `listed`)."""
    if listed is None:
        listed = variables.listed(ctx, EnvironmentVariable, e.id)
    return EnvironmentOut(
        id=e.id, project_id=e.project_id, name=e.name, kind=e.kind,
        parent_environment_id=e.parent_environment_id,
        lifecycle_status=e.lifecycle_status,
        locked_at=e.locked_at, lock_reason=e.lock_reason, archived_at=e.archived_at,
        archive_reason=e.archive_reason, created_at=e.created_at,
        masked_variables=[masked(v) for v in listed],
    )


def get_environment(ctx: Context, env_id: str, *, mutable: bool = False) -> Environment:
    """The environment if it belongs to the caller's organization; 404 otherwise.

    `mutable` also refuses (409) a locked or archived environment, or one of an archived project.
    """
    env = ctx.db.get(Environment, env_id)
    if env is None or env.organization_id != ctx.org_id:
        raise NotFound("environment not found", code="environment_not_found")
    if mutable:
        if env.lifecycle_status != LifecycleStatus.ACTIVE:
            raise Conflict(f"the environment is {env.lifecycle_status}",
                           code=f"environment_{env.lifecycle_status}")
        get_project(ctx, env.project_id, active=True)
    return env


def _name_free(ctx: Context, project_id: str, name: str) -> None:
    clash = ctx.db.scalar(select(Environment.id).where(
        Environment.project_id == project_id, func.lower(Environment.name) == name.lower()))
    if clash:
        raise Conflict(f"an environment named {name!r} already exists in this project",
                       code="environment_exists", details={"environmentId": clash})


def _new_environment(ctx: Context, project_id: str, name: str, kind: str,
                     parent_id: str | None = None) -> Environment:
    project = get_project(ctx, project_id, active=True)
    _name_free(ctx, project.id, name)
    env = Environment(id=new_id("env"), project_id=project.id, organization_id=ctx.org_id,
                      name=name, kind=kind, parent_environment_id=parent_id)
    ctx.db.add(env)
    ctx.db.flush()
    return env


class ProjectFilter(Schema):
    project_id: Id | None = None


def _filtered(ctx: Context, data: ProjectFilter):
    query = select(Environment).where(Environment.organization_id == ctx.org_id)
    if data.project_id:
        query = query.where(Environment.project_id == data.project_id)
    return query


@operation("environments.count")
def count_environments(ctx: Context, data: ProjectFilter) -> CountOut:
    """How many environments the organization (or one project) has."""
    return CountOut(count=ctx.db.scalar(
        select(func.count()).select_from(_filtered(ctx, data).subquery())) or 0)


class ListIn(ProjectFilter):
    limit: int = Field(100, gt=0, le=500)


class EnvironmentList(Schema):
    items: list[EnvironmentOut]


@operation("environments.list")
def list_environments(ctx: Context, data: ListIn) -> EnvironmentList:
    """Environments, oldest first, with their variables masked."""
    rows = ctx.db.scalars(_filtered(ctx, data).order_by(Environment.created_at, Environment.id)
                          .limit(data.limit)).all()
    found = variables.listed_by_owner(ctx, EnvironmentVariable, [e.id for e in rows])
    return EnvironmentList(items=[_out(ctx, e, found.get(e.id, [])) for e in rows])


class EnvironmentCreate(Schema):
    project_id: Id
    name: Name
    kind: Kind = "custom"
    parent_environment_id: Id | None = None


@operation("environments.create", role="developer", audit="environment.created")
def create_environment(ctx: Context, data: EnvironmentCreate) -> IdOut:
    """Creates an environment in an active project; names are unique per project."""
    if data.parent_environment_id:
        get_environment(ctx, data.parent_environment_id)
    env = _new_environment(ctx, data.project_id, data.name, data.kind, data.parent_environment_id)
    ctx.audit(env.id, projectId=env.project_id, name=env.name, kind=env.kind)
    return IdOut(id=env.id)


class EnvironmentRef(Schema):
    environment_id: Id


@operation("environments.show")
def show_environment(ctx: Context, data: EnvironmentRef) -> EnvironmentOut:
    """One environment with its variables masked."""
    return _out(ctx, get_environment(ctx, data.environment_id))


class WithReason(EnvironmentRef):
    reason: str | None = Field(None, max_length=500)


@operation("environments.lock", role="admin", audit="environment.locked")
def lock_environment(ctx: Context, data: WithReason) -> IdOut:
    """Blocks changes to an environment while keeping it readable."""
    env = get_environment(ctx, data.environment_id, mutable=True)
    env.lifecycle_status, env.locked_at = LifecycleStatus.LOCKED, utcnow()
    env.lock_reason = data.reason
    ctx.audit(env.id, reason=data.reason)
    return IdOut(id=env.id)


@operation("environments.unlock", role="admin", audit="environment.unlocked")
def unlock_environment(ctx: Context, data: EnvironmentRef) -> IdOut:
    """Lets changes to a locked environment resume."""
    env = get_environment(ctx, data.environment_id)
    if env.lifecycle_status != LifecycleStatus.LOCKED:
        raise Conflict("the environment is not locked", code="environment_not_locked")
    env.lifecycle_status, env.locked_at, env.lock_reason = LifecycleStatus.ACTIVE, None, None
    ctx.audit(env.id)
    return IdOut(id=env.id)


@operation("environments.archive", role="admin", audit="environment.archived")
def archive_environment(ctx: Context, data: WithReason) -> IdOut:
    """Archives an environment; its history stays readable."""
    env = get_environment(ctx, data.environment_id)
    if env.lifecycle_status == LifecycleStatus.ARCHIVED:
        raise Conflict("the environment is already archived", code="environment_archived")
    env.lifecycle_status, env.archived_at = LifecycleStatus.ARCHIVED, utcnow()
    env.archive_reason = data.reason
    ctx.audit(env.id, reason=data.reason)
    return IdOut(id=env.id)


class EnvironmentConfirmation(Schema):
    environment_name: Name


class EnvironmentDelete(EnvironmentRef):
    confirmation: EnvironmentConfirmation
    # Also delete its resources (their containers and routes; never their volumes).
    with_resources: bool = False


@operation("environments.delete", role="admin", audit="environment.deleted")
def delete_environment(ctx: Context, data: EnvironmentDelete) -> IdOut:
    """Deletes an environment and its variables, and its resources if asked (else it must have
    none); needs its name as confirmation. Environments that launchbay made for a feature go
    with what made them."""
    env = get_environment(ctx, data.environment_id)
    if data.confirmation.environment_name != env.name:
        raise Invalid("confirmation.environmentName does not match",
                      code="confirmation_mismatch")
    if get_project(ctx, env.project_id).kind != ProjectKind.USER:
        raise Conflict("this environment belongs to a launchbay feature; delete what made it",
                       code="environment_managed")
    resources = ctx.db.scalars(select(Resource).where(Resource.environment_id == env.id)).all()
    if resources and not data.with_resources:
        raise Conflict(f"the environment still has {len(resources)} resource(s): delete them "
                       "first, or ask for withResources", code="environment_delete_blocked",
                       details={"blockers": [{"kind": "resource", "relatedEntityType":
                                              "resource", "count": len(resources)}]})
    forget_databases(ctx, [env.id])
    remove_resources(ctx, resources)
    ctx.db.delete(env)
    ctx.audit(env.id, name=env.name, projectId=env.project_id, resources=len(resources))
    return IdOut(id=env.id)


class EnvironmentCopy(EnvironmentRef):
    """Input of clone and promote: the target environment's name, and kind if it is new."""

    target_name: Name
    target_kind: Kind | None = None


@operation("environments.clone", role="developer", audit="environment.cloned")
def clone_environment(ctx: Context, data: EnvironmentCopy) -> IdOut:
    """A new environment in the same project with the same variables."""
    source = get_environment(ctx, data.environment_id)
    if source.lifecycle_status == LifecycleStatus.ARCHIVED:
        raise Conflict("an archived environment cannot be cloned", code="environment_archived")
    env = _new_environment(ctx, source.project_id, data.target_name,
                           data.target_kind or source.kind, parent_id=source.id)
    copied = variables.copy_all(ctx, source.id, env.id)
    ctx.audit(env.id, sourceEnvironmentId=source.id, variables=copied)
    return IdOut(id=env.id)


class EnvironmentRename(EnvironmentRef):
    name: Name


@operation("environments.rename", role="developer", audit="environment.renamed")
def rename_environment(ctx: Context, data: EnvironmentRename) -> IdOut:
    """Renames an active environment."""
    env = get_environment(ctx, data.environment_id, mutable=True)
    if env.name.lower() != data.name.lower():
        _name_free(ctx, env.project_id, data.name)
    previous, env.name = env.name, data.name
    ctx.audit(env.id, previousName=previous, name=data.name)
    return IdOut(id=env.id)


class VariableSet(VariableIn):
    environment_id: Id
    scope: str = Field("environment", max_length=40)


def _secret_role(data: VariableSet) -> Role:
    return "admin" if data.kind == "secret" else "developer"


@operation("environments.variables.set", role="developer", audit="environment.variable-set",
           role_for=_secret_role)
def set_variable(ctx: Context, data: VariableSet) -> None:
    """Sets a variable; secrets (admin and up) are encrypted before they are stored."""
    env = get_environment(ctx, data.environment_id, mutable=True)
    variables.put(ctx, EnvironmentVariable, env.id, data, data.scope)
    ctx.audit(env.id, key=data.key, exposure=data.exposure, kind=data.kind)


class VariableDelete(EnvironmentRef):
    key: str = VariableKey
    exposure: Exposure = "runtime"


@operation("environments.variables.delete", role="developer",
           audit="environment.variable-deleted")
def delete_variable(ctx: Context, data: VariableDelete) -> None:
    """Removes a variable (a secret needs the admin role)."""
    env = get_environment(ctx, data.environment_id, mutable=True)
    variables.remove(ctx, EnvironmentVariable, env.id, data.key, data.exposure)
    ctx.audit(env.id, key=data.key, exposure=data.exposure)


class EffectivePrecedence(Schema):
    schema_version: str = "environments.effective-precedence/v1"
    environment_id: str
    project_id: str
    owned_entries: list[Entry]
    effective_entries: list[Entry]
    precedence: list[str]
    generated_at: Timestamp


@operation("environments.effective-precedence")
def effective_precedence(ctx: Context, data: EnvironmentRef) -> EffectivePrecedence:
    """The environment's variables after precedence, masked.

    Environments are the highest layer an environment itself has, so its effective set is its
    owned set; resources override it in their own effective configuration.
    """
    env = get_environment(ctx, data.environment_id)
    entries = [variables.entry(v) for v in variables.listed(ctx, EnvironmentVariable, env.id)]
    return EffectivePrecedence(environment_id=env.id, project_id=env.project_id,
                               owned_entries=entries, effective_entries=entries,
                               precedence=PRECEDENCE, generated_at=utcnow())


@operation("environments.promote", role="developer", audit="environment.promoted")
def promote_environment(ctx: Context, data: EnvironmentCopy) -> IdOut:
    """Copies this environment's variables into the named one, creating it if needed."""
    source = get_environment(ctx, data.environment_id)
    target_id = ctx.db.scalar(select(Environment.id).where(
        Environment.project_id == source.project_id,
        func.lower(Environment.name) == data.target_name.lower()))
    if target_id == source.id:
        raise Conflict("an environment cannot be promoted into itself", code="same_environment")
    if target_id:
        target = get_environment(ctx, target_id, mutable=True)
    else:
        target = _new_environment(ctx, source.project_id, data.target_name,
                                  data.target_kind or source.kind, parent_id=source.id)
    copied = variables.copy_all(ctx, source.id, target.id)
    ctx.audit(target.id, sourceEnvironmentId=source.id, variables=copied,
              created=target_id is None)
    return IdOut(id=target.id)


class DiffIn(EnvironmentRef):
    other_environment_id: Id


class DiffEntry(Schema):
    key: str
    exposure: Exposure
    left: MaskedVariable | None
    right: MaskedVariable | None
    change: Literal["added", "removed", "changed", "unchanged"]


class EnvironmentDiff(RootModel[list[DiffEntry]]):
    pass


@operation("environments.diff")
def diff_environments(ctx: Context, data: DiffIn) -> EnvironmentDiff:
    """Compares two environments variable by variable, from this one (left) to the other.

    `added`: only in the other; `removed`: only in this one; secrets compare by their
    plaintext and are shown masked.
    """
    left_env = get_environment(ctx, data.environment_id)
    right_env = get_environment(ctx, data.other_environment_id)
    left = {(v.key, v.exposure): v for v in variables.listed(
        ctx, EnvironmentVariable, left_env.id)}
    right = {(v.key, v.exposure): v for v in variables.listed(
        ctx, EnvironmentVariable, right_env.id)}
    entries = []
    for key, exposure in sorted(left.keys() | right.keys()):
        a, b = left.get((key, exposure)), right.get((key, exposure))
        if a is None:
            change = "added"
        elif b is None:
            change = "removed"
        else:
            same = a.kind == b.kind and variables.plaintext(ctx, a) == variables.plaintext(ctx, b)
            change = "unchanged" if same else "changed"
        entries.append(DiffEntry(key=key, exposure=exposure,
                                 left=masked(a) if a else None, right=masked(b) if b else None,
                                 change=change))
    return EnvironmentDiff(entries)

