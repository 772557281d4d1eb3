"""Deploying to a server reached over SSH, against a real one: a network namespace with its own
sshd and Docker engine (`../shared/fixtures/remote_server.py`), which has no registry and no
route out. Images built or kept on the control plane reach it by `docker save | docker
load`; its own Caddy, started over SSH with its admin API on the server's loopback only,
routes its apps; a changed host key stops deployments until an admin pins it again."""

from __future__ import annotations

import re
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from launchbay.drivers import tls_certificates
from launchbay.settings import Settings

from docker_support import (
    Traffic,
    deploy,
    deployed,
    eventually,
    host_of,
    listed,
    set_image,
    wait,
    with_edge,
)
from remote_support import fixture
from support import Api
from test_builds import repo
from test_domains_tls import active, bind, issued
from test_ssh_credentials import keygen


@pytest.fixture
def settings(tmp_path, database_url, mock_dns) -> Settings:
    return with_edge(tmp_path, database_url, edge_drain_seconds=1, dns_resolver=mock_dns)


def containers_of(client: docker.DockerClient, ids: dict[str, str], all: bool = True) -> Any:
    """The app's containers on an engine (one listing: never racing their removal)."""
    return listed(client, all, f"launchbay.resource={ids['resource']}")


def engine_of(remote: dict[str, Any]) -> docker.DockerClient:
    """The server's own engine, seen from the host (for assertions only)."""
    return docker.DockerClient(base_url=f"unix://{remote['docker_sock']}")


def register(api: Api, remote: dict[str, Any]) -> str:
    """The server registered with a key launchbay generates (its public key installed on the
    server as an admin would), its host key pinned as the draft test showed it."""
    made = api.post("/credentials/ssh", {"name": f"gen-{remote['name']}", "username": "root"})
    with open(Path(remote["private_key_path"]).parent / "authorized_keys", "a") as keys:
        keys.write(made["publicKey"].strip() + "\n")
    draft = {"host": remote["address"], "port": remote["ssh_port"], "username": "root",
             "credentialId": made["id"]}
    tested = api.post("/servers/connectivity-tests", {"server": draft})
    assert tested["status"] == "healthy", tested
    assert tested["hostKeyFingerprint"] == remote["host_key_fingerprint"]
    return str(api.post("/servers", {**draft, "name": remote["name"],
                                     "hostKeyFingerprint": tested["hostKeyFingerprint"]})["id"])


def app_on(api: Api, server: str, image: str | None = None,
           source: dict[str, Any] | None = None) -> dict[str, str]:
    """An app placed on `server`, of `image` (or `source`)."""
    project = api.post("/projects", {"name": f"remote-{uuid.uuid4().hex[:4]}"})["id"]
    env = api.post("/environments", {"projectId": project, "name": "production",
                                     "kind": "production"})["id"]
    if image:
        name, _, tag = image.partition(":")
        source = {"kind": "docker-image", "imageName": name, "imageTag": tag}
    resource = api.post("/resources", {
        "projectId": project, "environmentId": env, "name": "web", "serverId": server,
        "source": source, "networkProfile": {"internalPort": 8080}})["id"]
    return {"project": project, "env": env, "resource": resource}


def via_remote_edge(remote: dict[str, Any], host: str) -> httpx.Response:
    """A request to the server's own Caddy, at its address (the namespace's)."""
    return httpx.get(f"http://{remote['address']}/", headers={"Host": host}, timeout=5)


