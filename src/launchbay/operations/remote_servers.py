"""Servers reached over SSH (seed 004's register, connectivity tests, credentials, rename,
deactivate, delete-check and delete): an organization's machines beside the local engine.

A server is a host (a hostname or an IP address, canonical; at a public address unless the
operator allows its network: a tenant must not probe the control plane's own network), a port,
a user and one of the organization's SSH credentials. Its host key is pinned: the draft test
shows it, registration pins the one the caller confirmed, and every later connection refuses
any other (`host-key-mismatch`) until an admin pins it again. Deactivated servers take no new
deployments; a server is deleted only when inactive and nothing runs or waits there, and
deleting it keeps it as `deleted` so the history that names it stays readable.

Deploying to a server over SSH (the remote Docker engine as a `Runtime`) is not built yet:
resources cannot be placed on such a server until it is.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from launchbay.drivers import ssh_transport
from launchbay.engine.backups import outbound_problem
from launchbay.operations.catalog import Context, operation
from launchbay.operations.credentials import get_credential
from launchbay.operations.errors import Conflict, Invalid
from launchbay.operations.schemas import Field, Id, IdOut, Name, Schema, Timestamp
from launchbay.operations.servers import get_server
from launchbay.store.models import (
    Deployment,
    DomainBinding,
    LifecycleStatus,
    OperatorWork,
    Resource,
    Server,
    SshCredential,
    WorkStatus,
    new_id,
    utcnow,
)

PROVIDER, SWARM = "generic-ssh", "docker-swarm"  # a server; a Swarm manager (over SSH)
TARGET_KINDS = {PROVIDER: "single-server", SWARM: "orchestrator-cluster"}
HOSTNAME = re.compile(r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
                      r"(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")
USER = r"^[a-z_][a-z0-9_.-]{0,31}$"


def canonical_host(value: str) -> str:
    """A hostname (lowercased) or an IP address (its canonical form); no URL, port or
    network."""
    v = value.strip().lower()
    if v.startswith("[") and v.endswith("]"):
        v = v[1:-1]
    try:
        return str(ipaddress.ip_address(v))
    except ValueError:
        pass
    if not HOSTNAME.match(v):
        raise Invalid("Validation failed", details=[{
            "field": "host", "message": "a hostname or an IP address (no URL, port or network)"}])
    return v


class ServerDraft(Schema):
    name: Name | None = None
    host: str = Field(min_length=1, max_length=300)
    port: int = Field(22, ge=1, le=65535)
    provider_key: Literal["generic-ssh", "docker-swarm"] = "generic-ssh"
    username: str = Field("root", pattern=USER)
    credential_id: Id


class CheckOut(Schema):
    name: str
    status: str
    message: str
    duration_ms: int
    failure: str | None
    metadata: dict[str, str]


class ConnectivityOut(Schema):
    server_id: str | None
    name: str | None
    host: str
    port: int
    provider_key: str
    checked_at: Timestamp
    status: Literal["healthy", "degraded", "unreachable"]
    checks: list[CheckOut]
    host_key_fingerprint: str | None  # what the server presented (the draft's: to confirm)


def _target(ctx: Context, host: str, port: int, username: str, credential: SshCredential,
            pinned: str | None) -> ssh_transport.Target:
    where = f"[{host}]" if ":" in host else host
    if problem := outbound_problem(f"ssh://{where}:{port}", ctx.settings,
                                   allowed=ctx.settings.server_allowed_networks):
        raise Invalid(f"{problem}: servers are reached at public addresses unless the "
                      "operator allows their network", code="server_address_refused")
    return ssh_transport.Target(host, port, username,
                                ctx.secrets.decrypt(credential.sealed_private_key), pinned)


def _tested(ctx: Context, target: ssh_transport.Target, server: Server | None,
            name: str | None, provider: str) -> tuple[ssh_transport.Result, ConnectivityOut]:
    ctx.end_reads()  # the server answers in its own time
    result = ssh_transport.test(target, ctx.settings.ssh_connect_timeout,
                                swarm=provider == SWARM)
    return result, ConnectivityOut(
        server_id=server.id if server else None, name=name, host=target.host,
        port=target.port, provider_key=provider, checked_at=utcnow(),
        status=result.status,
        checks=[CheckOut(name=c.name, status=c.status, message=c.message,
                         duration_ms=c.duration_ms, failure=c.failure, metadata=c.metadata)
                for c in result.checks], host_key_fingerprint=result.host_key_fingerprint)


class DraftIn(Schema):
    server: ServerDraft


@operation("servers.connectivity.test-draft", role="admin")
def test_draft(ctx: Context, data: DraftIn) -> ConnectivityOut:
    """Tests a server before it is registered: SSH (the host key it presents, to confirm and
    pin at registration), its Docker engine, its edge proxy."""
    d = data.server
    host = canonical_host(d.host)
    credential = get_credential(ctx, d.credential_id)
    return _tested(ctx, _target(ctx, host, d.port, d.username, credential, None), None,
                   d.name, d.provider_key)[1]


class ServerRegister(ServerDraft):
    name: Name
    # Where its apps' domains should point (default: `host`).
    public_address: str | None = Field(None, min_length=1, max_length=300)
    # The host key fingerprint the draft test showed and the caller checked: registration
    # pins it, and refuses a server presenting another.
    host_key_fingerprint: str = Field(min_length=8, max_length=100)


@operation("servers.register", role="admin", audit="server.registered")
def register(ctx: Context, data: ServerRegister) -> IdOut:
    """Registers a server reached over SSH, pinning the host key the caller confirmed (and a
    swarm manager's other nodes' keys, as they present them through it)."""
    host = canonical_host(data.host)
    credential = get_credential(ctx, data.credential_id)
    if ctx.db.scalar(select(Server.id).where(
            Server.organization_id == ctx.org_id, Server.provider_key == data.provider_key,
            Server.host == host, Server.port == data.port)):
        raise Conflict(f"{host}:{data.port} is registered already", code="server_exists")
    result, shown = _tested(ctx, _target(ctx, host, data.port, data.username, credential,
                                         None), None, data.name, data.provider_key)
    if result.host_key is None:
        raise Conflict("the server cannot be reached to pin its host key: "
                       + shown.checks[0].message, code="server_unreachable",
                       details={"checks": [c.model_dump(mode="json", by_alias=True)
                                           for c in shown.checks]})
    if result.host_key_fingerprint != data.host_key_fingerprint.strip():
        raise Conflict("the server presents another host key than the one confirmed",
                       code="host_key_mismatch",
                       details={"presented": result.host_key_fingerprint})
    server = Server(id=new_id("srv"), organization_id=ctx.org_id, name=data.name, host=host,
                    port=data.port, provider_key=data.provider_key,
                    target_kind=TARGET_KINDS[data.provider_key], credential_id=credential.id,
                    ssh_username=data.username, host_public_key=result.host_key,
                    host_key_fingerprint=result.host_key_fingerprint,
                    node_host_keys=result.node_host_keys or None,
                    connectivity_status=result.status, connectivity_checked_at=utcnow(),
                    edge_proxy_kind="caddy", edge_proxy_status="pending",
                    public_address=canonical_host(data.public_address)
                    if data.public_address else None)
    try:
        with ctx.db.begin_nested():
            ctx.db.add(server)
    except IntegrityError:  # the same server at the same moment
        raise Conflict(f"{host}:{data.port} is registered already", code="server_exists") \
            from None
    ctx.audit(server.id, name=server.name, host=host, port=data.port,
              credentialId=credential.id, hostKeyFingerprint=server.host_key_fingerprint,
              nodes=sorted(result.node_host_keys))
    return IdOut(id=server.id)


class ServerRef(Schema):
    server_id: Id


def _remote(ctx: Context, server_id: str) -> Server:
    """One of the organization's servers reached over SSH (404 for another's; the local
    engine is no such server)."""
    server = get_server(ctx, server_id)
    if server.provider_key not in TARGET_KINDS or \
            server.lifecycle_status == LifecycleStatus.DELETED:
        raise Invalid("this server is not reached over SSH", code="server_not_remote")
    return server


def _pinned_target(ctx: Context, server: Server) -> ssh_transport.Target:
    credential = ctx.db.get_one(SshCredential, server.credential_id)
    return _target(ctx, server.host, server.port, server.ssh_username or "root", credential,
                   server.host_public_key)


@operation("servers.connectivity.test", role="developer", audit="server.connectivity-tested")
def test_server(ctx: Context, data: ServerRef) -> ConnectivityOut:
    """Tests a registered server against its pinned host key; the outcome is kept on it."""
    server = _remote(ctx, data.server_id)
    target = _pinned_target(ctx, server)
    result, shown = _tested(ctx, target, server, server.name, server.provider_key)
    server = ctx.db.get_one(Server, server.id)
    server.connectivity_status, server.connectivity_checked_at = result.status, utcnow()
    ctx.audit(server.id, status=result.status,
              failures=[c.failure for c in result.checks if c.failure])
    return shown


class HostKeyPin(ServerRef):
    host_key_fingerprint: str = Field(min_length=8, max_length=100)


@operation("servers.host-key.pin", role="admin", audit="server.host-key-pinned")
def pin_host_key(ctx: Context, data: HostKeyPin) -> ConnectivityOut:
    """Pins the host key the server presents now, once the caller confirmed its fingerprint
    (after a reinstall, say): never done on its own. A swarm manager's nodes' keys are pinned
    again with it (a node added to the swarm since, say)."""
    server = _remote(ctx, data.server_id)
    target = _pinned_target(ctx, server)
    result, shown = _tested(ctx, ssh_transport.Target(
        target.host, target.port, target.username, target.private_key, None), server,
        server.name, server.provider_key)
    if result.host_key is None or result.host_key_fingerprint != \
            data.host_key_fingerprint.strip():
        raise Conflict("the server does not present the host key confirmed",
                       code="host_key_mismatch",
                       details={"presented": result.host_key_fingerprint})
    server = ctx.db.get_one(Server, server.id)
    previous = server.host_key_fingerprint
    server.host_public_key, server.host_key_fingerprint = result.host_key, \
        result.host_key_fingerprint
    server.node_host_keys = result.node_host_keys or None  # a swarm's nodes as they are now
    server.connectivity_status, server.connectivity_checked_at = result.status, utcnow()
    ctx.audit(server.id, previousFingerprint=previous, fingerprint=result.host_key_fingerprint)
    return shown


class ServerRename(ServerRef):
    name: Name


@operation("servers.rename", role="admin", audit="server.renamed")
def rename(ctx: Context, data: ServerRename) -> IdOut:
    """Renames a server (its identity, host and history stay)."""
    server = _remote(ctx, data.server_id)
    previous, server.name = server.name, data.name
    ctx.audit(server.id, previousName=previous, name=data.name)
    return IdOut(id=server.id)


class CredentialChoice(Schema):
    kind: Literal["ssh-private-key"] = "ssh-private-key"
    credential_id: Id
    username: str | None = Field(None, pattern=USER)


class ServerCredentials(ServerRef):
    credential: CredentialChoice


@operation("servers.credentials.configure", role="admin", audit="server.credential-configured")
def configure_credentials(ctx: Context, data: ServerCredentials) -> IdOut:
    """Reaches the server with another of the organization's SSH credentials (or user)."""
    server = _remote(ctx, data.server_id)
    credential = get_credential(ctx, data.credential.credential_id)
    server.credential_id = credential.id
    server.ssh_username = data.credential.username or server.ssh_username
    ctx.audit(server.id, credentialId=credential.id, username=server.ssh_username)
    return IdOut(id=server.id)


