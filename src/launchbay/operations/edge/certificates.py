"""TLS certificates of domain bindings: imported ones (validated, key sealed) and the ones the
edge proxy obtains (ACME or its internal CA), whose served certificate is observed."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from launchbay.drivers import tls_certificates
from launchbay.operations.catalog import Context, operation
from launchbay.operations.edge.certificate_views import CertificateOut, certificate_out
from launchbay.operations.edge.domains import get_binding, realize
from launchbay.operations.errors import Conflict, Invalid, NotFound
from launchbay.operations.schemas import Field, Id, IdOut, Schema, Timestamp
from launchbay.store.models import Certificate, new_id, utcnow


def attempt(c: Certificate, reason: str, status: str = "requested", **fields: Any) -> str:
    record = {"id": new_id("att"), "status": status, "reason": reason,
              "providerKey": c.provider_key, "requestedAt": utcnow().isoformat(), **fields}
    c.attempts = [*(c.attempts or []), record][-20:]
    return record["id"]


def get_certificate(ctx: Context, certificate_id: str) -> Certificate:
    c = ctx.db.get(Certificate, certificate_id)
    if c is None or c.organization_id != ctx.org_id:
        raise NotFound("certificate not found", code="certificate_not_found")
    return c


class CertificateFilter(Schema):
    domain_binding_id: Id | None = None
    limit: int = Field(100, gt=0, le=500)


class CertificateList(Schema):
    items: list[CertificateOut]


@operation("certificates.list")
def list_certificates(ctx: Context, data: CertificateFilter) -> CertificateList:
    """Certificates, soonest to expire first."""
    query = select(Certificate).where(Certificate.organization_id == ctx.org_id)
    if data.domain_binding_id:
        query = query.where(Certificate.domain_binding_id == data.domain_binding_id)
    rows = ctx.db.scalars(query.order_by(Certificate.expires_at, Certificate.created_at)
                          .limit(data.limit))
    return CertificateList(items=[certificate_out(c) for c in rows])


class CertificateRef(Schema):
    certificate_id: Id


@operation("certificates.show")
def show_certificate(ctx: Context, data: CertificateRef) -> CertificateOut:
    """One certificate: issuer, validity, names, fingerprint and attempts."""
    return certificate_out(get_certificate(ctx, data.certificate_id))


class ImportIn(Schema):
    domain_binding_id: Id
    certificate_chain: str = Field(min_length=1, max_length=200_000)
    private_key: str = Field(min_length=1, max_length=50_000)
    passphrase: str | None = Field(None, max_length=1000)


class Imported(Schema):
    certificate_id: str
    attempt_id: str


@operation("certificates.import", role="admin", audit="certificate.imported")
def import_certificate(ctx: Context, data: ImportIn) -> Imported:
    """Imports a certificate and its key for a binding, which then uses it (TLS mode `manual`)."""
    b = get_binding(ctx, data.domain_binding_id)
    try:
        found = tls_certificates.check_import(data.certificate_chain, data.private_key,
                                              b.domain_name, data.passphrase)
    except ValueError as exc:
        raise Invalid(str(exc), code="certificate_invalid") from None
    for old in ctx.db.scalars(select(Certificate).where(Certificate.domain_binding_id == b.id,
                                                        Certificate.status != "revoked")):
        old.status = "replaced"
    c = Certificate(
        id=new_id("crt"), organization_id=ctx.org_id, domain_binding_id=b.id,
        domain_name=b.domain_name, status="issued", source="imported", provider_key="manual",
        issuer=found.issuer, not_before=found.not_before, expires_at=found.expires_at,
        issued_at=utcnow(), fingerprint=found.fingerprint, key_algorithm=found.key_algorithm,
        subject_alternative_names=found.names, certificate_pem=data.certificate_chain,
        private_key=ctx.secrets.encrypt(tls_certificates.unencrypted_key(
            data.private_key, data.passphrase)))
    attempt_id = attempt(c, "import", "issued", issuedAt=utcnow().isoformat())
    ctx.db.add(c)
    b.tls_mode = "manual"
    realize(ctx, b, "certificate-import")
    ctx.audit(c.id, domainBindingId=b.id, fingerprint=found.fingerprint)
    return Imported(certificate_id=c.id, attempt_id=attempt_id)


class IssueIn(Schema):
    domain_binding_id: Id


@operation("certificates.issue-or-renew", role="admin", audit="certificate.issue-requested")
def issue_or_renew(ctx: Context, data: IssueIn) -> IdOut:
    """Asks the edge proxy to obtain (or renew) the binding's managed certificate."""
    b = get_binding(ctx, data.domain_binding_id)
    if b.tls_mode not in ("auto", "internal"):
        raise Conflict(f"the binding's TLS mode is {b.tls_mode}; managed certificates need "
                       "`auto` or `internal`", code="tls_mode_not_managed")
    c = ctx.db.scalar(select(Certificate).where(Certificate.domain_binding_id == b.id,
                                                Certificate.source == "managed"))
    if c is None:
        c = Certificate(id=new_id("crt"), organization_id=ctx.org_id, domain_binding_id=b.id,
                        domain_name=b.domain_name, status="pending", source="managed",
                        provider_key="acme" if b.tls_mode == "auto" else "caddy-internal")
        ctx.db.add(c)
    attempt(c, "renew" if c.status == "issued" else "issue")
    realize(ctx, b, "certificate-issue")
    ctx.audit(c.id, domainBindingId=b.id)
    return IdOut(id=c.id)


class RetryOut(Schema):
    id: str
    attempt_id: str


@operation("certificates.retry", role="admin", audit="certificate.retried")
def retry_certificate(ctx: Context, data: CertificateRef) -> RetryOut:
    """Tries a failed managed certificate again."""
    c = get_certificate(ctx, data.certificate_id)
    if c.source != "managed" or c.domain_binding_id is None:
        raise Conflict("only a managed certificate of a binding is retried",
                       code="certificate_not_managed")
    attempt_id = attempt(c, "retry")
    realize(ctx, get_binding(ctx, c.domain_binding_id), "certificate-retry")
    ctx.audit(c.id)
    return RetryOut(id=c.id, attempt_id=attempt_id)


class Revoked(Schema):
    id: str
    status: str
    revoked_at: Timestamp


@operation("certificates.revoke", role="admin", audit="certificate.revoked")
def revoke_certificate(ctx: Context, data: CertificateRef) -> Revoked:
    """Stops serving an imported certificate (its binding falls back to plain HTTP until another
    is imported). Managed certificates end with their binding or its TLS mode."""
    c = get_certificate(ctx, data.certificate_id)
    if c.source != "imported":
        raise Conflict("managed certificates end with their binding or its TLS mode",
                       code="certificate_managed")
    c.status, c.revoked_at = "revoked", utcnow()
    if c.domain_binding_id:
        realize(ctx, get_binding(ctx, c.domain_binding_id), "certificate-revoke")
    ctx.audit(c.id)
    return Revoked(id=c.id, status=c.status, revoked_at=c.revoked_at)


class Deleted(Schema):
    id: str


@operation("certificates.delete", role="admin", audit="certificate.deleted")
def delete_certificate(ctx: Context, data: CertificateRef) -> Deleted:
    """Deletes a certificate that is no longer served (revoked, replaced, or of no binding)."""
    c = get_certificate(ctx, data.certificate_id)
    if c.domain_binding_id and c.status in ("issued", "pending"):
        raise Conflict("the certificate is in use; revoke it or delete its binding first",
                       code="certificate_in_use")
    ctx.db.delete(c)
    ctx.audit(c.id)
    return Deleted(id=c.id)