def test_an_app_runs_and_is_routed_on_a_server_reached_over_ssh(remote, api, settings, cp):
    server = register(api, remote)
    assert engine_of(remote).images.list(name="lbtest/hello") == []  # nothing there yet
    api.post(f"/servers/{server}/edge-proxy/bootstrap", {})
    eventually(lambda: api.get(f"/servers/{server}")["server"]["edgeProxy"]["status"]
               == "ready", within=60)

    ids = app_on(api, server, "lbtest/hello:v1")
    v1 = deployed(api, ids, timeout=120)
    logs = [e["message"] for e in api.get(f"/deployments/{v1['id']}/logs")["logs"]]
    assert any("copying lbtest/hello:v1 to the server" in m for m in logs), logs
    theirs = containers_of(engine_of(remote), ids, all=False)
    assert [c.name for c in theirs] == [v1["containerName"]]
    mine = containers_of(docker.from_env(), ids)
    assert mine == []  # nothing of it on the control plane's engine
    host = host_of(api, ids["resource"])
    assert v1["url"] == f"http://{host}/"  # at the server's edge, on its port 80
    assert eventually(lambda: via_remote_edge(remote, host).text == "hello v1\n")
    # The control plane's own Caddy does not route it (its upstream is on the server).
    local = httpx.get(f"http://127.0.0.1:{settings.edge_http_port}/", headers={"Host": host})
    assert local.status_code == 404
    # Caddy's admin API is not reachable at the server's address.
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://{remote['address']}:2019/config/", timeout=2)

    # A redeploy under bounded traffic to the server's edge: no request fails.
    with Traffic([f"http://{remote['address']}/"], host, seconds=30) as traffic:
        time.sleep(1)
        set_image(api, ids["resource"], "lbtest/hello:v2")
        v2 = wait(api, deploy(api, ids), timeout=120)
        assert v2["status"] == "succeeded", v2
        time.sleep(2.5)  # the replaced release drains, then is stopped
    assert traffic.failures == []
    assert traffic.seen[-1][1] == "hello v2\n" and traffic.seen[0][1] == "hello v1\n"

    back = api.post(f"/deployments/{v2['id']}/rollback", {})
    assert wait(api, back["id"], timeout=120)["status"] == "succeeded"
    assert eventually(lambda: via_remote_edge(remote, host).text == "hello v1\n")

    logs = api.get(f"/resources/{ids['resource']}/runtime-logs", params={"tailLines": 50})
    assert logs["deploymentId"] == back["id"]
    assert any("response:200" in line["message"] for line in logs["logs"]), logs

    capacity = api.get(f"/servers/{server}/capacity")
    assert not capacity["partial"], capacity["warnings"]
    running = {c["resourceId"] for c in capacity["launchbayContainers"] if c["running"]}
    assert running == {ids["resource"]}
    assert capacity["docker"]["imagesSize"] > 0
    local = next(s["id"] for s in api.get("/servers")["items"] if s["providerKey"] ==
                 "local-docker")
    # The server's engine holds just what was copied to it; the control plane's, far more.
    assert capacity["docker"]["imagesSize"] < \
        api.get(f"/servers/{local}/capacity")["docker"]["imagesSize"]
    assert {d["path"] for d in capacity["disk"]} == {"/var/lib/docker", "/"}
    assert capacity["memory"]["total"] > 0 and capacity["cpu"]["logicalCores"] >= 1

    api.post(f"/resources/{ids['resource']}/runtime/stop", {})
    assert eventually(lambda: not containers_of(engine_of(remote), ids, all=False), within=60)
    api.ok("DELETE", f"/resources/{ids['resource']}", {"confirmation": {"resourceSlug": "web"}})
    assert eventually(lambda: not containers_of(engine_of(remote), ids), within=60)


def test_a_custom_domain_is_checked_and_served_at_the_servers_edge(remote, api, settings, cp):
    server = register(api, remote)
    assert api.get(f"/servers/{server}")["server"]["publicAddress"] == remote["address"]
    api.post(f"/servers/{server}/edge-proxy/bootstrap", {})
    ids = app_on(api, server, "lbtest/hello:v1")
    deployed(api, ids, timeout=120)
    eventually(lambda: api.get(f"/servers/{server}")["server"]["edgeProxy"]["status"]
               == "ready", within=60)
    binding = bind(api, ids, "shop.example.test", tlsMode="internal")
    shown = active(api, binding, within=60)["binding"]
    # Its DNS should point at the server (the test's DNS answers 127.0.0.1 for every name).
    dns = shown["dnsObservation"]
    assert dns["expectedTargets"] == [remote["address"]] and dns["status"] != "matched", dns
    issued(api, binding)  # seen through the server's tunnel
    served = tls_certificates.served(remote["address"], 443, "shop.example.test")
    assert served is not None and served.covers("shop.example.test")
    plain = httpx.get(f"http://{remote['address']}/", headers={"Host": "shop.example.test"})
    assert plain.status_code in (301, 308)
    assert plain.headers["location"] == "https://shop.example.test/"


def test_a_git_source_is_built_on_the_server(remote, api, settings, cp, tmp_path):
    server = register(api, remote)
    api.post(f"/servers/{server}/edge-proxy/bootstrap", {})
    sha = repo(tmp_path / "repo", {"Dockerfile": "FROM lbtest/hello:v1\nCOPY site /www\n",
                                   "site/index.html": "built there\n"})
    ids = app_on(api, server, source={"kind": "git", "locator": str(tmp_path / "repo"),
                                      "gitRef": "main"})
    d = deployed(api, ids, timeout=180)
    assert d["sourceCommitSha"] == sha
    # Built by the server's engine (its base image copied there first), not the local one.
    org = api.get("/organizations/current-context")["currentOrganization"]["organizationId"]
    built = f"lb/{org}/{ids['resource']}"
    assert engine_of(remote).images.list(name=built)
    assert docker.from_env().images.list(name=built) == []
    host = host_of(api, ids["resource"])
    assert eventually(lambda: via_remote_edge(remote, host).text == "built there\n", within=60)


