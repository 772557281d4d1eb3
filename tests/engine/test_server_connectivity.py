"""Servers reached over SSH, against a real one: a network namespace with its own sshd and
Docker engine (`../shared/fixtures/remote_server.py`). The draft test shows the host key to
confirm, registration pins it, a new host key is refused (`host-key-mismatch`) until pinned
again, and each kind of failure is named."""

from __future__ import annotations

from pathlib import Path

from remote_support import fixture
from support import Api


def test_a_server_is_registered_with_its_host_key_pinned(remote, api: Api) -> None:
    name = remote["name"]
    key = Path(remote["private_key_path"]).read_text()
    credential = api.post("/credentials/ssh", {"name": "fixture", "privateKey": key,
                                               "username": "root"})["id"]
    draft = {"host": remote["address"], "port": remote["ssh_port"], "username": "root",
             "credentialId": credential}
    tested = api.post("/servers/connectivity-tests", {"server": draft})
    assert tested["status"] == "healthy", tested
    assert tested["hostKeyFingerprint"] == remote["host_key_fingerprint"]
    assert {c["name"]: c["status"] for c in tested["checks"]}["docker"] == "passed"
    wrong_user = api.post("/servers/connectivity-tests", {"server": {**draft,
                                                                     "username": "nobody"}})
    assert wrong_user["status"] == "unreachable" and wrong_user["checks"][0]["failure"] == "auth"
    closed = api.post("/servers/connectivity-tests", {"server": {**draft, "port": 2222}})
    assert closed["checks"][0]["failure"] == "tcp"

    refused = api.request("POST", "/servers", {**draft, "name": name,
                                               "hostKeyFingerprint": "SHA256:not-this-one"})
    assert refused.status_code == 409 and refused.json()["code"] == "host_key_mismatch"
    server = api.post("/servers", {**draft, "name": name,
                                   "hostKeyFingerprint": remote["host_key_fingerprint"]})["id"]
    again = api.request("POST", "/servers", {**draft, "name": "twice",
                                             "hostKeyFingerprint": remote["host_key_fingerprint"]})
    assert again.status_code == 409 and again.json()["code"] == "server_exists"
    shown = api.get(f"/servers/{server}")["server"]
    assert shown["credential"]["hostKeyFingerprint"] == remote["host_key_fingerprint"]
    assert api.post(f"/servers/{server}/connectivity-tests", {})["status"] == "healthy"

    # The server's host key changes: refused, whatever the rest, until pinned again.
    fixture("restart-sshd", name, "--new-host-key")
    changed = api.post(f"/servers/{server}/connectivity-tests", {})
    assert changed["status"] == "unreachable"
    assert changed["checks"][0]["failure"] == "host-key-mismatch"
    presented = api.post("/servers/connectivity-tests", {"server": draft})["hostKeyFingerprint"]
    assert presented != remote["host_key_fingerprint"]
    wrong_pin = api.request("POST", f"/servers/{server}/host-key",
                            {"hostKeyFingerprint": remote["host_key_fingerprint"]})
    assert wrong_pin.status_code == 409
    assert api.post(f"/servers/{server}/host-key",
                    {"hostKeyFingerprint": presented})["status"] == "healthy"
    assert api.post(f"/servers/{server}/connectivity-tests", {})["status"] == "healthy"
    events = {e["eventType"] for e in api.get("/audit-events", params={"limit": 50})["items"]}
    assert {"server.registered", "server.host-key-pinned", "server.connectivity-tested"} <= events

    api.post(f"/servers/{server}/rename", {"name": "builder"})
    api.post(f"/servers/{server}/deactivate", {})
    assert api.get(f"/servers/{server}/delete-check")["eligible"]
    api.ok("DELETE", f"/servers/{server}", {"confirmation": {"serverId": server}})
    assert api.ok("DELETE", f"/credentials/ssh/{credential}",
                  {"confirmation": {"credentialId": credential}})["id"] == credential
