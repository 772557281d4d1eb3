"""Signed claims between a base control plane and the instances it registers (Dployr's
`/system/register` and `/system/domain`): JWTs signed with the base's Ed25519 key (PyJWT).

The base's key is generated in its data dir on first use; an instance is configured with the
base's public key and issuer name, and accepts only claims that verify against them.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ALGORITHMS = ["EdDSA", "RS256", "ES256"]  # what a base may sign with


class ClaimError(Exception):
    """The claim is not one this instance accepts (the message says why)."""


def signing_key(data_dir: Path) -> Ed25519PrivateKey:
    """The base's private key, generated (mode 0600) on first use."""
    path = data_dir / "claims.key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return key


def public_pem(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def issue(key: Ed25519PrivateKey, *, issuer: str, audience: str, subject: str, purpose: str,
          ttl: timedelta, **extra: Any) -> tuple[str, datetime]:
    """A signed claim about `subject` (an instance id) for `purpose`; returns it and its
    expiry."""
    now = datetime.now(UTC).replace(microsecond=0)
    expires = now + ttl
    payload = {"iss": issuer, "aud": audience, "sub": subject, "purpose": purpose,
               "iat": now, "nbf": now, "exp": expires, "jti": uuid.uuid4().hex, **extra}
    return jwt.encode(payload, key, algorithm="EdDSA"), expires


def verify(token: str, public_key: str, *, issuer: str, audience: str,
           purpose: str) -> dict[str, Any]:
    """The claim's payload, if it is signed by `public_key` (PEM text, or a file holding it),
    from `issuer`, for `audience` and `purpose`, and not expired."""
    pem = public_key if "-----BEGIN" in public_key else Path(public_key).read_text()
    try:
        payload = jwt.decode(token, pem, algorithms=ALGORITHMS, audience=audience,
                             issuer=issuer, options={"require": ["exp", "iss", "aud", "sub"]})
    except jwt.PyJWTError as exc:
        raise ClaimError(f"the claim is not valid: {exc}") from exc
    if payload.get("purpose") != purpose:
        raise ClaimError(f"the claim is not for {purpose}")
    return payload