def test_a_changed_host_key_stops_deployments_until_pinned_again(remote, api, settings, cp):
    server = register(api, remote)
    ids = app_on(api, server, "lbtest/hello:v1")
    deployed(api, ids, timeout=120)

    cp.probe_servers()
    assert api.get(f"/servers/{server}")["server"]["connectivityStatus"] == "healthy"

    fixture("restart-sshd", remote["name"], "--new-host-key")
    cp.targets.tunnel(server).drop()  # what a network cut does: the next use reconnects
    refused = wait(api, deploy(api, ids), timeout=60)
    assert (refused["status"], refused["errorCode"]) == ("failed", "host-key-mismatch"), refused
    # The background probe: one failure is a blip, the second in a row is unreachable.
    cp.probe_servers()
    assert api.get(f"/servers/{server}")["server"]["connectivityStatus"] == "healthy"
    assert cp.probe_servers() == 1
    assert api.get(f"/servers/{server}")["server"]["connectivityStatus"] == "unreachable"
    (change, *_) = api.get("/audit-events", params={
        "eventType": "server.reachability-changed", "aggregateId": server})["items"]
    shown = api.get(f"/audit-events/{change['auditEventId']}")
    assert shown["event"]["payload"] == {"status": "unreachable", "previous": "healthy"}

    presented = api.post(f"/servers/{server}/connectivity-tests", {})
    assert presented["checks"][0]["failure"] == "host-key-mismatch"
    new_key = api.post("/servers/connectivity-tests", {"server": {
        "host": remote["address"], "port": remote["ssh_port"], "username": "root",
        "credentialId": api.get(f"/servers/{server}")["server"]["credential"]["credentialId"]}})
    api.post(f"/servers/{server}/host-key",
             {"hostKeyFingerprint": new_key["hostKeyFingerprint"]})
    assert deployed(api, ids, timeout=120)["status"] == "succeeded"
    cp.probe_servers()
    assert api.get(f"/servers/{server}")["server"]["connectivityStatus"] == "healthy"


def test_the_ssh_connection_cut_mid_deployment_leaves_no_orphans(remote, api, settings, cp):
    server = register(api, remote)
    ids = app_on(api, server, "lbtest/hello:v1")
    deployed(api, ids, timeout=120)
    set_image(api, ids["resource"], "lbtest/hello:v2")
    d = deploy(api, ids)
    # The connection drops at once: while the image is copied or the release starts.
    fixture("restart-sshd", remote["name"])
    cp.targets.tunnel(server).drop()
    done = wait(api, d, timeout=180)
    assert done["status"] in ("succeeded", "failed"), done
    expected = {done["containerName"]} if done["status"] == "succeeded" else set()
    theirs = containers_of(engine_of(remote), ids)
    current = api.get(f"/resources/{ids['resource']}")
    serving = {c.id for c in theirs if c.status == "running"}
    # One release serves (the new one, or the previous one when this failed); nothing else
    # of this deployment is left on the server, and nothing on the control plane's engine.
    if done["status"] == "succeeded":
        assert eventually(lambda: {c.name for c in containers_of(engine_of(remote), ids)} ==
            expected, within=30)
    else:
        assert not [c for c in theirs if c.labels.get("launchbay.deployment") == d]
        assert len(serving) == 1, current
    assert containers_of(docker.from_env(), ids) == []


