"""Reading and checking X.509 certificates: what an imported chain says, whether its key
matches, and what the edge proxy serves for a name (through a real TLS handshake)."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from datetime import datetime, timezone

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID


@dataclass
class CertificateFacts:
    issuer: str
    subject: str
    not_before: datetime
    expires_at: datetime
    fingerprint: str  # SHA-256 of the DER certificate, colon-separated hex
    key_algorithm: str
    names: list[str]

    def covers(self, domain: str) -> bool:
        for name in self.names:
            if name == domain or (name.startswith("*.") and domain.count(".") >= 2
                                  and domain.split(".", 1)[1] == name[2:]):
                return True
        return False


def facts(cert: x509.Certificate) -> CertificateFacts:
    try:
        names = cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    key = cert.public_key()
    algorithm = ("RSA" if isinstance(key, rsa.RSAPublicKey) else
                 "ECDSA" if isinstance(key, ec.EllipticCurvePublicKey) else
                 "Ed25519" if isinstance(key, ed25519.Ed25519PublicKey) else type(key).__name__)
    digest = cert.fingerprint(hashes.SHA256()).hex().upper()
    return CertificateFacts(
        issuer=cert.issuer.rfc4514_string(), subject=cert.subject.rfc4514_string(),
        not_before=cert.not_valid_before_utc, expires_at=cert.not_valid_after_utc,
        fingerprint=":".join(digest[i:i + 2] for i in range(0, len(digest), 2)),
        key_algorithm=algorithm, names=[str(n).lower() for n in names])


def check_import(chain_pem: str, key_pem: str, domain: str,
                 passphrase: str | None = None) -> CertificateFacts:
    """Validates an imported certificate for `domain`; raises ValueError saying what is wrong."""
    try:
        chain = x509.load_pem_x509_certificates(chain_pem.encode())
    except ValueError:
        raise ValueError("certificateChain is not a PEM certificate chain") from None
    try:
        key = serialization.load_pem_private_key(
            key_pem.encode(), passphrase.encode() if passphrase else None)
    except (ValueError, TypeError):
        raise ValueError("privateKey is not a PEM private key (or the passphrase is wrong)") \
            from None
    leaf = chain[0]
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(serialization.Encoding.DER, public) != \
            leaf.public_key().public_bytes(serialization.Encoding.DER, public):
        raise ValueError("the private key does not belong to the certificate")
    found = facts(leaf)
    now = datetime.now(timezone.utc)
    if found.expires_at <= now:
        raise ValueError(f"the certificate expired on {found.expires_at:%Y-%m-%d}")
    if found.not_before > now:
        raise ValueError(f"the certificate is not valid before {found.not_before:%Y-%m-%d}")
    if not found.covers(domain):
        raise ValueError(f"the certificate does not cover {domain} "
                         f"(it covers {', '.join(found.names) or 'no name'})")
    return found


def unencrypted_key(key_pem: str, passphrase: str | None = None) -> str:
    """The key as unencrypted PKCS#8 PEM (what the edge proxy loads)."""
    key = serialization.load_pem_private_key(key_pem.encode(),
                                             passphrase.encode() if passphrase else None)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def served(host: str, port: int, server_name: str, timeout: float = 3) -> CertificateFacts | None:
    """The certificate the TLS server at host:port presents for `server_name`, unverified."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=server_name) as tls:
            der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError):
        return None
    return facts(x509.load_der_x509_certificate(der)) if der else None
