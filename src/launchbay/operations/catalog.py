"""The operations catalog: the one way state is read and changed.

Each operation is declared once with `@operation(key, role=..., audit=...)` on a handler
`(ctx, input) -> output` whose annotations give the typed input and output. `run` validates
the input, resolves the organization the operation acts in, checks the caller's role and
token scopes, runs the handler in one transaction, and records the audit event.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, get_type_hints

from pydantic import BaseModel, ValidationError
from sqlalchemy import event, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import ORMExecuteState, sessionmaker
from sqlalchemy.orm import Session as DbSession

from launchbay.crypto import SecretBox
from launchbay.drivers.oidc import OidcClient
from launchbay.engine import ledger
from launchbay.engine.targets import Targets
from launchbay.operations import idempotency
from launchbay.operations.errors import (
    Forbidden,
    Invalid,
    NotFound,
    OperationError,
    Unauthenticated,
    validation_failed,
)
from launchbay.operations.idempotency import Idempotent
from launchbay.settings import Settings
from launchbay.store import audit
from launchbay.store.models import AuditEvent, Deployment, Membership, OperatorWork, Resource

if TYPE_CHECKING:
    from launchbay.engine.health_monitor import HealthMonitor
    from launchbay.engine.routing import EdgeProxy

Role = Literal["viewer", "developer", "admin", "owner"]
ROLES: tuple[Role, ...] = ("viewer", "developer", "admin", "owner")
Scope = Literal["public", "account", "organization"]

def role_at_least(role: str, needed: str) -> bool:
    return ROLES.index(role) >= ROLES.index(needed)


@dataclass(frozen=True)
class Actor:
    """Who calls: a user through a session, or through an API token with scopes."""

    user_id: str
    organization_id: str | None
    session_id: str | None = None
    token_id: str | None = None
    scopes: frozenset[str] | None = None  # None: a session, limited only by role
    # A deploy token's: the operations it may run and the resources they may be about
    # (`deploy_tokens.allows`); None for everyone else.
    targets: DeployTargets | None = None

    def scope_allows(self, family: str, write: bool) -> bool:
        if self.scopes is None or "*" in self.scopes:
            return True
        wanted = {f"{family}:write", f"{family}:*"} if write else {
            f"{family}:read", f"{family}:write", f"{family}:*"
        }
        return bool(self.scopes & wanted)


@dataclass
class Meta:
    """Facts about the request that some operations record (sessions, audit)."""

    ip_address: str | None = None
    user_agent: str | None = None


@dataclass
class Context:
    db: DbSession
    settings: Settings
    secrets: SecretBox
    actor: Actor | None
    organization_id: str | None
    role: Role | None
    meta: Meta
    operation: Operation
    targets: Targets | None = None
    wake: Callable[[], None] = lambda: None
    edge: EdgeProxy | None = None
    health: HealthMonitor | None = None  # the control plane's, when it runs one
    oidc: OidcClient | None = None  # the OpenID Connect provider, when one is configured
    audited: list[AuditEvent] = field(default_factory=list)
    unchanged: bool = False  # a mutating operation that found nothing to change
    callbacks: list[Callable[[], None]] = field(default_factory=list)

    @property
    def user_id(self) -> str:
        assert self.actor is not None
        return self.actor.user_id

    @property
    def org_id(self) -> str:
        assert self.organization_id is not None
        return self.organization_id

    def audit(self, aggregate_id: str | None, *, event_type: str | None = None,
              **payload: Any) -> None:
        """Records this operation's audit event (or another `event_type`, for what it does
        to other objects) in its transaction; secrets never reach it."""
        self.audited.append(audit.record(
            self.db, event_type or self.operation.audit or self.operation.key, aggregate_id,
            organization_id=self.organization_id,
            actor_user_id=self.actor.user_id if self.actor else None,
            actor_token_id=self.actor.token_id if self.actor else None, **payload))

    def enqueue(self, kind: str, operation_key: str, **refs: Any) -> OperatorWork:
        """Adds engine work in this transaction; workers are woken once it commits."""
        item = ledger.enqueue(self.db, kind, operation_key,
                              organization_id=self.organization_id, **refs)
        self.after_commit(self.wake)
        return item

    @property
    def runtime(self) -> Targets:
        assert self.targets is not None, "this control plane has no runtime targets"
        return self.targets

    def end_reads(self) -> None:
        """Ends the transaction of what the operation has read so far (and gives its
        connection back) before slow I/O such as a git checkout or an install: nothing waits
        on it meanwhile. Only before anything is written; what was loaded stays usable and
        later statements start a new transaction."""
        assert not (self.audited or self.db.new or self.db.dirty or self.db.deleted), \
            "end_reads comes before the operation changes anything"
        self.db.commit()

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Runs `callback` once the operation's transaction has committed (e.g. wake workers)."""
        self.callbacks.append(callback)


