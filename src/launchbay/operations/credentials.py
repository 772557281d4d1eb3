"""SSH credentials (seed 004's `credentials/ssh`): an organization's private keys for reaching
its servers.

A key is read and checked when it is given (OpenSSH or PEM; Ed25519, ECDSA or RSA of at least
2048 bits; its passphrase, when it has one, opens it once and is not kept), fingerprinted as
`ssh-keygen -l` does, and stored sealed: no answer, log line or audit event ever carries it, and
it is never written to disk unsealed. launchbay can also make one (Ed25519), whose public key
is shown once, to put in the server's `authorized_keys`. A credential a server uses cannot be
deleted (the store refuses it too); rotating one in use needs the caller's acknowledgement.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy import func, select

from launchbay.drivers import ssh_keys
from launchbay.engine import server_probe
from launchbay.operations.catalog import Context, operation
from launchbay.operations.errors import Conflict, Invalid, NotFound
from launchbay.operations.schemas import Field, Id, IdOut, Name, Schema, Timestamp
from launchbay.store.models import LifecycleStatus, Server, SshCredential, new_id, utcnow


class CredentialOut(Schema):
    id: str
    name: str
    kind: Literal["ssh-private-key"] = "ssh-private-key"
    username: str | None
    key_type: str
    key_bits: int
    fingerprint: str
    generated: bool
    public_key_configured: bool = True
    private_key_configured: bool = True
    created_at: Timestamp
    rotated_at: Timestamp | None


def _out(c: SshCredential) -> CredentialOut:
    return CredentialOut(id=c.id, name=c.name, username=c.username, key_type=c.key_type,
                         key_bits=c.key_bits, fingerprint=c.fingerprint, generated=c.generated,
                         created_at=c.created_at, rotated_at=c.rotated_at)


def get_credential(ctx: Context, credential_id: str) -> SshCredential:
    c = ctx.db.get(SshCredential, credential_id)
    if c is None or c.organization_id != ctx.org_id:
        raise NotFound("SSH credential not found", code="credential_not_found")
    return c


def _key(private_key: str, passphrase: str | None) -> ssh_keys.Key:
    try:
        return ssh_keys.read(private_key, passphrase)
    except ssh_keys.BadKey as exc:
        raise Invalid("Validation failed", details=[
            {"field": "privateKey", "message": str(exc)}]) from None


class CredentialList(Schema):
    items: list[CredentialOut]


class ListIn(Schema):
    limit: int = Field(100, gt=0, le=500)


@operation("credentials.ssh.list", role="developer")
def list_credentials(ctx: Context, data: ListIn) -> CredentialList:
    """The organization's SSH credentials, newest first (never their keys)."""
    rows = ctx.db.scalars(select(SshCredential).where(
        SshCredential.organization_id == ctx.org_id)
        .order_by(SshCredential.created_at.desc()).limit(data.limit))
    return CredentialList(items=[_out(c) for c in rows])


class CredentialCreate(Schema):
    name: Name
    kind: Literal["ssh-private-key"] = "ssh-private-key"
    # The key to keep; none: launchbay makes an Ed25519 key and shows its public key once.
    private_key: str | None = Field(None, min_length=1, max_length=20000)
    passphrase: str | None = Field(None, max_length=1000)
    username: str | None = Field(None, min_length=1, max_length=100,
                                 pattern=r"^[a-z_][a-z0-9_.-]*$")


class CredentialMade(Schema):
    id: str
    fingerprint: str
    # Only for a key launchbay made: the line for the server's `authorized_keys`, shown once.
    public_key: str | None = None


@operation("credentials.ssh.create", role="admin", audit="credential.ssh-created")
def create_credential(ctx: Context, data: CredentialCreate) -> CredentialMade:
    """Keeps a private key for reaching servers (checked, fingerprinted, sealed), or makes one."""
    key = _key(data.private_key, data.passphrase) if data.private_key else ssh_keys.generate()
    c = SshCredential(id=new_id("ssh"), organization_id=ctx.org_id, name=data.name,
                      username=data.username, key_type=key.key_type, key_bits=key.bits,
                      fingerprint=key.fingerprint, public_key=key.public_openssh,
                      sealed_private_key=ctx.secrets.encrypt(key.private_openssh),
                      generated=data.private_key is None, created_by=ctx.user_id)
    ctx.db.add(c)
    ctx.audit(c.id, name=c.name, keyType=c.key_type, fingerprint=c.fingerprint,
              generated=c.generated)
    return CredentialMade(id=c.id, fingerprint=c.fingerprint,
                          public_key=key.public_openssh if c.generated else None)


class UsedBy(Schema):
    server_id: str
    server_name: str
    lifecycle_status: str
    provider_key: str
    host: str
    username: str | None


class Usage(Schema):
    total_servers: int
    active_servers: int
    inactive_servers: int
    servers: list[UsedBy]