def test_the_cli_adds_a_server_deploys_there_and_removes_it(remote, api, cli, settings):
    name, fingerprint = remote["name"], remote["host_key_fingerprint"]
    added = cli("servers", "add", name, remote["address"], "--key",
                remote["private_key_path"], "--fingerprint", fingerprint, "--no-edge")
    assert "healthy" in added and f"host key {fingerprint} pinned" in added
    table = cli("servers", "list")
    assert name in table and "active" in table
    assert "ssh: passed" in cli("servers", "test", name)

    project = api.post("/projects", {"name": "cli-remote"})["id"]
    api.post("/environments", {"projectId": project, "name": "production",
                               "kind": "production"})
    cli("apps", "create", "web", "--project", "cli-remote", "--env", "production", "--image",
        "lbtest/hello:v1", "--port", "8080", "--server", name)
    deployed_there = cli("deploy", "cli-remote/production/web", "--quiet")
    # Its URL is at the server's edge (port 80 there), not the control plane's.
    assert "deployed" in deployed_there and \
        "http://web-production-cli-remote.localhost/" in deployed_there
    assert len(listed(engine_of(remote), all=False, label="launchbay.managed=true")) == 1

    blocked = cli("servers", "rm", name, "--confirm", name, ok=False)
    assert "active-server" in blocked and "resource" in blocked
    cli("servers", "deactivate", name, "--reason", "retired")
    refused = cli("deploy", "cli-remote/production/web", "--quiet", ok=False)
    assert "deactivated" in refused
    assert "inactive" in cli("servers", "list")

    # The key reached the server through launchbay's memory only: no file of launchbay's (its
    # store, its tunnels' folders) and no log holds it.
    key = Path(remote["private_key_path"]).read_text()
    body = "".join(key.strip().splitlines()[1:-1])
    places = [*settings.data_dir.rglob("*"), *Path(tempfile.gettempdir()).glob(
        "launchbay-ssh-*/*")]
    for path in places:
        if path.is_file():
            content = path.read_bytes()
            assert body[:40].encode() not in content and b"PRIVATE KEY" not in content, path
    for d in api.get("/deployments")["items"]:
        logs = str(api.get(f"/deployments/{d['id']}/logs"))
        assert body[:40] not in logs and "PRIVATE KEY" not in logs


def test_the_console_adds_a_server_with_a_key_it_makes(remote, api, cp):
    from support import ADMIN_EMAIL, ADMIN_PASSWORD
    from test_console import Browser

    browser = Browser(cp).sign_in(ADMIN_EMAIL, ADMIN_PASSWORD)
    assert "Add a server" in browser.get("/servers").text
    typed = {"name": remote["name"], "host": remote["address"], "port": "22",
             "username": "root"}
    first = browser.post("/servers/draft", typed)
    assert first.status_code == 200, first.text
    public = re.search(r'<p class="token">([^<]+)</p>', first.text)
    assert public and public.group(1).startswith("ssh-ed25519 ")
    assert "(auth)" in first.text  # not installed yet: the server refuses it
    credential = re.search(r'name="credentialId" value="([^"]+)"', first.text).group(1)
    with open(Path(remote["private_key_path"]).parent / "authorized_keys", "a") as keys:
        keys.write(public.group(1) + "\n")

    browser.csrf = re.search(r'name="csrf" value="([^"]+)"', first.text).group(1)
    again = browser.post("/servers/draft", {**typed, "credentialId": credential})
    assert remote["host_key_fingerprint"] in again.text and public.group(1) not in again.text
    added = browser.post("/servers/add", {**typed, "credentialId": credential,
                                          "hostKeyFingerprint": remote["host_key_fingerprint"]})
    assert added.status_code == 303, added.text
    (server,) = [s["id"] for s in api.get("/servers")["items"] if s["name"] == remote["name"]]
    page = browser.get("/servers")
    assert remote["name"] in page.text and remote["host_key_fingerprint"] in page.text
    assert browser.post(f"/servers/{server}/test").status_code == 303
    assert api.get(f"/servers/{server}")["server"]["connectivityStatus"] == "healthy"
    assert "BEGIN OPENSSH PRIVATE KEY" not in page.text


def test_rotating_a_credential_retests_its_servers_at_once(remote, api, cp, tmp_path):
    server = register(api, remote)
    credential = api.get(f"/servers/{server}")["server"]["credential"]["credentialId"]
    ids = app_on(api, server, "lbtest/hello:v1")
    deployed(api, ids, timeout=120)
    acknowledged = {"credentialId": credential, "acknowledgeServerUsage": True}

    stranger, _ = keygen(tmp_path, "stranger", "-t", "ed25519")  # the server does not know it
    api.post(f"/credentials/ssh/{credential}/rotate",
             {"privateKey": stranger, "confirmation": acknowledged})
    assert api.get(f"/servers/{server}")["server"]["connectivityStatus"] == "unreachable"
    refused = wait(api, deploy(api, ids), timeout=60)
    assert (refused["status"], refused["errorCode"]) == ("failed", "auth"), refused

    api.post(f"/credentials/ssh/{credential}/rotate", {
        "privateKey": Path(remote["private_key_path"]).read_text(),
        "confirmation": acknowledged})
    assert api.get(f"/servers/{server}")["server"]["connectivityStatus"] == "healthy"
    assert deployed(api, ids, timeout=120)["status"] == "succeeded"