@dataclass(frozen=True)
class Operation:
    key: str
    handler: Callable[[Context, Any], Any]
    input: type[BaseModel]
    output: type[BaseModel] | None
    scope: Scope
    role: Role | None
    audit: str | None
    description: str
    role_for: Callable[[Any], Role] | None = None

    @property
    def family(self) -> str:
        return self.key.split(".", 1)[0]

    @property
    def mutates(self) -> bool:
        return self.audit is not None

    @property
    def changes_as_caller(self) -> bool:
        """A state change made with the caller's authority (not a public one, such as a
        login): a browser's session cookie alone must not be enough to ask for it."""
        return self.mutates and self.scope != "public"

    def required_role(self, data: Any = None) -> Role | None:
        if self.role_for is not None and data is not None:
            return self.role_for(data)
        return self.role


CATALOG: dict[str, Operation] = {}


def membership_role(db: DbSession, user_id: str, org_id: str) -> Role | None:
    return db.scalar(select(Membership.role).where(
        Membership.organization_id == org_id, Membership.user_id == user_id))


def role_in(db: DbSession, actor: Actor, org_id: str | None,
            known: dict[tuple[str, str], Role | None] | None = None) -> Role | None:
    """The actor's role in an organization; a token only ever acts in its own. `known`: the
    roles already looked up for this request (a `Visit`'s)."""
    if org_id is None or (actor.token_id and org_id != actor.organization_id):
        return None
    if known is None:
        return membership_role(db, actor.user_id, org_id)
    if (actor.user_id, org_id) not in known:
        known[actor.user_id, org_id] = membership_role(db, actor.user_id, org_id)
    return known[actor.user_id, org_id]


WROTE = "launchbay.wrote"  # in a session's `info`: it flushed or ran a change since


@event.listens_for(DbSession, "after_flush")
def _flushed(session: DbSession, _: Any) -> None:
    session.info[WROTE] = True


@event.listens_for(DbSession, "do_orm_execute")
def _executes(state: ORMExecuteState) -> None:
    if not state.is_select:
        state.session.info[WROTE] = True


class Visit:
    """The reads of one request (an API read, a console page): one store session and one
    transaction for the caller's authentication and every operation the request reads
    through (a page reads one connection's worth of the store, not one per operation); the
    caller's role in an organization looked up once. What a read writes (an activity
    stamp) is committed when that read ends. Used by one thread at a time."""

    def __init__(self, sessions: sessionmaker):
        self.db: DbSession = sessions()
        self.roles: dict[tuple[str, str], Role | None] = {}

    def settle(self) -> None:
        """Ends a read: commits what it wrote, else the transaction reads on."""
        if self.db.info.pop(WROTE, False) or self.db.new or self.db.dirty or self.db.deleted:
            self.db.commit()

    def close(self) -> None:
        self.db.close()


@dataclass(frozen=True)
class DeployTargets:
    """What a deploy token may act on: operation keys, and resources named directly or by
    their environment or project."""

    operations: frozenset[str]
    resource_ids: frozenset[str] = frozenset()
    environment_ids: frozenset[str] = frozenset()
    project_ids: frozenset[str] = frozenset()


def credential_refusal(op: Operation, actor: Actor | None) -> OperationError | None:
    """Why the caller's credentials cannot run `op` (no login, or token scopes), if they can't."""
    if op.scope == "public":
        return None
    if actor is None:
        return Unauthenticated("authentication required")
    if actor.targets is not None and op.key not in actor.targets.operations:
        return Forbidden(f"a deploy token cannot {op.key}", code="deploy_token_forbidden")
    if not actor.scope_allows(op.family, op.mutates):
        needed = f"{op.family}:{'write' if op.mutates else 'read'}"
        return Forbidden(f"token scopes do not include {needed}", code="insufficient_scope",
                         details={"needed": needed})
    return None


def _targeted(db: DbSession, targets: DeployTargets, payload: BaseModel) -> bool:
    """Whether the resource the input is about (by its id, or its deployment's) is one the
    deploy token reaches; an input about no resource is not."""
    resource_id = getattr(payload, "resource_id", None)
    if resource_id is None and (deployment_id := getattr(payload, "deployment_id", None)):
        resource_id = db.scalar(select(Deployment.resource_id).where(
            Deployment.id == deployment_id))
    r = db.get(Resource, resource_id) if resource_id else None
    return r is not None and (r.id in targets.resource_ids or r.environment_id in
                              targets.environment_ids or r.project_id in targets.project_ids)


def role_refusal(op: Operation, role: Role | None, needed: Role | None) -> OperationError | None:
    """Why a caller with `role` in the organization (None: not a member) cannot run `op`."""
    if op.scope != "organization":
        return None
    if role is None:
        return NotFound("organization not found", code="organization_not_found")
    if needed and not role_at_least(role, needed):
        return Forbidden(f"{op.key} needs the {needed} role; you are {role}",
                         details={"needed": needed, "role": role})
    return None


