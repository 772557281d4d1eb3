"""Secrets at rest, password hashing and bearer-token hashing."""

from __future__ import annotations

import base64
import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MASK = "****"


def mask(text: str, values: list[str]) -> tuple[str, bool]:
    """`text` with every secret value in it replaced by MASK (longest first, so a secret that
    contains another is hidden whole); whether any was."""
    masked = False
    for secret in sorted(values, key=len, reverse=True):
        if secret and secret in text:
            text, masked = text.replace(secret, MASK), True
    return text, masked

_passwords = PasswordHasher()
# A real hash to verify against when the user does not exist, so that timing does not tell.
_DUMMY_HASH = _passwords.hash("launchbay-not-a-password")


def hash_password(password: str) -> str:
    return _passwords.hash(password)


def verify_password(password: str, hashed: str | None) -> bool:
    try:
        return _passwords.verify(hashed or _DUMMY_HASH, password) and hashed is not None
    except (VerificationError, InvalidHashError):
        return False


def generate_password() -> str:
    return secrets.token_urlsafe(18)


def new_token(prefix: str) -> str:
    """A bearer secret. High entropy, so a fast hash is enough to store it."""
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SecretBox:
    """Encrypts values at rest with a key derived from the master secret (HKDF + Fernet)."""

    def __init__(self, master_secret: bytes, purpose: bytes = b"launchbay/secrets/v1"):
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(
            master_secret
        )
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str, ttl: int | None = None) -> str:
        """The plaintext; with `ttl`, only if it was encrypted at most that many seconds ago."""
        try:
            return self._fernet.decrypt(ciphertext.encode(), ttl=ttl).decode()
        except InvalidToken as exc:  # another master secret (or too old): never return garbage
            raise ValueError("secret cannot be decrypted with this master secret") from exc
