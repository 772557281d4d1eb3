"""Variables of environments and resources: one set of rules for both owners.

A variable is keyed by (key, exposure). Secret values are sealed before they are stored and
leave the store only as `****`.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, ValidationError
from sqlalchemy import delete, select

from launchbay.crypto import MASK
from launchbay.engine.databases import KINDS
from launchbay.operations.catalog import Context, role_at_least
from launchbay.operations.errors import Conflict, Forbidden, NotFound
from launchbay.operations.schemas import Field, Schema, Timestamp
from launchbay.store.models import (
    Database,
    DatabaseBinding,
    EnvironmentVariable,
    Resource,
    ResourceVariable,
    new_id,
    utcnow,
)

Exposure = Literal["build-time", "runtime"]
VariableKind = Literal["plain-config", "secret"]
VariableKey = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")
MAX_VALUE = 65536
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _printable(value: str) -> str:
    """A value a process environment can hold: no NUL, no control character but tab and line
    breaks (a container would not start with one, or would get another value)."""
    if found := _CONTROL.search(value):
        raise ValueError(f"contains the control character {found[0]!r} at position "
                         f"{found.start()}")
    return value


VariableValue = Annotated[str, Field(max_length=MAX_VALUE), AfterValidator(_printable)]
# Lowest to highest: a later layer overrides an earlier one.
PRECEDENCE = ["defaults", "system", "organization", "project", "environment", "resource",
              "dependency-binding",
              "deployment-snapshot"]
Variable = EnvironmentVariable | ResourceVariable
Model = type[EnvironmentVariable] | type[ResourceVariable]


class MaskedVariable(Schema):
    key: str
    value: str
    scope: str
    exposure: Exposure
    is_secret: bool
    kind: VariableKind


class Entry(MaskedVariable):
    updated_at: Timestamp


class VariableIn(Schema):
    key: str = VariableKey
    value: VariableValue
    kind: VariableKind = "plain-config"
    exposure: Exposure = "runtime"


def problem(exc: ValidationError, key: str) -> str:
    """What is wrong with a variable, in words: its key or its value."""
    error = exc.errors()[0]
    if error["loc"][:1] == ("key",):
        return f"invalid key {key!r}"
    if error["type"] == "string_too_long":
        return f"the value of {key} is longer than {MAX_VALUE} characters"
    return f"the value of {key} {error['msg'].removeprefix('Value error, ')}"


def masked(v: Variable) -> MaskedVariable:
    secret = v.kind == "secret"
    return MaskedVariable(key=v.key, value=MASK if secret else v.value, scope=v.scope,
                          exposure=v.exposure, is_secret=secret, kind=v.kind)


def entry(v: Variable) -> Entry:
    return Entry(**masked(v).model_dump(), updated_at=v.updated_at)


def _owner(model: Model):
    return model.environment_id if model is EnvironmentVariable else model.resource_id  # type: ignore[union-attr]  # each model has its own owner column


def listed(ctx: Context, model: Model, owner_id: str) -> list[Variable]:
    return listed_by_owner(ctx, model, [owner_id]).get(owner_id, [])


def listed_by_owner(ctx: Context, model: Model, owner_ids: list[str]) -> dict[str, list[Variable]]:
    """The variables of each owner, by key and exposure, in one query (a list page's)."""
    found: dict[str, list[Variable]] = {}
    owner = _owner(model)
    for v in ctx.db.scalars(select(model).where(owner.in_(owner_ids))
                            .order_by(model.key, model.exposure)):
        found.setdefault(getattr(v, owner.key), []).append(v)  # type: ignore[arg-type]  # rows of one of the two models
    return found


def find(ctx: Context, model: Model, owner_id: str, key: str, exposure: str) -> Variable | None:
    return ctx.db.scalar(select(model).where(  # type: ignore[return-value]  # one of the two models
        _owner(model) == owner_id, model.key == key, model.exposure == exposure))


def injected(b: DatabaseBinding, d: Database) -> list[str]:
    """The names of the variables database binding `b` puts into a deployment."""
    names = [b.target_name]
    if b.discrete:
        names += [n for n in KINDS[d.kind].discrete(d, "") if n != b.target_name]
    return names


def bound_names(ctx: Context, model: Model, owner_id: str) -> set[str]:
    """The names database bindings inject into the owner's resources (an environment's, or
    one resource): no variable may take one."""
    query = select(DatabaseBinding, Database).join(Database)
    if model is ResourceVariable:
        query = query.where(DatabaseBinding.resource_id == owner_id)
    else:
        query = query.join(Resource, Resource.id == DatabaseBinding.resource_id).where(
            Resource.environment_id == owner_id)
    return {name for b, d in ctx.db.execute(query) for name in injected(b, d)}


def put(ctx: Context, model: Model, owner_id: str, data: VariableIn, scope: str) -> str:
    """Creates or replaces a variable; returns `created` or `updated`. Secrets need admin;
    a name a database binding injects is refused (a binding is never silently overridden)."""
    if data.exposure == "runtime" and data.key in bound_names(ctx, model, owner_id):
        raise Conflict(f"{data.key} is set by a dependency binding: unbind it, or bind it "
                       "under another name", code="dependency_binding_variable_conflict")
    existing = find(ctx, model, owner_id, data.key, data.exposure)
    if (data.kind == "secret" or (existing is not None and existing.kind == "secret")) \
            and not role_at_least(ctx.role, "admin"):  # type: ignore[arg-type]  # an operation with a role always has ctx.role
        raise Forbidden("managing secrets needs the admin role")
    var = existing or model(id=new_id("var"), key=data.key, exposure=data.exposure,
                            **{_owner(model).key: owner_id})
    var.kind, var.scope = data.kind, scope
    var.value = ctx.secrets.encrypt(data.value) if data.kind == "secret" else data.value
    var.updated_at = utcnow()
    ctx.db.add(var)
    return "updated" if existing is not None else "created"


def remove(ctx: Context, model: Model, owner_id: str, key: str, exposure: str) -> Variable:
    var = find(ctx, model, owner_id, key, exposure)
    if var is None:
        raise NotFound(f"variable {key} ({exposure}) not found", code="variable_not_found")
    if var.kind == "secret" and not role_at_least(ctx.role, "admin"):  # type: ignore[arg-type]  # an operation with a role always has ctx.role
        raise Forbidden("deleting a secret needs the admin role")
    ctx.db.delete(var)
    return var


def copy_all(ctx: Context, source_env_id: str, target_env_id: str, *,
             secrets: bool = True) -> int:
    """Makes an environment's variables exactly another's (ciphertext is copied, not opened),
    or its plain ones only (not `secrets`)."""
    ctx.db.execute(delete(EnvironmentVariable).where(
        EnvironmentVariable.environment_id == target_env_id))
    variables = [v for v in listed(ctx, EnvironmentVariable, source_env_id)
                 if secrets or v.kind != "secret"]
    ctx.db.add_all(EnvironmentVariable(id=new_id("var"), environment_id=target_env_id, key=v.key,
                                       exposure=v.exposure, kind=v.kind, scope=v.scope,
                                       value=v.value) for v in variables)
    return len(variables)


def plaintext(ctx: Context, v: Variable) -> str:
    return ctx.secrets.decrypt(v.value) if v.kind == "secret" else v.value


def effective(ctx: Context, environment_id: str, resource_id: str | None = None) -> list[Variable]:
    """Environment variables overridden by the resource's own, by (key, exposure)."""
    merged = {(v.key, v.exposure): v for v in listed(ctx, EnvironmentVariable, environment_id)}
    if resource_id:
        merged.update({(v.key, v.exposure): v for v in listed(ctx, ResourceVariable, resource_id)})
    return [merged[k] for k in sorted(merged)]
