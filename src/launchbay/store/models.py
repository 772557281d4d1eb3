"""Tables of the control plane. Only operations read and write them."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnElement,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    ScalarSelect,
    Select,
    String,
    Text,
    UniqueConstraint,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, aliased, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC, so SQLite and PostgreSQL behave the same."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[str]: JSON}


class Organization(Base):
    __tablename__ = "organizations"
    __table_args__ = (Index("ix_organizations_created", "created_at"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(200), unique=True)
    logo_url: Mapped[str | None] = mapped_column(String(2000))
    plan: Mapped[str | None] = mapped_column(String(40))  # None: the instance's default plan
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class User(Base):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    avatar_url: Mapped[str | None] = mapped_column(String(2000))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    email_verified: Mapped[bool] = mapped_column(default=False)
    # `{issuer}|{sub}` of a user who signs in with OpenID Connect.
    external_id: Mapped[str | None] = mapped_column(String(500), unique=True)
    # What an OpenID Connect provider last said of the user (`sub`, username, groups): owner
    # keys of ephemeral environments come from it.
    claims: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("organization_id", "user_id"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(20))
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)


class Invitation(Base):
    __tablename__ = "invitations"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    inviter_user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    accepted_at: Mapped[datetime | None]


class Session(Base):
    """A login. The bearer secret is stored only as its hash."""

    __tablename__ = "sessions"
    __table_args__ = (Index("ix_sessions_user_created", "user_id", "created_at"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    organization_id: Mapped[str | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="SET NULL")
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_kind: Mapped[str] = mapped_column(String(20), default="web")
    ip_address: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    last_active_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class ApiToken(Base):
    """A scoped bearer token acting for its creator inside one organization."""

    __tablename__ = "api_tokens"
    __table_args__ = (Index("ix_api_tokens_user_kind_created", "user_id", "kind", "created_at"),
                      Index("ix_api_tokens_org_kind_created", "organization_id", "kind",
                            "created_at"))
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    display_name: Mapped[str] = mapped_column(String(200))
    scopes: Mapped[list[str]]
    # A deploy token (`kind` deploy) acts only on `targets`: {projectIds, environmentIds,
    # resourceIds, workflowCommands} (seed 004's deploy-token scope).
    kind: Mapped[str] = mapped_column(String(20), default="api")
    targets: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    secret_suffix: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    last_used_address: Mapped[str | None] = mapped_column(String(64))  # the client's
    rotated_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class Bootstrap(Base):
    """Steps of the instance's set-up that happen once: the row of `first-admin` is inserted
    by the request that creates the first admin, so concurrent requests cannot both do it."""

    __tablename__ = "bootstrap"
    step: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    completed_at: Mapped[datetime] = mapped_column(default=utcnow)


class LoginThrottle(Base):
    """Login attempts not known to be right, per key (`email:...` or `address:...`), in the
    current window, to slow down password guessing; `lockouts` makes each lock longer."""

    __tablename__ = "login_throttle"
    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    lockouts: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class WorkKind(StrEnum):
    """What a work item asks of the engine (each kind has its handler)."""

    DEPLOYMENT = "deployment"
    PROXY_BOOTSTRAP = "proxy-bootstrap"
    CERTIFICATE = "certificate"
    REMOTE_STATE = "remote-state"
    ROUTE_REALIZATION = "route-realization"
    RUNTIME_MAINTENANCE = "runtime-maintenance"
    DATABASE = "database"  # provision, back up, restore or remove a database
    STORAGE_VOLUME = "storage-volume"  # back up a storage volume, or restore into a new one
    OPERATION = "operation"  # an operation run on behalf of someone (a webhook's dispatch)
    TASK_RUN = "scheduled-task-run"  # start a scheduled task's run in a fresh container
    SYSTEM = "system"


class WorkStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    RETRY_SCHEDULED = "retry-scheduled"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    DEAD_LETTERED = "dead-lettered"


class DeploymentStatus(StrEnum):
    CREATED = "created"
    PLANNING = "planning"
    PLANNED = "planned"
    RUNNING = "running"
    CANCEL_REQUESTED = "cancel-requested"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    ROLLED_BACK = "rolled-back"


class LifecycleStatus(StrEnum):
    """Where a project, environment, resource or server is in its life (`lifecycle_status`)."""

    ACTIVE = "active"
    LOCKED = "locked"  # an environment: no changes until unlocked
    ARCHIVED = "archived"  # read-only; what runs keeps running
    DELETING = "deleting"  # a resource whose containers the engine is removing
    INACTIVE = "inactive"  # a server that takes no new deployments
    DELETED = "deleted"  # a server kept only for the history that names it


class ProjectKind(StrEnum):
    """Whose a project is: the organization's people's, or a feature's own home (made on
    first use, found by kind and slug, never by a slug alone: a user's project named
    "Services" is not Dployr's)."""

    USER = "user"
    DPLOYR = "dployr"  # `services`: services deployed from blueprints
    SHIPYARD = "shipyard"  # `hosted-<user>` and `hosted-team`: hosted deployments
    DPLOY = "dploy"  # `ephemeral`: environments on demand


class Project(Base):
    __tablename__ = "projects"
    __table_args__ = (UniqueConstraint("organization_id", "slug"),
                      Index("ix_projects_org_name", "organization_id", "name"))
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20), default=ProjectKind.USER,
                                      server_default=ProjectKind.USER.value)
    description: Mapped[str | None] = mapped_column(Text)
    lifecycle_status: Mapped[str] = mapped_column(String(20), default=LifecycleStatus.ACTIVE)
    archived_at: Mapped[datetime | None]
    archive_reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Environment(Base):
    __tablename__ = "environments"
    __table_args__ = (UniqueConstraint("project_id", "name"),
                      Index("ix_environments_org_created", "organization_id", "created_at"),
                      Index("ix_environments_org_project_created", "organization_id",
                            "project_id", "created_at"))
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    # Denormalized from the project so that every lookup can filter by organization.
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    parent_environment_id: Mapped[str | None] = mapped_column(
        ForeignKey("environments.id", ondelete="SET NULL")
    )
    lifecycle_status: Mapped[str] = mapped_column(String(20), default=LifecycleStatus.ACTIVE)
    locked_at: Mapped[datetime | None]
    lock_reason: Mapped[str | None] = mapped_column(String(500))
    archived_at: Mapped[datetime | None]
    archive_reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class VariableColumns:
    """Columns of a variable; `value` holds ciphertext when `kind` is `secret`."""

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key: Mapped[str] = mapped_column(String(200))
    exposure: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(20))
    scope: Mapped[str] = mapped_column(String(40))
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class EnvironmentVariable(VariableColumns, Base):
    __tablename__ = "environment_variables"
    __table_args__ = (UniqueConstraint("environment_id", "key", "exposure"),)
    environment_id: Mapped[str] = mapped_column(
        ForeignKey("environments.id", ondelete="CASCADE"), index=True
    )