def usage(ctx: Context, c: SshCredential) -> Usage:
    """The servers that reach their machine with the credential (the delete check's reader)."""
    rows = ctx.db.scalars(select(Server).where(Server.credential_id == c.id)
                          .order_by(Server.created_at)).all()
    active = sum(1 for s in rows if s.lifecycle_status == LifecycleStatus.ACTIVE)
    return Usage(total_servers=len(rows), active_servers=active,
                 inactive_servers=len(rows) - active, servers=[UsedBy(
                     server_id=s.id, server_name=s.name, lifecycle_status=s.lifecycle_status,
                     provider_key=s.provider_key, host=s.host, username=c.username)
                     for s in rows])


class CredentialRef(Schema):
    credential_id: Id


class CredentialShowIn(CredentialRef):
    include_usage: bool = True


class CredentialShow(Schema):
    schema_version: str = "credentials.show/v1"
    credential: CredentialOut
    usage: Usage | None
    generated_at: Timestamp


@operation("credentials.ssh.show", role="developer")
def show_credential(ctx: Context, data: CredentialShowIn) -> CredentialShow:
    """One SSH credential, with the servers that use it (never its key)."""
    c = get_credential(ctx, data.credential_id)
    return CredentialShow(credential=_out(c), usage=usage(ctx, c) if data.include_usage
                          else None, generated_at=utcnow())


class Confirmation(Schema):
    credential_id: Id
    acknowledge_server_usage: bool = False


class CredentialDelete(CredentialRef):
    confirmation: Confirmation


def _confirmed(data: CredentialDelete) -> None:
    if data.confirmation.credential_id != data.credential_id:
        raise Invalid("confirmation.credentialId does not match", code="confirmation_mismatch")


@operation("credentials.ssh.delete", role="admin", audit="credential.ssh-deleted")
def delete_credential(ctx: Context, data: CredentialDelete) -> IdOut:
    """Deletes a credential no server uses (409 `credential_in_use` otherwise: move those
    servers to another credential, or delete them, first)."""
    _confirmed(data)
    c = get_credential(ctx, data.credential_id)
    used = ctx.db.scalar(select(func.count()).select_from(Server).where(
        Server.credential_id == c.id)) or 0
    if used:
        raise Conflict(f"{used} server(s) use this credential", code="credential_in_use",
                       details={"usage": usage(ctx, c).model_dump(mode="json", by_alias=True)})
    ctx.db.delete(c)
    ctx.audit(c.id, name=c.name, fingerprint=c.fingerprint)
    return IdOut(id=c.id)


class CredentialRotate(CredentialDelete):
    private_key: str = Field(min_length=1, max_length=20000)
    passphrase: str | None = Field(None, max_length=1000)


class Rotated(Schema):
    id: str
    kind: Literal["ssh-private-key"] = "ssh-private-key"
    fingerprint: str
    username_configured: bool
    public_key_configured: bool = True
    private_key_configured: bool = True
    rotated_at: Timestamp


class RotateOut(Schema):
    schema_version: str = "credentials.rotate-ssh/v1"
    credential: Rotated
    affected_usage: Usage


@operation("credentials.ssh.rotate", role="admin", audit="credential.ssh-rotated")
def rotate_credential(ctx: Context, data: CredentialRotate) -> RotateOut:
    """Replaces the credential's key, keeping its id (and so its servers); with servers using
    it, only when `confirmation.acknowledgeServerUsage` says the caller knows they will use
    the new key from now on."""
    _confirmed(data)
    c = get_credential(ctx, data.credential_id)
    key = _key(data.private_key, data.passphrase)
    affected = usage(ctx, c)
    if affected.total_servers and not data.confirmation.acknowledge_server_usage:
        raise Conflict(f"{affected.total_servers} server(s) use this credential: acknowledge "
                       "that they will use the new key", code=
                       "credential_rotation_requires_usage_acknowledgement",
                       details={"usage": affected.model_dump(mode="json", by_alias=True)})
    previous = c.fingerprint
    c.key_type, c.key_bits, c.fingerprint = key.key_type, key.bits, key.fingerprint
    c.public_key, c.sealed_private_key = key.public_openssh, ctx.secrets.encrypt(
        key.private_openssh)
    c.generated, c.rotated_at = False, utcnow()
    ctx.audit(c.id, previousFingerprint=previous, fingerprint=c.fingerprint,
              servers=affected.total_servers)
    if affected.total_servers and ctx.targets is not None:  # their next connection uses it
        targets, users = ctx.targets, list(ctx.db.scalars(select(Server.id).where(
            Server.credential_id == c.id)))
        def retest() -> None:
            server_probe.probe_servers(targets.sessions, targets, users, retest=True)
        ctx.after_commit(retest)
    return RotateOut(credential=Rotated(id=c.id, fingerprint=c.fingerprint,
                                        username_configured=c.username is not None,
                                        rotated_at=c.rotated_at),
                     affected_usage=affected)
