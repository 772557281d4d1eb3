"""SSH private keys: read (OpenSSH or PEM, with their passphrase when they have one),
checked (Ed25519, ECDSA, or RSA of at least 2048 bits), fingerprinted as `ssh-keygen -l`
does (`SHA256:...`), and made (Ed25519)."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

MIN_RSA_BITS = 2048


class BadKey(ValueError):
    """Not a private key launchbay uses (its message says why)."""


@dataclass(frozen=True)
class Key:
    private_openssh: str = field(repr=False)  # unencrypted, OpenSSH format
    public_openssh: str  # `ssh-ed25519 AAAA...`
    key_type: str  # ed25519 | ecdsa | rsa
    bits: int
    fingerprint: str  # SHA256:...


def read(text: str, passphrase: str | None = None) -> Key:
    """The key in `text`; BadKey when it cannot be read, needs a passphrase it was not given,
    or is of a kind or size refused."""
    data, secret = text.strip().encode() + b"\n", passphrase.encode() if passphrase else None
    loaded = None
    for load in (serialization.load_ssh_private_key, serialization.load_pem_private_key):
        try:
            loaded = load(data, password=secret)
            break
        except TypeError as exc:  # encrypted without a passphrase, or the reverse
            raise BadKey("the key is protected by a passphrase: give it" if secret is None
                         else f"the key has no passphrase ({exc})") from None
        except (ValueError, UnsupportedAlgorithm) as exc:
            said = str(exc).lower()
            if secret is not None and any(w in said for w in ("checksum", "decrypt",
                                                               "passphrase", "bad")):
                raise BadKey("the passphrase does not open the key") from None
            continue
    if loaded is None:
        raise BadKey("not a private key in OpenSSH or PEM form")
    if isinstance(loaded, ed25519.Ed25519PrivateKey):
        kind, bits = "ed25519", 256
    elif isinstance(loaded, ec.EllipticCurvePrivateKey):
        kind, bits = "ecdsa", loaded.curve.key_size
    elif isinstance(loaded, rsa.RSAPrivateKey):
        kind, bits = "rsa", loaded.key_size
        if bits < MIN_RSA_BITS:
            raise BadKey(f"an RSA key of {bits} bits is too weak: at least {MIN_RSA_BITS}")
    else:
        raise BadKey("only Ed25519, ECDSA and RSA keys are used (DSA is refused)")
    public = loaded.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                              serialization.PublicFormat.OpenSSH).decode()
    private = loaded.private_bytes(serialization.Encoding.PEM,
                                   serialization.PrivateFormat.OpenSSH,
                                   serialization.NoEncryption()).decode()
    return Key(private, public, kind, bits, fingerprint(public))


def fingerprint(public_openssh: str) -> str:
    """`SHA256:<base64, unpadded>` of the key's blob, as `ssh-keygen -l` prints it."""
    blob = base64.b64decode(public_openssh.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def generate() -> Key:
    """A new Ed25519 key."""
    key = ed25519.Ed25519PrivateKey.generate()
    return read(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.OpenSSH,
                                  serialization.NoEncryption()).decode())