class Deactivate(ServerRef):
    reason: str | None = Field(None, max_length=500)


@operation("servers.deactivate", role="admin", audit="server.deactivated")
def deactivate(ctx: Context, data: Deactivate) -> IdOut:
    """Takes the server out of service: no new deployment starts there (what runs stays)."""
    server = _remote(ctx, data.server_id)
    server.lifecycle_status = LifecycleStatus.INACTIVE
    server.deactivated_at, server.deactivation_reason = utcnow(), data.reason
    ctx.audit(server.id, reason=data.reason)
    return IdOut(id=server.id)


class Blocker(Schema):
    kind: str
    related_entity_id: str | None = None
    related_entity_type: str
    count: int


class DeleteCheck(Schema):
    schema_version: str = "servers.delete-check/v1"
    server_id: str
    lifecycle_status: str
    eligible: bool
    blockers: list[Blocker]
    checked_at: Timestamp


FINISHED = ("succeeded", "failed", "canceled", "rolled-back")


def _blockers(ctx: Context, server: Server) -> list[Blocker]:
    """What keeps the server from being deleted (the check and the delete read the same)."""
    found = []
    if server.lifecycle_status == LifecycleStatus.ACTIVE:
        found.append(Blocker(kind="active-server", related_entity_id=server.id,
                             related_entity_type="server", count=1))
    for kind, entity, count in (
            ("resource", "resource", select(func.count()).select_from(Resource).where(
                Resource.server_id == server.id)),
            ("deployment", "deployment", select(func.count()).select_from(Deployment).where(
                Deployment.server_id == server.id, Deployment.status.not_in(FINISHED))),
            ("domain-binding", "domain-binding", select(func.count()).select_from(
                DomainBinding).join(Resource, Resource.id == DomainBinding.resource_id).where(
                Resource.server_id == server.id)),
            ("scheduled-work", "operator-work", select(func.count()).select_from(
                OperatorWork).where(OperatorWork.server_id == server.id, OperatorWork.status.in_(
                    (WorkStatus.PENDING, WorkStatus.RUNNING, WorkStatus.RETRY_SCHEDULED))))):
        n = ctx.db.scalar(count) or 0
        if n:
            found.append(Blocker(kind=kind, related_entity_type=entity, count=n))
    return found


