"""Servers reached over SSH, as the store sees them (tests/engine/test_server_connectivity.py
connects to real ones): hosts made canonical, addresses of the control plane's own networks
refused, servers of other organizations out of reach, deletes that keep history and free
their credential, and no resource placed on a server that cannot run it yet."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from launchbay.operations.errors import Invalid
from launchbay.operations.remote_servers import canonical_host
from launchbay.store.models import OperatorWork, Server

from support import Api, add_member, make_app
from test_ssh_credentials import keygen


def test_hosts_are_canonical_and_nothing_else():
    assert canonical_host(" Build.Example.COM ") == "build.example.com"
    assert canonical_host("2001:DB8::0:1") == "2001:db8::1"
    assert canonical_host("[2001:db8::1]") == "2001:db8::1"
    assert canonical_host("010.1.2.3".lstrip("0")) == "10.1.2.3"
    for bad in ("https://example.com", "example.com:22", "10.0.0.0/8", "ex ample.com",
                "-x.example.com", "user@example.com", "a" * 300):
        with pytest.raises(Invalid):
            canonical_host(bad)


def _server(cp, org_id: str, credential: str, status: str = "inactive",
            swarm: bool = False) -> str:
    with cp.sessions() as db:
        db.add(Server(id="srv_remote", organization_id=org_id, name="build", host="10.251.9.2",
                      port=22, provider_key="docker-swarm" if swarm else "generic-ssh",
                      target_kind="orchestrator-cluster" if swarm else "single-server",
                      credential_id=credential,
                      ssh_username="root", host_public_key="ssh-ed25519 AAAA",
                      host_key_fingerprint="SHA256:x", lifecycle_status=status))
        db.commit()
    return "srv_remote"


def test_addresses_of_the_control_planes_networks_are_refused(admin: Api, tmp_path):
    key, _ = keygen(tmp_path, "ed", "-t", "ed25519")
    credential = admin.post("/credentials/ssh", {"name": "k", "privateKey": key})["id"]
    for host in ("127.0.0.1", "localhost", "169.254.169.254", "192.168.1.10", "::1"):
        refused = admin.request("POST", "/servers/connectivity-tests", {"server": {
            "host": host, "credentialId": credential}})
        assert refused.status_code == 400, (host, refused.text)
        assert refused.json()["code"] in ("server_address_refused", "validation_failed")
    unknown = admin.request("POST", "/servers/connectivity-tests", {"server": {
        "host": "10.251.9.2", "credentialId": "ssh_nope"}})
    assert unknown.status_code == 404


def test_deleting_a_server_keeps_its_history_and_frees_its_credential(admin, cp, tmp_path):
    key, _ = keygen(tmp_path, "ed", "-t", "ed25519")
    credential = admin.post("/credentials/ssh", {"name": "k", "privateKey": key})["id"]
    server = _server(cp, admin.org_id, credential, status="active")
    ids = make_app(admin, "lbtest/hello:v1")
    placed = admin.post("/resources", {
        "projectId": ids["project"], "environmentId": ids["env"], "name": "remote",
        "serverId": server, "source": {"kind": "docker-image", "imageName": "lbtest/hello",
                                       "imageTag": "v1"}})["id"]
    assert admin.get(f"/resources/{placed}")["resource"]["destinationId"] == server
    shown = admin.get(f"/servers/{server}")["server"]
    assert shown["credential"]["credentialId"] == credential and "BEGIN" not in str(shown)

    check = admin.get(f"/servers/{server}/delete-check")
    assert not check["eligible"]
    assert [b["kind"] for b in check["blockers"]] == ["active-server", "resource"]
    confirm = {"confirmation": {"serverId": server}}
    blocked = admin.request("DELETE", f"/servers/{server}", confirm)
    assert blocked.status_code == 409 and blocked.json()["code"] == "server_delete_blocked"
    admin.post(f"/servers/{server}/deactivate", {"reason": "moving to new hardware"})
    again = admin.request("POST", "/resources", {
        "projectId": ids["project"], "environmentId": ids["env"], "name": "remote-2",
        "serverId": server})
    assert again.json()["code"] == "server_inactive"
    undeployable = admin.request("POST", "/deployments", {
        "projectId": ids["project"], "environmentId": ids["env"], "resourceId": placed})
    assert undeployable.status_code == 409 and undeployable.json()["code"] == "server_inactive"
    assert [b["kind"] for b in admin.get(f"/servers/{server}/delete-check")["blockers"]] == \
        ["resource"]
    admin.ok("DELETE", f"/resources/{placed}", {"confirmation": {"resourceSlug": "remote"}})
    # Its removal from the server is work still to do there: it blocks the delete too.
    assert [b["kind"] for b in admin.get(f"/servers/{server}/delete-check")["blockers"]] == \
        ["scheduled-work"]
    with cp.sessions() as db:  # as when that work has run
        db.execute(update(OperatorWork).where(OperatorWork.server_id == server)
                   .values(status="succeeded"))
        db.commit()
    assert admin.get(f"/servers/{server}/delete-check")["eligible"]
    assert admin.request("DELETE", f"/credentials/ssh/{credential}", {
        "confirmation": {"credentialId": credential}}).status_code == 409  # still used
    assert admin.ok("DELETE", f"/servers/{server}", confirm)["id"] == server
    assert server not in [s["id"] for s in admin.get("/servers")["items"]]
    assert admin.request("GET", f"/servers/{server}").status_code == 404
    with cp.sessions() as db:
        assert db.get(Server, server).lifecycle_status == "deleted"  # kept for its history
    assert admin.ok("DELETE", f"/credentials/ssh/{credential}", {
        "confirmation": {"credentialId": credential}})["id"] == credential


def test_servers_stay_in_their_organization(admin, cp, tmp_path):
    key, _ = keygen(tmp_path, "ed", "-t", "ed25519")
    credential = admin.post("/credentials/ssh", {"name": "k", "privateKey": key})["id"]
    server = _server(cp, admin.org_id, credential)
    org_b = admin.post("/organizations", {"name": "Beta"})["organizationId"]
    bob = add_member(admin, org_b, "bob@example.com", "admin")
    assert server not in [s["id"] for s in bob.get("/servers")["items"]]
    for method, path, body in (
            ("GET", f"/servers/{server}", None), ("GET", f"/servers/{server}/delete-check", None),
            ("POST", f"/servers/{server}/connectivity-tests", {}),
            ("POST", f"/servers/{server}/rename", {"name": "mine"}),
            ("POST", f"/servers/{server}/deactivate", {}),
            ("POST", f"/servers/{server}/host-key", {"hostKeyFingerprint": "SHA256:mine"}),
            ("DELETE", f"/servers/{server}", {"confirmation": {"serverId": server}})):
        assert bob.request(method, path, body).status_code == 404, (method, path)
    # Nor can another organization place an app on it, or read its capacity.
    project = bob.post("/projects", {"name": "b"})["id"]
    env = bob.post("/environments", {"projectId": project, "name": "production"})["id"]
    placed = bob.request("POST", "/resources", {"projectId": project, "environmentId": env,
                                                "name": "app", "serverId": server})
    assert placed.status_code == 404 and placed.json()["code"] == "server_not_found"
    assert bob.request("GET", f"/servers/{server}/capacity").status_code == 404
    theirs = bob.request("POST", "/servers/connectivity-tests", {"server": {
        "host": "10.251.9.2", "credentialId": credential}})  # not Bob's key
    assert theirs.status_code == 404


def test_replicas_need_a_cluster(admin: Api):
    """A server runs one container per resource: more replicas are refused there, at creation,
    in the runtime profile and by scale, and nothing changes."""
    ids = make_app(admin, "lbtest/hello:v1")
    created = admin.request("POST", "/resources", {
        "projectId": ids["project"], "environmentId": ids["env"], "name": "many",
        "runtimeProfile": {"replicas": 2}})
    assert created.status_code == 409 and created.json()["code"] == "replicas_need_cluster"
    for path, body in ((f"/resources/{ids['resource']}/runtime-profile",
                        {"runtimeProfile": {"replicas": 3}}),
                       (f"/resources/{ids['resource']}/scale", {"replicas": 3})):
        refused = admin.request("POST", path, body)
        assert refused.status_code == 409 and refused.json()["code"] == "replicas_need_cluster"
    for bad in (0, 101, "two"):
        assert admin.request("POST", f"/resources/{ids['resource']}/scale",
                             {"replicas": bad}).status_code == 400
    shown = admin.get(f"/resources/{ids['resource']}")
    assert shown["runtimeProfile"].get("replicas", 1) == 1
    one = admin.post(f"/resources/{ids['resource']}/scale", {"replicas": 1})
    assert one == {"resourceId": ids["resource"], "replicas": 1, "runtimeControl": None}


def test_a_volume_is_shared_by_replicas_only_on_one_node(admin: Api, cp, tmp_path):
    """On a swarm, placement constraints say where tasks go; replicas with a (node-local)
    volume only when pinned to one node, whichever comes first: the volume or the replicas.
    Off a swarm, constraints are refused. Nothing changes when refused."""
    key, _ = keygen(tmp_path, "ed", "-t", "ed25519")
    credential = admin.post("/credentials/ssh", {"name": "k", "privateKey": key})["id"]
    server = _server(cp, admin.org_id, credential, status="active", swarm=True)
    ids = make_app(admin, "lbtest/hello:v1")
    refused = admin.request("POST", f"/resources/{ids['resource']}/runtime-profile", {
        "runtimeProfile": {"placementConstraints": ["node.role==manager"]}})
    assert refused.status_code == 409 and refused.json()["code"] == "placement_needs_cluster"
    for bad in ("node.hostname==a; rm -rf /", "engine.labels.x==1", "node.hostname=a"):
        assert admin.request("POST", f"/resources/{ids['resource']}/runtime-profile", {
            "runtimeProfile": {"placementConstraints": [bad]}}).status_code == 400

    resource = admin.post("/resources", {
        "projectId": ids["project"], "environmentId": ids["env"], "name": "db",
        "serverId": server, "runtimeProfile": {"replicas": 2}})["id"]
    volume = admin.post("/storage-volumes", {"projectId": ids["project"],
                                             "environmentId": ids["env"], "name": "data"})["id"]
    attach = {"storageVolumeId": volume, "destinationPath": "/data"}
    refused = admin.request("POST", f"/resources/{resource}/storage-attachments", attach)
    assert refused.status_code == 409 and refused.json()["code"] == "volume_needs_one_replica"
    pinned = ["node.hostname==db1", "node.labels.disk!=hdd"]
    admin.post(f"/resources/{resource}/runtime-profile", {
        "runtimeProfile": {"replicas": 2, "placementConstraints": pinned}})
    admin.post(f"/resources/{resource}/storage-attachments", attach)
    unpinned = admin.request("POST", f"/resources/{resource}/runtime-profile", {
        "runtimeProfile": {"replicas": 2, "placementConstraints": ["node.labels.disk!=hdd"]}})
    assert unpinned.status_code == 409 and unpinned.json()["code"] == "volume_needs_one_replica"
    shown = admin.get(f"/resources/{resource}")["runtimeProfile"]
    assert shown["placementConstraints"] == pinned and shown["replicas"] == 2
    assert admin.post(f"/resources/{resource}/scale", {"replicas": 3})["replicas"] == 3