def operation(
    key: str,
    *,
    scope: Scope = "organization",
    role: Role | None = "viewer",
    audit: str | None = None,
    role_for: Callable[[Any], Role] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declares an operation. `audit` names the event of a state change; reads have none."""

    def register(handler: Callable[..., Any]) -> Callable[..., Any]:
        hints = get_type_hints(handler)
        params = list(inspect.signature(handler).parameters)
        output = hints.get("return")
        assert key not in CATALOG, f"operation {key} declared twice"
        CATALOG[key] = Operation(
            key=key,
            handler=handler,
            input=hints[params[1]],
            output=output if isinstance(output, type) and issubclass(output, BaseModel) else None,
            scope=scope,
            role=role if scope == "organization" else None,
            audit=audit,
            description=inspect.getdoc(handler) or key,
            role_for=role_for,
        )
        return handler

    return register


def refuse_nul(data: Any, path: str = "") -> None:
    """No input holds a NUL character: no store can keep one (PostgreSQL refuses it) and no
    process environment or file name either."""
    if isinstance(data, str):
        if "\x00" in data:
            raise Invalid("Validation failed", details=[
                {"field": path or "body", "message": "contains a NUL character"}])
    elif isinstance(data, dict):
        for key, value in data.items():
            refuse_nul(key, path)
            refuse_nul(value, f"{path}.{key}" if path else str(key))
    elif isinstance(data, list):
        for n, value in enumerate(data):
            refuse_nul(value, f"{path}.{n}")


class Operations:
    """Runs catalog operations against one store; faces and the CLI server hold one."""

    def __init__(self, settings: Settings, sessions: sessionmaker, targets: Targets | None = None,
                 wake: Callable[[], None] | None = None):
        self.settings = settings
        self.sessions = sessions
        self.secrets = SecretBox(settings.secret_key)
        self.targets = targets
        self.wake = wake or (lambda: None)
        self.edge: EdgeProxy | None = None  # the control plane's, when it runs one
        self.health: HealthMonitor | None = None
        self.oidc = OidcClient.from_settings(settings)

    def run(
        self,
        key: str,
        actor: Actor | None,
        data: dict[str, Any] | BaseModel | None = None,
        meta: Meta | None = None,
        visit: Visit | None = None,
    ) -> Any:
        """Runs `key` as `actor` in a transaction of its own (of `visit`'s session for a
        read that is part of a request's `Visit`)."""
        op = CATALOG.get(key)
        if op is None:
            raise NotFound(f"unknown operation {key}", code="unknown_operation")
        if visit is not None and op.mutates:
            visit = None  # a change is always a session of its own
        if refused := credential_refusal(op, actor):  # before validation: strangers learn
            raise refused                               # nothing of the inputs
        try:
            if not isinstance(data, op.input):
                refuse_nul(data or {})
            payload = data if isinstance(data, op.input) else op.input.model_validate(data or {})
        except ValidationError as exc:
            raise validation_failed(exc.errors()) from None
        keyed = payload if isinstance(payload, Idempotent) and payload.idempotency_key else None
        with nullcontext(visit.db) if visit else self.sessions() as db:
            try:
                org_id, role = self._authorize(db, op, actor, payload,
                                               visit.roles if visit else None)
                if keyed:
                    answered, first = idempotency.recall(db, org_id, key, op.output, keyed)
                    if answered:
                        return first
                ctx = Context(db, self.settings, self.secrets, actor, org_id, role,
                              meta or Meta(), op, self.targets, self.wake, self.edge,
                              self.health, self.oidc)
                result = op.handler(ctx, payload)
                if op.mutates and not ctx.audited and not ctx.unchanged:
                    raise RuntimeError(f"operation {key} changed state without an audit event")
                if keyed:
                    idempotency.remember(db, org_id, key, keyed, result)
                try:
                    visit.settle() if visit else db.commit()
                except IntegrityError:
                    if not keyed:
                        raise
                    db.rollback()  # the same key at the same moment: answer what it did
                    answered, first = idempotency.recall(db, org_id, key, op.output, keyed)
                    if not answered:
                        raise
                    return first
                for callback in ctx.callbacks:
                    callback()
                return result
            except OperationError as exc:
                if exc.commit:
                    db.commit()
                else:
                    db.rollback()
                raise
            except BaseException:
                db.rollback()
                raise

    def _authorize(
        self, db: DbSession, op: Operation, actor: Actor | None, payload: BaseModel,
        known: dict[tuple[str, str], Role | None] | None,
    ) -> tuple[str | None, Role | None]:
        if op.scope != "organization":
            return (actor.organization_id if actor else None), None
        assert actor is not None
        org_id = getattr(payload, "organization_id", None) or actor.organization_id
        role = role_in(db, actor, org_id, known)
        if refused := role_refusal(op, role, op.required_role(payload)):
            raise refused
        if actor.targets is not None and not _targeted(db, actor.targets, payload):
            raise Forbidden("the deploy token does not reach this resource",
                            code="deploy_token_forbidden")
        return org_id, role
