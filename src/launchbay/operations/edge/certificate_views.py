"""How a certificate is shown, by the certificates' operations and a domain binding's."""

from __future__ import annotations

from launchbay.operations.schemas import Schema, Timestamp
from launchbay.store.models import Certificate


class Attempt(Schema):
    id: str
    status: str
    reason: str
    provider_key: str
    requested_at: str
    issued_at: str | None = None
    expires_at: str | None = None
    failed_at: str | None = None
    error_code: str | None = None
    failure_message: str | None = None
    retriable: bool = False


class CertificateOut(Schema):
    id: str
    domain_binding_id: str | None
    domain_name: str
    status: str
    source: str
    provider_key: str
    challenge_type: str | None
    issued_at: Timestamp | None
    expires_at: Timestamp | None
    fingerprint: str | None
    not_before: Timestamp | None
    issuer: str | None
    key_algorithm: str | None
    subject_alternative_names: list[str]
    latest_attempt: Attempt | None
    attempts: list[Attempt]
    created_at: Timestamp


def certificate_out(c: Certificate) -> CertificateOut:
    attempts = [Attempt(**a) for a in c.attempts]
    return CertificateOut(
        id=c.id, domain_binding_id=c.domain_binding_id, domain_name=c.domain_name,
        status=c.status, source=c.source, provider_key=c.provider_key,
        challenge_type="http-01" if c.provider_key == "acme" else None, issued_at=c.issued_at,
        expires_at=c.expires_at, fingerprint=c.fingerprint, not_before=c.not_before,
        issuer=c.issuer, key_algorithm=c.key_algorithm,
        subject_alternative_names=c.subject_alternative_names,
        latest_attempt=attempts[-1] if attempts else None, attempts=attempts,
        created_at=c.created_at)