@operation("servers.delete-check", role="developer")
def delete_check(ctx: Context, data: ServerRef) -> DeleteCheck:
    """Whether the server can be deleted, and what keeps it otherwise."""
    server = _remote(ctx, data.server_id)
    blockers = _blockers(ctx, server)
    return DeleteCheck(server_id=server.id, lifecycle_status=server.lifecycle_status,
                       eligible=not blockers, blockers=blockers, checked_at=utcnow())


class ServerConfirmation(Schema):
    server_id: Id


class ServerDelete(ServerRef):
    confirmation: ServerConfirmation


@operation("servers.delete", role="admin", audit="server.deleted")
def delete(ctx: Context, data: ServerDelete) -> IdOut:
    """Deletes an inactive server nothing uses any more. It stays as `deleted` (out of lists)
    so that the deployments that ran there still say where; its credential is free again."""
    if data.confirmation.server_id != data.server_id:
        raise Invalid("confirmation.serverId does not match", code="confirmation_mismatch")
    server = _remote(ctx, data.server_id)
    if blockers := _blockers(ctx, server):
        raise Conflict("the server cannot be deleted yet", code="server_delete_blocked",
                       details={"blockers": [b.model_dump(mode="json", by_alias=True)
                                             for b in blockers]})
    server.lifecycle_status, server.credential_id = LifecycleStatus.DELETED, None
    ctx.audit(server.id, name=server.name, host=server.host)
    return IdOut(id=server.id)
