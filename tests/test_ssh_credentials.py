"""SSH credentials (seed 004): keys checked and fingerprinted as ssh-keygen does, kept sealed
and never shown or written anywhere in the clear, made by launchbay when asked, not deleted
while a server uses them (by the operation, and by the store itself), rotated in place only
with the acknowledgement of the servers using them."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from sqlalchemy.exc import IntegrityError

from launchbay.store.models import Server, SshCredential

from support import Api, add_member


def keygen(folder: Path, name: str, *args: str) -> tuple[str, str]:
    """A key made by ssh-keygen: (its private key, its fingerprint as ssh-keygen prints it)."""
    path = folder / name
    subprocess.run(["ssh-keygen", "-q", "-N", "", "-f", str(path), *args], check=True)
    printed = subprocess.run(["ssh-keygen", "-lf", f"{path}.pub"], check=True,
                             capture_output=True, text=True).stdout.split()[1]
    return path.read_text(), printed


def private_material(pem: str, passphrase: str | None = None) -> list[bytes]:
    """What would give a private key away: its secret numbers (raw, base64, hex) and the last
    lines of its file (where OpenSSH keeps them)."""
    key = serialization.load_ssh_private_key(pem.encode(), passphrase.encode()
                                             if passphrase else None)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        numbers = [key.private_bytes(serialization.Encoding.Raw,
                                     serialization.PrivateFormat.Raw,
                                     serialization.NoEncryption())]
    else:
        assert isinstance(key, rsa.RSAPrivateKey)
        n = key.private_numbers()
        numbers = [v.to_bytes((v.bit_length() + 7) // 8, "big") for v in (n.d, n.p, n.q)]
    forms = [f for raw in numbers for f in (raw, base64.b64encode(raw)[:40], raw.hex().encode())]
    return forms + [line.encode() for line in pem.splitlines()[-4:-1]]


def _server(cp: Any, org_id: str, credential: str, name: str, status: str = "active") -> None:
    with cp.sessions() as db:
        db.add(Server(id=f"srv_{name}", organization_id=org_id, name=name, host=f"{name}.example",
                      port=22, provider_key="generic-ssh", credential_id=credential,
                      lifecycle_status=status))
        db.commit()


def test_keys_are_checked_fingerprinted_and_never_shown(admin: Api, cp, tmp_path):
    keys = tmp_path / "keys"
    keys.mkdir()
    ed, ed_fingerprint = keygen(keys, "ed", "-t", "ed25519")
    weak, _ = keygen(keys, "weak", "-t", "rsa", "-b", "1024")
    subprocess.run(["ssh-keygen", "-q", "-N", "secret-pw", "-t", "rsa", "-b", "2048", "-f",
                    str(keys / "locked")], check=True)
    locked = (keys / "locked").read_text()
    seen: list[Any] = []

    def made(body: dict[str, Any], status: int = 201) -> Any:
        answer = admin.request("POST", "/credentials/ssh", body)
        assert answer.status_code == status, answer.text
        seen.append(answer.json())
        return answer.json()

    for bad, why in (("not a key", "not a private key"), (weak, "too weak"),
                     (locked, "passphrase")):
        refused = made({"name": "bad", "privateKey": bad}, 400)
        assert refused["details"][0]["field"] == "privateKey" and why in refused["details"][0][
            "message"]
    assert "does not open" in made({"name": "bad", "privateKey": locked,
                                    "passphrase": "wrong-pw"}, 400)["details"][0]["message"]
    assert admin.get("/credentials/ssh")["items"] == []

    key = made({"name": "deploy", "privateKey": ed, "username": "deploy"})
    assert key["fingerprint"] == ed_fingerprint and key["publicKey"] is None
    opened = made({"name": "ops", "privateKey": locked, "passphrase": "secret-pw"})
    fresh = made({"name": "generated"})
    assert fresh["publicKey"].startswith("ssh-ed25519 ")  # shown this once
    listed = admin.get("/credentials/ssh")["items"]
    assert [c["name"] for c in listed] == ["generated", "ops", "deploy"]
    assert {c["keyType"] for c in listed} == {"ed25519", "rsa"}
    shown = admin.get(f"/credentials/ssh/{opened['id']}")
    assert shown["credential"]["keyBits"] == 2048 and shown["usage"]["totalServers"] == 0
    seen += [listed, shown, admin.get(f"/credentials/ssh/{fresh['id']}"),
             admin.get("/audit-events", params={"limit": 100})]

    # The private keys are nowhere, in any form (their secret numbers raw, in base64 or hex;
    # the end of their files, which holds them): no answer, no audit event, no file of the
    # store (SQLite's, and its write-ahead log) or of the data dir. Public keys may be kept.
    secrets = [b"secret-pw"] + private_material(ed) + private_material(locked, "secret-pw")
    text = json.dumps(seen).encode()
    assert not any(s in text for s in secrets)
    for path in tmp_path.rglob("*"):
        if path.is_file() and keys not in path.parents:
            data = path.read_bytes()
            assert not any(s in data for s in secrets), path
    with cp.sessions() as db:
        sealed = db.get(SshCredential, key["id"]).sealed_private_key
        assert "BEGIN" not in sealed and cp.ops.secrets.decrypt(sealed).startswith(
            "-----BEGIN OPENSSH PRIVATE KEY-----")


def test_a_credential_in_use_is_not_deleted_and_rotates_only_acknowledged(admin, cp, tmp_path):
    ed, _ = keygen(tmp_path, "ed", "-t", "ed25519")
    other, other_fingerprint = keygen(tmp_path, "other", "-t", "ecdsa")
    c = admin.post("/credentials/ssh", {"name": "deploy", "privateKey": ed})["id"]
    _server(cp, admin.org_id, c, "web-1")
    _server(cp, admin.org_id, c, "web-2", status="inactive")
    usage = admin.get(f"/credentials/ssh/{c}")["usage"]
    assert (usage["totalServers"], usage["activeServers"], usage["inactiveServers"]) == (2, 1, 1)
    assert {s["serverName"] for s in usage["servers"]} == {"web-1", "web-2"}

    confirm = {"confirmation": {"credentialId": c}}
    mismatch = admin.request("DELETE", f"/credentials/ssh/{c}",
                             {"confirmation": {"credentialId": "ssh_other"}})
    assert mismatch.status_code == 400
    used = admin.request("DELETE", f"/credentials/ssh/{c}", confirm)
    assert used.status_code == 409 and used.json()["code"] == "credential_in_use"
    assert used.json()["details"]["usage"]["totalServers"] == 2
    with cp.sessions() as db:  # the store refuses it too: no server left without its key
        db.delete(db.get(SshCredential, c))
        with pytest.raises(IntegrityError):
            db.commit()

    blind = admin.request("POST", f"/credentials/ssh/{c}/rotate",
                          {"privateKey": other, **confirm})
    assert blind.status_code == 409 and blind.json()["code"] == \
        "credential_rotation_requires_usage_acknowledgement"
    rotated = admin.post(f"/credentials/ssh/{c}/rotate", {"privateKey": other, "confirmation": {
        "credentialId": c, "acknowledgeServerUsage": True}})
    assert rotated["credential"]["id"] == c and rotated["credential"]["fingerprint"] == \
        other_fingerprint and rotated["affectedUsage"]["totalServers"] == 2
    assert admin.get(f"/credentials/ssh/{c}")["credential"]["rotatedAt"]

    with cp.sessions() as db:  # its servers gone, it goes
        for s in db.query(Server).filter_by(credential_id=c):
            db.delete(s)
        db.commit()
    assert admin.ok("DELETE", f"/credentials/ssh/{c}", confirm)["id"] == c
    assert admin.request("GET", f"/credentials/ssh/{c}").status_code == 404
    events = {e["eventType"] for e in admin.get("/audit-events", params={"limit": 50})["items"]}
    assert {"credential.ssh-created", "credential.ssh-rotated",
            "credential.ssh-deleted"} <= events


def test_credentials_stay_in_their_organization(admin, cp, tmp_path):
    ed, _ = keygen(tmp_path, "ed", "-t", "ed25519")
    c = admin.post("/credentials/ssh", {"name": "deploy", "privateKey": ed})["id"]
    org_b = admin.post("/organizations", {"name": "Beta"})["organizationId"]
    bob = add_member(admin, org_b, "bob@example.com", "admin")
    assert bob.get("/credentials/ssh")["items"] == []
    for method, path, body in (
            ("GET", f"/credentials/ssh/{c}", None),
            ("DELETE", f"/credentials/ssh/{c}", {"confirmation": {"credentialId": c}}),
            ("POST", f"/credentials/ssh/{c}/rotate", {"privateKey": ed, "confirmation": {
                "credentialId": c, "acknowledgeServerUsage": True}})):
        assert bob.request(method, path, body).status_code == 404, (method, path)
    developer = add_member(admin, admin.org_id, "dev@example.com", "developer")
    assert developer.get("/credentials/ssh")["items"][0]["id"] == c
    assert developer.request("POST", "/credentials/ssh", {"name": "mine"}).status_code == 403