class AuditEvent(Base):
    """One per state change; payloads are redacted before they are stored."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_org_created", "organization_id", "created_at"),
                      Index("ix_audit_org_aggregate", "organization_id", "aggregate_id",
                            "created_at"),
                      Index("ix_audit_org_type", "organization_id", "event_type", "created_at"))
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str | None] = mapped_column(String(40), index=True)
    actor_user_id: Mapped[str | None] = mapped_column(String(40))
    actor_token_id: Mapped[str | None] = mapped_column(String(40))
    event_type: Mapped[str] = mapped_column(String(100))
    aggregate_id: Mapped[str | None] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    redacted_fields: Mapped[list[str]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class SshCredential(Base):
    """A reusable SSH private key of an organization (seed 004's SSH credential): sealed,
    never shown again; servers name it, and it cannot go while one does."""

    __tablename__ = "ssh_credentials"
    __table_args__ = (Index("ix_ssh_credentials_org_created", "organization_id", "created_at"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(200))
    username: Mapped[str | None] = mapped_column(String(100))
    key_type: Mapped[str] = mapped_column(String(20))  # ed25519 | ecdsa | rsa
    key_bits: Mapped[int] = mapped_column(Integer)
    fingerprint: Mapped[str] = mapped_column(String(100))
    public_key: Mapped[str] = mapped_column(Text)
    sealed_private_key: Mapped[str] = mapped_column(Text)
    generated: Mapped[bool] = mapped_column(default=False)
    created_by: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    rotated_at: Mapped[datetime | None]


class Server(Base):
    """A deployment target: a Docker engine (the local one is registered on first start)."""

    __tablename__ = "servers"
    __table_args__ = (UniqueConstraint("organization_id", "provider_key", "host", "port"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    # None: shared by every organization (the local engine); else owned by one.
    organization_id: Mapped[str | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    host: Mapped[str] = mapped_column(String(300))
    port: Mapped[int] = mapped_column(Integer, default=0)
    provider_key: Mapped[str] = mapped_column(String(40))
    target_kind: Mapped[str] = mapped_column(String(40), default="single-server")
    docker_url: Mapped[str | None] = mapped_column(String(500))
    # The SSH credential it is reached with: a credential in use cannot be deleted (RESTRICT:
    # never a server silently left without one).
    credential_id: Mapped[str | None] = mapped_column(
        ForeignKey("ssh_credentials.id", ondelete="RESTRICT"), index=True)
    ssh_username: Mapped[str | None] = mapped_column(String(100))
    # The server's SSH host key, pinned at registration: another is refused until an admin
    # pins it again.
    host_public_key: Mapped[str | None] = mapped_column(Text)
    host_key_fingerprint: Mapped[str | None] = mapped_column(String(100))
    # A swarm manager's other nodes: {address: host key}, pinned with the manager's (images
    # reach the nodes through it); a node not pinned, or presenting another key, is refused.
    node_host_keys: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    connectivity_status: Mapped[str | None] = mapped_column(String(20))
    connectivity_checked_at: Mapped[datetime | None]
    # Background probes failed in a row: two make the server unreachable (one is a blip).
    probe_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Where the server's domains should point (DNS checks compare with it): its host unless
    # set (a server reached over SSH on a private address, say).
    public_address: Mapped[str | None] = mapped_column(String(300))
    # active -> inactive (takes no new deployments) -> deleted (kept: its history refers to it)
    lifecycle_status: Mapped[str] = mapped_column(String(20), default=LifecycleStatus.ACTIVE)
    deactivated_at: Mapped[datetime | None]
    deactivation_reason: Mapped[str | None] = mapped_column(String(500))
    # The edge proxy of the server: its kind (caddy | none) and the last bootstrap's outcome.
    edge_proxy_kind: Mapped[str] = mapped_column(String(20), default="caddy")
    edge_proxy_status: Mapped[str] = mapped_column(String(20), default="pending")
    edge_proxy_checked_at: Mapped[datetime | None]
    edge_proxy_ready_at: Mapped[datetime | None]
    edge_proxy_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Resource(Base):
    """An application (or service) of an environment; profiles are validated JSON documents."""

    __tablename__ = "resources"
    __table_args__ = (UniqueConstraint("environment_id", "slug"),
                      Index("ix_resources_org_name", "organization_id", "name"),
                      Index("ix_resources_project_name", "project_id", "name"),
                      Index("ix_resources_org_env_name", "organization_id", "environment_id",
                            "name"),
                      Index("ix_resources_org_project_created", "organization_id",
                            "project_id", "created_at"))
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    environment_id: Mapped[str] = mapped_column(
        ForeignKey("environments.id", ondelete="CASCADE"), index=True
    )
    server_id: Mapped[str] = mapped_column(ForeignKey("servers.id"))
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(40), default="application")
    description: Mapped[str | None] = mapped_column(Text)
    source: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    runtime_profile: Mapped[dict[str, Any]] = mapped_column(default=dict)
    network_profile: Mapped[dict[str, Any]] = mapped_column(default=dict)
    health_policy: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    access_profile: Mapped[dict[str, Any]] = mapped_column(default=dict)
    lifecycle_status: Mapped[str] = mapped_column(String(20), default=LifecycleStatus.ACTIVE)
    archived_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The deployment whose container serves now (no FK: deployments point here too).
    current_deployment_id: Mapped[str | None] = mapped_column(String(40))


class ResourceVariable(VariableColumns, Base):
    """A resource-level override of an environment variable."""

    __tablename__ = "resource_variables"
    __table_args__ = (UniqueConstraint("resource_id", "key", "exposure"),)
    resource_id: Mapped[str] = mapped_column(
        ForeignKey("resources.id", ondelete="CASCADE"), index=True
    )


class StorageVolume(Base):
    """A named Docker volume. Only an explicit delete of the volume removes its data."""

    __tablename__ = "storage_volumes"
    __table_args__ = (UniqueConstraint("environment_id", "slug"),
                      Index("ix_storage_volumes_org_name", "organization_id", "name"),
                      Index("ix_storage_volumes_org_project_name", "organization_id",
                            "project_id", "name"),
                      Index("ix_storage_volumes_org_env_name", "organization_id",
                            "environment_id", "name"))
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    environment_id: Mapped[str] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20), default="named-volume")
    description: Mapped[str | None] = mapped_column(Text)
    docker_name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StorageAttachment(Base):
    __tablename__ = "storage_attachments"
    __table_args__ = (UniqueConstraint("resource_id", "destination_path"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    resource_id: Mapped[str] = mapped_column(
        ForeignKey("resources.id", ondelete="CASCADE"), index=True
    )
    storage_volume_id: Mapped[str] = mapped_column(ForeignKey("storage_volumes.id"), index=True)
    destination_path: Mapped[str] = mapped_column(String(500))
    mount_mode: Mapped[str] = mapped_column(String(20), default="read-write")
    attached_at: Mapped[datetime] = mapped_column(default=utcnow)


class Database(Base):
    """A database of an environment (seed 004's dependency resource): a container of its kind
    with a named volume, or an external one imported by its URL. Its password (or imported
    URL) is sealed; its volume goes only with an explicit delete of the database."""

    __tablename__ = "databases"
    __table_args__ = (UniqueConstraint("environment_id", "slug"),
                      Index("ix_databases_org_name", "organization_id", "name"),
                      Index("ix_databases_org_project_name", "organization_id", "project_id",
                            "name"),
                      Index("ix_databases_org_env_name", "organization_id", "environment_id",
                            "name"),
                      Index("ix_databases_org_kind_name", "organization_id", "kind", "name"))
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    # No cascade: an environment or project with a database is not deleted under it.
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    environment_id: Mapped[str] = mapped_column(ForeignKey("environments.id"), index=True)
    server_id: Mapped[str] = mapped_column(ForeignKey("servers.id"))
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))  # postgres | mysql | redis
    source_mode: Mapped[str] = mapped_column(String(20), default="managed")  # or imported
    description: Mapped[str | None] = mapped_column(Text)
    image: Mapped[str | None] = mapped_column(String(300))
    host: Mapped[str] = mapped_column(String(300))
    port: Mapped[int] = mapped_column(Integer)
    database_name: Mapped[str | None] = mapped_column(String(200))
    username: Mapped[str | None] = mapped_column(String(200))  # its owner
    login: Mapped[str | None] = mapped_column(String(200))  # who apps log in as, if not its owner
    sealed_secret: Mapped[str] = mapped_column(Text)  # the login's password, or an imported URL
    secret_version: Mapped[int] = mapped_column(Integer, default=1)  # rotations + 1
    sealed_admin_secret: Mapped[str | None] = mapped_column(Text)  # MySQL's root password
    volume_name: Mapped[str | None] = mapped_column(String(200))
    container_id: Mapped[str | None] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(20), default="provisioning")
    failure_code: Mapped[str | None] = mapped_column(String(80))
    failure_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    realized_at: Mapped[datetime | None]
    deleted_at: Mapped[datetime | None]


class DatabaseBinding(Base):
    """A database bound to a resource: its URL (and the kind's usual discrete variables) in
    every deployment of the resource from then on."""

    __tablename__ = "database_bindings"
    __table_args__ = (UniqueConstraint("resource_id", "target_name"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    resource_id: Mapped[str] = mapped_column(
        ForeignKey("resources.id", ondelete="CASCADE"), index=True
    )
    database_id: Mapped[str] = mapped_column(ForeignKey("databases.id"), index=True)
    target_name: Mapped[str] = mapped_column(String(200))
    discrete: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AutoDeployPolicy(Base):
    """When a resource deploys itself from its git repository's events (seed 004's auto-deploy
    policy): which refs and kinds of event, which paths; verified with its own webhook
    secret (sealed), so that only whoever holds it can trigger it."""

    __tablename__ = "auto_deploy_policies"
    __table_args__ = (Index("ix_auto_deploy_policies_org_updated", "organization_id",
                            "updated_at"),)
    resource_id: Mapped[str] = mapped_column(
        ForeignKey("resources.id", ondelete="CASCADE"), primary_key=True
    )
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    # The link's own name (seed 004's source fingerprint): it stays when the link is moved.
    fingerprint: Mapped[str] = mapped_column(String(40), unique=True)
    repository: Mapped[str] = mapped_column(String(500), index=True)  # `repository_key` of it
    status: Mapped[str] = mapped_column(String(20), default="enabled")  # or disabled
    trigger_kind: Mapped[str] = mapped_column(String(40), default="git-push")
    refs: Mapped[list[str]] = mapped_column(JSON, default=list)
    event_kinds: Mapped[list[str]] = mapped_column(JSON, default=list)
    include_paths: Mapped[list[str]] = mapped_column(JSON, default=list)
    exclude_paths: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Checks (commit statuses or check runs, by name) a pushed commit must have passed on
    # GitHub before it deploys.
    required_checks: Mapped[list[str]] = mapped_column(JSON, default=list)
    dedupe_window_seconds: Mapped[int] = mapped_column(Integer, default=300)
    sealed_webhook_secret: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(40))  # whom its deployments are made for
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class SourceEvent(Base):
    """One verified delivery of a repository's event, for one organization: its facts (never
    the raw payload), and what came of it for each policy that matched."""

    __tablename__ = "source_events"
    __table_args__ = (UniqueConstraint("organization_id", "source_kind", "delivery_id"),
                      Index("ix_source_events_org_received", "organization_id", "received_at"),
                      Index("ix_source_events_org_project", "organization_id", "project_id",
                            "received_at"),
                      Index("ix_source_events_facts", "organization_id", "repository", "ref",
                            "revision"))
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    project_id: Mapped[str | None] = mapped_column(String(40))  # of the first resource matched
    source_kind: Mapped[str] = mapped_column(String(20))  # github | gitlab | gitea | generic
    event_kind: Mapped[str] = mapped_column(String(20))  # push | tag | pull-request
    delivery_id: Mapped[str] = mapped_column(String(200))
    repository: Mapped[str] = mapped_column(String(500))
    ref: Mapped[str] = mapped_column(String(500))  # a pull request's: its head branch
    revision: Mapped[str] = mapped_column(String(64))
    before_revision: Mapped[str | None] = mapped_column(String(64))
    # A pull request event's: its number, what happened (opened, synchronize, closed...), the
    # branch it would merge into, and where its head is (a fork's repository, or this one).
    pull_request_number: Mapped[int | None] = mapped_column(Integer)
    pull_request_action: Mapped[str | None] = mapped_column(String(20))
    base_ref: Mapped[str | None] = mapped_column(String(500))
    head_repository: Mapped[str | None] = mapped_column(String(500))
    # accepted -> dispatched | ignored | failed; or deduped at once
    status: Mapped[str] = mapped_column(String(20), default="accepted")
    dedupe_of_id: Mapped[str | None] = mapped_column(String(40))
    resource_ids: Mapped[list[str]] = mapped_column(JSON, default=list)  # whose policies matched
    policy_results: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    dispatched_at: Mapped[datetime | None]


class PreviewPolicy(Base):
    """Whether and how a project's (or one resource's) pull requests get previews (seed 004's
    preview policy); without one, the defaults of `operations/previews.py` apply."""

    __tablename__ = "preview_policies"
    __table_args__ = (UniqueConstraint("project_id", "resource_id"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    # None: the project's policy; else this resource's, which wins over the project's.
    resource_id: Mapped[str | None] = mapped_column(
        ForeignKey("resources.id", ondelete="CASCADE"))
    same_repository: Mapped[bool] = mapped_column(default=True)
    fork_previews: Mapped[str] = mapped_column(String(20), default="disabled")
    secret_backed: Mapped[bool] = mapped_column(default=False)
    max_active: Mapped[int] = mapped_column(Integer, default=5)
    ttl_hours: Mapped[int] = mapped_column(Integer, default=72)
    created_by: Mapped[str] = mapped_column(String(40))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class PreviewEnvironment(Base):
    """A pull request's preview of a resource: an environment cloned from the resource's (its
    variables, secrets only when the policy says so; no domains, volumes or databases), with
    a copy of the resource deployed at the pull request's head. It outlives its cleanup (as
    `cleaned`), so its history stays readable."""

    __tablename__ = "preview_environments"
    __table_args__ = (UniqueConstraint("resource_id", "repository", "pull_request_number"),
                      Index("ix_preview_environments_org_created", "organization_id",
                            "created_at"),
                      Index("ix_preview_environments_org_resource", "organization_id",
                            "resource_id", "created_at"),
                      Index("ix_preview_environments_org_project", "organization_id",
                            "project_id", "created_at"),
                      Index("ix_preview_environments_due", "status", "expires_at"))
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    # The resource previewed (and its environment, the preview's base).
    resource_id: Mapped[str] = mapped_column(ForeignKey("resources.id", ondelete="CASCADE"))
    base_environment_id: Mapped[str] = mapped_column(String(40))
    # The preview's own environment and copy of the resource (None once cleaned up).
    environment_id: Mapped[str | None] = mapped_column(String(40))
    preview_resource_id: Mapped[str | None] = mapped_column(String(40))
    server_id: Mapped[str] = mapped_column(String(40))
    fingerprint: Mapped[str] = mapped_column(String(40), unique=True)  # seed's source fingerprint
    provider: Mapped[str] = mapped_column(String(20))
    repository: Mapped[str] = mapped_column(String(500))  # `repository_key`
    head_repository: Mapped[str] = mapped_column(String(500))
    pull_request_number: Mapped[int] = mapped_column(Integer)
    base_ref: Mapped[str] = mapped_column(String(500))
    head_ref: Mapped[str] = mapped_column(String(500))
    head_sha: Mapped[str] = mapped_column(String(64))
    fork: Mapped[bool] = mapped_column(default=False)
    with_secrets: Mapped[bool] = mapped_column(default=False)
    # active -> cleanup-requested -> cleaned (reopened: active again)
    status: Mapped[str] = mapped_column(String(20), default="active")
    cleanup_reason: Mapped[str | None] = mapped_column(String(40))  # closed | expired | deleted
    last_deployment_id: Mapped[str | None] = mapped_column(String(40))
    created_by: Mapped[str] = mapped_column(String(40))  # whom its work runs as
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(default=utcnow)
    cleaned_at: Mapped[datetime | None]


class GitHubConnection(Base):
    """An organization's GitHub App installation (seed 004's app connection): which app,
    which installation, at which API (github.com's or a GitHub Enterprise Server's), and its
    private key, sealed."""

    __tablename__ = "github_connections"
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    app_id: Mapped[str] = mapped_column(String(40))
    installation_id: Mapped[str] = mapped_column(String(40))
    api_url: Mapped[str] = mapped_column(String(500))
    sealed_private_key: Mapped[str] = mapped_column(Text)
    account_login: Mapped[str | None] = mapped_column(String(200))
    account_type: Mapped[str | None] = mapped_column(String(40))
    repositories_selection: Mapped[str | None] = mapped_column(String(20))
    suspended_at: Mapped[str | None] = mapped_column(String(40))  # as GitHub says it
    report_statuses: Mapped[bool] = mapped_column(default=True)
    created_by: Mapped[str] = mapped_column(String(40))  # whom its reports run as
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class CommitStatus(Base):
    """A deployment a GitHub event made, whose outcome is reported to the commit (pending,
    then success or failure); `done` once its last state is reported or reporting gave up."""

    __tablename__ = "commit_statuses"
    __table_args__ = (Index("ix_commit_statuses_due", "done", "next_attempt_at"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    deployment_id: Mapped[str] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE"), unique=True
    )
    repository: Mapped[str] = mapped_column(String(500))  # owner/name
    sha: Mapped[str] = mapped_column(String(64))
    context: Mapped[str] = mapped_column(String(200))
    reported_state: Mapped[str | None] = mapped_column(String(20))
    done: Mapped[bool] = mapped_column(default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class CredentialRotation(Base):
    """A change of a database's password (seed 004's binding secret rotation): the new login
    is added beside the old one, resources bound to the database are redeployed with it, and
    only then is the old one revoked."""

    __tablename__ = "database_credential_rotations"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    database_id: Mapped[str] = mapped_column(ForeignKey("databases.id"), index=True)
    binding_id: Mapped[str] = mapped_column(String(40))  # the binding it was asked through
    requested_by: Mapped[str] = mapped_column(String(40))  # whom the redeploys are made for
    version: Mapped[int] = mapped_column(Integer)  # the database's secret version it makes
    # adding -> redeploying -> revoking -> completed, or failed
    status: Mapped[str] = mapped_column(String(20), default="adding", index=True)
    reason: Mapped[str | None] = mapped_column(Text)
    new_login: Mapped[str | None] = mapped_column(String(200))
    sealed_new_secret: Mapped[str | None] = mapped_column(Text)  # until it is the database's
    old_login: Mapped[str | None] = mapped_column(String(200))
    sealed_old_secret: Mapped[str | None] = mapped_column(Text)  # until it is revoked
    deployment_ids: Mapped[list[str]] = mapped_column(JSON, default=list)  # redeploys it made
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    swapped_at: Mapped[datetime | None]  # since when deployments get the new login
    completed_at: Mapped[datetime | None]


class Backup(Base):
    """One backup of a database or of a storage volume: `ready` only once its file was
    verified. (The table's name is older than volume backups.) A volume's backups outlive
    it: their rows and files stay when it is deleted."""

    __tablename__ = "database_backups"
    __table_args__ = (Index("ix_database_backups_database_created", "database_id",
                            "created_at"),
                      Index("ix_database_backups_volume_created", "storage_volume_id",
                            "created_at"))
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    database_id: Mapped[str | None] = mapped_column(ForeignKey("databases.id"))
    storage_volume_id: Mapped[str | None] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(20))  # the database's kind, or volume
    reason: Mapped[str] = mapped_column(String(40), default="manual")  # or safety, scheduled
    status: Mapped[str] = mapped_column(String(20), default="pending")
    phase: Mapped[str | None] = mapped_column(String(40))
    failure_code: Mapped[str | None] = mapped_column(String(80))
    failure_message: Mapped[str | None] = mapped_column(Text)
    file_name: Mapped[str | None] = mapped_column(String(300))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    policy_id: Mapped[str | None] = mapped_column(String(40))  # the policy that made it
    destination_ids: Mapped[list[str]] = mapped_column(JSON, default=list)  # besides local
    work_id: Mapped[str | None] = mapped_column(String(40))  # the attempt that makes it
    restore_work_id: Mapped[str | None] = mapped_column(String(40))  # its latest restore
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None]
    restored_at: Mapped[datetime | None]


class BackupPolicy(Base):
    """When a database is backed up (a cron schedule in a time zone, or every N hours) and
    how many of those backups are kept (by count and age; never the newest good one)."""

    __tablename__ = "database_backup_policies"
    __table_args__ = (Index("ix_database_backup_policies_due", "enabled", "next_run_at"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    database_id: Mapped[str] = mapped_column(ForeignKey("databases.id"), unique=True)
    created_by: Mapped[str] = mapped_column(String(40))  # whom the scheduler acts for
    schedule: Mapped[str | None] = mapped_column(String(100))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    interval_hours: Mapped[int | None] = mapped_column(Integer)
    retention_days: Mapped[int | None] = mapped_column(Integer)
    retention_count: Mapped[int | None] = mapped_column(Integer)
    retry_on_failure: Mapped[bool] = mapped_column(default=True)
    enabled: Mapped[bool] = mapped_column(default=True)
    destination_ids: Mapped[list[str]] = mapped_column(JSON, default=list)  # besides local
    version: Mapped[int] = mapped_column(Integer, default=1)
    last_run_at: Mapped[datetime | None]
    next_run_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ScheduledTask(Base):
    """A job of a resource: a command run on a schedule (cron in a time zone, or `@every`) in
    a fresh container of the resource's current release."""

    __tablename__ = "scheduled_tasks"
    __table_args__ = (Index("ix_scheduled_tasks_due", "status", "next_fire_at"),
                      Index("ix_scheduled_tasks_org", "organization_id", "created_at", "id"),
                      Index("ix_scheduled_tasks_org_resource", "organization_id",
                            "resource_id", "created_at", "id"))
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"))
    project_id: Mapped[str] = mapped_column(String(40))
    environment_id: Mapped[str] = mapped_column(String(40))
    resource_id: Mapped[str] = mapped_column(ForeignKey("resources.id", ondelete="CASCADE"))
    created_by: Mapped[str] = mapped_column(String(40))  # whom the scheduler acts for
    name: Mapped[str] = mapped_column(String(200))
    schedule: Mapped[str] = mapped_column(String(100))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    command_kind: Mapped[str] = mapped_column(String(10))  # shell | argv
    command: Mapped[list[str]] = mapped_column(JSON)  # [shell string] or the argv
    timeout_seconds: Mapped[int] = mapped_column(Integer, default=3600)
    retry_limit: Mapped[int] = mapped_column(Integer, default=0)
    concurrency_policy: Mapped[str] = mapped_column(String(10), default="forbid")
    misfire_policy: Mapped[str] = mapped_column(String(10), default="skip")
    status: Mapped[str] = mapped_column(String(10), default="enabled")  # | disabled
    next_fire_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ScheduledTaskRun(Base):
    """One run of a task: admitted once per fire time (the unique key), started in a container
    by a work item, then watched until it ends. A retry is a run of its own."""

    __tablename__ = "scheduled_task_runs"
    __table_args__ = (UniqueConstraint("task_id", "scheduled_for", "attempt"),
                      Index("ix_scheduled_task_runs_task", "task_id", "created_at", "id"),
                      Index("ix_scheduled_task_runs_org", "organization_id", "created_at", "id"),
                      Index("ix_scheduled_task_runs_org_task", "organization_id", "task_id",
                            "created_at", "id"),
                      Index("ix_scheduled_task_runs_org_resource", "organization_id",
                            "resource_id", "created_at", "id"),
                      Index("ix_scheduled_task_runs_status", "status"))
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(String(40))
    task_id: Mapped[str] = mapped_column(ForeignKey("scheduled_tasks.id", ondelete="CASCADE"))
    resource_id: Mapped[str] = mapped_column(String(40))
    server_id: Mapped[str] = mapped_column(String(40))
    trigger_kind: Mapped[str] = mapped_column(String(10))  # manual | scheduled
    # The fire time it was admitted for (a manual run: when it was asked for).
    scheduled_for: Mapped[datetime]
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    # accepted -> running -> succeeded | failed | timed-out; or skipped (with its reason)
    status: Mapped[str] = mapped_column(String(12), default="accepted")
    skipped_reason: Mapped[str | None] = mapped_column(String(40))
    stop_reason: Mapped[str | None] = mapped_column(String(20))  # timed-out | replaced | ...
    deployment_id: Mapped[str | None] = mapped_column(String(40))  # the release it ran
    container_id: Mapped[str | None] = mapped_column(String(80))
    exit_code: Mapped[int | None] = mapped_column(Integer)
    failure_summary: Mapped[str | None] = mapped_column(Text)
    not_before: Mapped[datetime | None]  # a retry's backoff
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class TaskRunLine(Base):
    """A line a run wrote (secrets masked), kept when the run ends."""

    __tablename__ = "scheduled_task_run_lines"
    __table_args__ = (Index("ix_scheduled_task_run_lines_run", "run_id", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("scheduled_task_runs.id",
                                                   ondelete="CASCADE"))
    at: Mapped[datetime]
    stream: Mapped[str] = mapped_column(String(6))
    message: Mapped[str] = mapped_column(Text)


class BackupDestination(Base):
    """S3-compatible object storage that backups are copied to (besides the server's own
    folder). Its keys are sealed."""

    __tablename__ = "backup_destinations"
    __table_args__ = (UniqueConstraint("organization_id", "name"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20), default="s3")
    endpoint: Mapped[str] = mapped_column(String(500))
    bucket: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(500), default="")
    region: Mapped[str | None] = mapped_column(String(100))
    sealed_credentials: Mapped[str] = mapped_column(Text)  # {"accessKeyId", "secretAccessKey"}
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class BackupCopy(Base):
    """Where a backup was copied to, and what the destination holds for it."""

    __tablename__ = "database_backup_copies"
    backup_id: Mapped[str] = mapped_column(ForeignKey("database_backups.id", ondelete="CASCADE"),
                                           primary_key=True)
    destination_id: Mapped[str] = mapped_column(ForeignKey("backup_destinations.id"),
                                                primary_key=True)
    object_key: Mapped[str] = mapped_column(String(1000))
    status: Mapped[str] = mapped_column(String(20))  # uploaded | failed
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    failure_message: Mapped[str | None] = mapped_column(Text)
    uploaded_at: Mapped[datetime | None]


class DatabasePlan(Base):
    """A database to provision or import, checked but not done until accepted (seed 004)."""

    __tablename__ = "database_plans"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    mode: Mapped[str] = mapped_column(String(20))  # create | reuse
    kind: Mapped[str] = mapped_column(String(20))
    project_id: Mapped[str] = mapped_column(String(40))
    environment_id: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    server_id: Mapped[str | None] = mapped_column(String(40))
    document: Mapped[dict[str, Any]] = mapped_column(JSON)  # the input; a URL sealed
    status: Mapped[str] = mapped_column(String(20), default="planned")
    database_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    accepted_at: Mapped[datetime | None]


class Deployment(Base):
    """One attempt to make a resource run a frozen plan (image, config, variables)."""

    __tablename__ = "deployments"
    __table_args__ = (Index("ix_deployments_resource_created", "resource_id", "created_at"),
                      Index("ix_deployments_org_created", "organization_id", "created_at"),
                      Index("ix_deployments_org_project_created", "organization_id",
                            "project_id", "created_at"),
                      Index("ix_deployments_org_resource_created", "organization_id",
                            "resource_id", "created_at"))
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    environment_id: Mapped[str] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"))
    resource_id: Mapped[str] = mapped_column(ForeignKey("resources.id", ondelete="CASCADE"))
    server_id: Mapped[str] = mapped_column(ForeignKey("servers.id"))
    status: Mapped[str] = mapped_column(String(20), default="created", index=True)
    trigger_kind: Mapped[str] = mapped_column(String(20), default="create")
    source_deployment_id: Mapped[str | None] = mapped_column(String(40))
    rollback_of_deployment_id: Mapped[str | None] = mapped_column(String(40))
    triggered_by: Mapped[str | None] = mapped_column(String(40))
    plan: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Variables as they were when the deployment was created; secrets stay sealed.
    environment_snapshot: Mapped[dict[str, Any]] = mapped_column(default=dict)
    container_id: Mapped[str | None] = mapped_column(String(80))
    container_name: Mapped[str | None] = mapped_column(String(200))
    host_port: Mapped[int | None] = mapped_column(Integer)
    phase: Mapped[str | None] = mapped_column(String(40))
    error_code: Mapped[str | None] = mapped_column(String(80))
    error_message: Mapped[str | None] = mapped_column(Text)
    # Entries appended so far; incremented under the row lock, it orders the entries.
    entry_count: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    archived_at: Mapped[datetime | None]


def newest_deployment_of(resource_id: ColumnElement[str] | Mapped[str]) -> ScalarSelect[str]:
    """The id of the newest deployment of `resource_id` (a column of an enclosing query):
    one step down the (resource, created_at) index, however long its history."""
    newest = aliased(Deployment)
    return (select(newest.id).where(newest.resource_id == resource_id)
            .order_by(newest.created_at.desc()).limit(1).scalar_subquery())


def newest_deployments(resource_ids: Iterable[str]) -> Select[str]:
    """The id of each resource's newest deployment, for `Deployment.id.in_(...)`: one query
    with the rows it picks, whatever their number."""
    return select(newest_deployment_of(Resource.id)).where(
        Resource.id.in_(list(resource_ids)))


class DeploymentEntry(Base):
    """A deployment's progress: domain events and log lines, in one ordered stream."""

    __tablename__ = "deployment_entries"
    __table_args__ = (UniqueConstraint("deployment_id", "sequence"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deployment_id: Mapped[str] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    sequence: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(10))  # event | log
    phase: Mapped[str] = mapped_column(String(20))
    level: Mapped[str] = mapped_column(String(10), default="info")
    source: Mapped[str] = mapped_column(String(20), default="launchbay")
    event_type: Mapped[str | None] = mapped_column(String(60))
    status: Mapped[str | None] = mapped_column(String(20))
    message: Mapped[str] = mapped_column(Text)
    masked: Mapped[bool] = mapped_column(default=False)
    emitted_at: Mapped[datetime] = mapped_column(default=utcnow)


class OperatorWork(Base):
    """A durable unit of engine work, claimed by one worker at a time under a lease."""

    __tablename__ = "operator_work"
    __table_args__ = (Index("ix_operator_work_claim", "status", "run_after"),
                      Index("ix_operator_work_org_created", "organization_id", "created_at"),
                      Index("ix_operator_work_org_resource", "organization_id", "resource_id",
                            "created_at"),
                      Index("ix_operator_work_org_deployment", "organization_id",
                            "deployment_id", "created_at"),
                      Index("ix_operator_work_org_server", "organization_id", "server_id",
                            "created_at"))
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    operation_key: Mapped[str] = mapped_column(String(80))
    phase: Mapped[str | None] = mapped_column(String(40))
    step: Mapped[str | None] = mapped_column(String(200))
    organization_id: Mapped[str | None] = mapped_column(String(40), index=True)
    project_id: Mapped[str | None] = mapped_column(String(40))
    resource_id: Mapped[str | None] = mapped_column(String(40))
    deployment_id: Mapped[str | None] = mapped_column(String(40), index=True)
    server_id: Mapped[str | None] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    run_after: Mapped[datetime] = mapped_column(default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(80))
    lease_expires_at: Mapped[datetime | None]
    error_code: Mapped[str | None] = mapped_column(String(80))
    error_category: Mapped[str | None] = mapped_column(String(40))
    error_message: Mapped[str | None] = mapped_column(Text)
    retry_of_work_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None]


class DomainBinding(Base):
    """A custom domain (and path prefix) that serves a resource, redirects to another binding,
    or (a route added by hand: no resource) proxies to a raw `upstream` URL. Unique across the
    whole server: the edge proxy routes every organization's traffic."""

    __tablename__ = "domain_bindings"
    __table_args__ = (UniqueConstraint("domain_name", "path_prefix"),
                      Index("ix_domain_bindings_org_name", "organization_id", "domain_name",
                            "path_prefix"),
                      Index("ix_domain_bindings_org_project_name", "organization_id",
                            "project_id", "domain_name", "path_prefix"),
                      Index("ix_domain_bindings_org_env_name", "organization_id",
                            "environment_id", "domain_name", "path_prefix"),
                      Index("ix_domain_bindings_org_resource_name", "organization_id",
                            "resource_id", "domain_name", "path_prefix"))
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    environment_id: Mapped[str] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"))
    resource_id: Mapped[str | None] = mapped_column(
        ForeignKey("resources.id", ondelete="CASCADE"), index=True
    )
    server_id: Mapped[str] = mapped_column(ForeignKey("servers.id"))
    upstream: Mapped[str | None] = mapped_column(String(500))  # a hand route's target URL
    domain_name: Mapped[str] = mapped_column(String(253))
    path_prefix: Mapped[str] = mapped_column(String(500), default="/")
    tls_mode: Mapped[str] = mapped_column(String(20), default="auto")
    redirect_to: Mapped[str | None] = mapped_column(String(40))  # another binding's id
    redirect_status: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default="requested")
    dns_observation: Mapped[dict[str, Any]] = mapped_column(default=dict)
    verification_attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Certificate(Base):
    """A TLS certificate of a binding: imported (PEM, key sealed), or issued by Caddy (ACME or
    its internal CA), in which case the fields describe what Caddy serves."""

    __tablename__ = "certificates"
    __table_args__ = (Index("ix_certificates_org_expires", "organization_id", "expires_at",
                            "created_at"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    domain_binding_id: Mapped[str | None] = mapped_column(
        ForeignKey("domain_bindings.id", ondelete="SET NULL"), index=True
    )
    domain_name: Mapped[str] = mapped_column(String(253))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    source: Mapped[str] = mapped_column(String(20))  # managed | imported
    provider_key: Mapped[str] = mapped_column(String(40))  # acme | caddy-internal | manual
    issuer: Mapped[str | None] = mapped_column(String(500))
    not_before: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    issued_at: Mapped[datetime | None]
    fingerprint: Mapped[str | None] = mapped_column(String(100))
    key_algorithm: Mapped[str | None] = mapped_column(String(40))
    subject_alternative_names: Mapped[list[str]] = mapped_column(default=list)
    certificate_pem: Mapped[str | None] = mapped_column(Text)
    private_key: Mapped[str | None] = mapped_column(Text)  # sealed with the master secret
    attempts: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class HealthObservation(Base):
    """A change of a resource's health state: the observation that found it (its health
    history keeps changes, not every look; `health_rollups` keeps every minute)."""

    __tablename__ = "health_observations"
    # The second index serves the retention prune (a range on `observed_at`).
    __table_args__ = (Index("ix_health_resource_observed", "resource_id", "observed_at"),
                      Index("ix_health_observed", "observed_at"))
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    resource_id: Mapped[str] = mapped_column(ForeignKey("resources.id", ondelete="CASCADE"))
    observed_at: Mapped[datetime] = mapped_column(default=utcnow)
    overall: Mapped[str] = mapped_column(String(20))
    state: Mapped[str | None] = mapped_column(String(300))  # what a change is told by
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)


class HealthRollup(Base):
    """One hour of a resource's health, a character per minute: the worst state observed in
    it (`-` unobserved, `n` not deployed, `h` healthy, `d` degraded, `u` unhealthy)."""

    __tablename__ = "health_rollups"
    __table_args__ = (Index("ix_health_rollups_hour", "hour"),)
    resource_id: Mapped[str] = mapped_column(ForeignKey("resources.id", ondelete="CASCADE"),
                                             primary_key=True)
    hour: Mapped[datetime] = mapped_column(primary_key=True)
    minutes: Mapped[str] = mapped_column(String(60))


class AccessPolicy(Base):
    """How resources get generated hostnames: for the whole system, or for one server."""

    __tablename__ = "default_access_policies"
    __table_args__ = (UniqueConstraint("scope_kind", "server_id"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    scope_kind: Mapped[str] = mapped_column(String(30))  # system | deployment-target
    server_id: Mapped[str | None] = mapped_column(ForeignKey("servers.id", ondelete="CASCADE"))
    mode: Mapped[str] = mapped_column(String(20))  # enabled | disabled
    template: Mapped[str] = mapped_column(String(300))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class InstanceRegistration(Base):
    """This instance's registration with a base control plane (Dployr's `/system/register`
    and `/system/domain`): what the base's verified claims said."""

    __tablename__ = "instance_registrations"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    instance_id: Mapped[str] = mapped_column(String(200))
    issuer: Mapped[str] = mapped_column(String(500))
    domain: Mapped[str | None] = mapped_column(String(253))
    registered_at: Mapped[datetime] = mapped_column(default=utcnow)


class UsageIntent(Base):
    """A metered event (a hosted deployment created or deleted...), recorded once per
    idempotency key, for whoever bills the organization (seed 004's `usage-intents`)."""

    __tablename__ = "usage_intents"
    __table_args__ = (Index("ix_usage_intents_org_recorded", "organization_id",
                            "recorded_at"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    capability_key: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="accepted")
    reason: Mapped[str | None] = mapped_column(String(500))
    source: Mapped[str] = mapped_column(String(100))
    organization_id: Mapped[str | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    actor: Mapped[dict[str, Any]] = mapped_column(default=dict)
    resource_refs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    quantity: Mapped[dict[str, Any]] = mapped_column(default=dict)
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class Template(Base):
    """A catalog entry of the instance: what to run, its parameters and lifetime policy
    (`document`, the template as written). Templates of the templates folder carry the
    digest of the file they were last loaded from."""

    __tablename__ = "templates"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    document: Mapped[dict[str, Any]] = mapped_column(default=dict)
    origin: Mapped[str] = mapped_column(String(20), default="api")  # api | file
    file_digest: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class HostedDeployment(Base):
    """What a hosted deployment adds to its resource: the template it came from, its
    visibility and whether (and how, on whose behalf) it follows its image's tag."""

    __tablename__ = "hosted_deployments"
    resource_id: Mapped[str] = mapped_column(
        ForeignKey("resources.id", ondelete="CASCADE"), primary_key=True)
    template: Mapped[str] = mapped_column(String(100))
    visibility: Mapped[str] = mapped_column(String(20), default="public")
    auto_update: Mapped[bool] = mapped_column(default=False, index=True)
    update_strategy: Mapped[str] = mapped_column(String(20), default="rolling")
    auto_update_by: Mapped[str | None] = mapped_column(String(40))


class Instance(Base):
    """An ephemeral environment made from a template (Dploy's unit): a resource in an
    environment of its own, owned by a user or a team (`owner_key`, in its URL), living until
    `expires_at` (None: unlimited). A warm pool's members have no owner until claimed."""

    __tablename__ = "instances"
    __table_args__ = (Index("ix_instances_owner", "organization_id", "template", "owner_key"),
                      Index("ix_instances_org_created", "organization_id", "created_at"))
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"))
    resource_id: Mapped[str] = mapped_column(
        ForeignKey("resources.id", ondelete="CASCADE"), unique=True)
    template: Mapped[str] = mapped_column(String(100))
    uuid: Mapped[str] = mapped_column(String(8), unique=True)
    owner_key: Mapped[str | None] = mapped_column(String(100))
    owner_user_id: Mapped[str | None] = mapped_column(String(40))
    shared: Mapped[bool] = mapped_column(default=False)
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    expires_at: Mapped[datetime | None]
    extend_count: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(20), default="active")  # pooled|active|deleting
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_at: Mapped[datetime | None]


class ImageGrant(Base):
    """An image of a server's engine that an organization may run: it pulled it from a
    registry with its own credentials (so the registry let it), or built it. Other images of
    that engine are refused to it, whoever put them there."""

    __tablename__ = "image_grants"
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True)
    server_id: Mapped[str] = mapped_column(
        ForeignKey("servers.id", ondelete="CASCADE"), primary_key=True)
    image_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    reference: Mapped[str] = mapped_column(String(600))
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)


class PeriodicJob(Base):
    """A background job that acts on the store (the reaper, auto-update, warm pools...): when
    it last started, and in which process, so that it runs once per period across every
    control plane on this store."""

    __tablename__ = "periodic_jobs"
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(200))
    last_started_at: Mapped[datetime | None]
    runs: Mapped[int] = mapped_column(Integer, default=0)


class IdempotencyKey(Base):
    """The answer to a state change asked with an idempotency key (operations/idempotency)."""

    __tablename__ = "idempotency_keys"
    organization_id: Mapped[str] = mapped_column(String(40), primary_key=True)  # "" for none
    operation: Mapped[str] = mapped_column(String(100), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
