"""Releases on a two-node Docker Swarm (`remote_server.py --swarm-pair`, its manager registered
over SSH): a resource is one replicated service spread over the nodes; a release updates it
start-first behind the task's health check and succeeds only once every replica of the new
release runs; a release whose health check fails is rolled back by Swarm and fails with the
task's error, the old release still whole; scaling, draining a node."""

from __future__ import annotations

import signal
import uuid
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from launchbay.settings import Settings

import images
from docker_support import (
    Traffic,
    deploy,
    deployed,
    eventually,
    first_admin,
    host_of,
    serve,
    set_image,
    wait,
    with_edge,
)
from remote_support import failed_requests, fixture, form_swarm, overlay_traffic
from support import Api, free_port
from test_builds import repo

pytestmark = pytest.mark.slow
FAST = {"intervalSeconds": 1, "timeoutSeconds": 1, "retries": 2, "startPeriodSeconds": 3}


@pytest.fixture
def settings(tmp_path, database_url, mock_dns) -> Settings:
    """With an edge proxy: on a swarm, a Caddy container on each node (of the tests' image)."""
    return with_edge(tmp_path, database_url, edge_drain_seconds=1, dns_resolver=mock_dns,
                     swarm_edge_image=images.ensure_caddy())


@pytest.fixture
def swarm() -> Any:
    """Two namespace servers made one cluster (a manager and a worker), as an operator would."""
    name = f"lbs{uuid.uuid4().hex[:5]}"
    try:
        pair = fixture("up", name, "--swarm-pair")  # no image there: they come from launchbay
        manager, worker = form_swarm(pair)
        yield {**pair, "manager": manager, "worker": worker}
    finally:
        fixture("down", name)


def register_swarm(api: Api, swarm: dict[str, Any]) -> str:
    a = swarm["servers"][0]
    credential = api.post("/credentials/ssh", {
        "name": f"swarm-{swarm['name']}", "username": "root",
        "privateKey": Path(swarm["private_key_path"]).read_text()})["id"]
    draft = {"host": a["address"], "port": 22, "username": "root", "credentialId": credential,
             "providerKey": "docker-swarm"}
    tested = api.post("/servers/connectivity-tests", {"server": draft})
    assert tested["status"] == "healthy", tested
    return str(api.post("/servers", {**draft, "name": swarm["name"],
                                     "hostKeyFingerprint": tested["hostKeyFingerprint"]})["id"])


def replicated_app(api: Api, server: str, replicas: int = 2) -> dict[str, str]:
    """An app of lbtest/hello:v1 with `replicas` on the swarm, its health checked every
    second."""
    project = api.post("/projects", {"name": f"swarm-{uuid.uuid4().hex[:4]}"})["id"]
    env = api.post("/environments", {"projectId": project, "name": "production",
                                     "kind": "production"})["id"]
    resource = api.post("/resources", {
        "projectId": project, "environmentId": env, "name": "web", "serverId": server,
        "source": {"kind": "docker-image", "imageName": "lbtest/hello", "imageTag": "v1"},
        "networkProfile": {"internalPort": 8080},
        "runtimeProfile": {"replicas": replicas}})["id"]
    api.post(f"/resources/{resource}/health-policy", {"healthCheck": FAST})
    return {"project": project, "env": env, "resource": resource}


def tasks(manager: docker.DockerClient, resource: str) -> list[dict[str, Any]]:
    """The service's tasks that should run, with the node each is on."""
    service = manager.services.get("lb-" + resource.replace("_", "-").lower())
    return [t for t in service.tasks(filters={"desired-state": "running"})]


def running(manager: docker.DockerClient, resource: str) -> list[dict[str, Any]]:
    return [t for t in tasks(manager, resource) if t["Status"]["State"] == "running"]


def test_a_replicated_service_is_released_health_gated_and_rolled_back_by_swarm(
        swarm, api: Api, cli):
    manager = swarm["manager"]
    server = register_swarm(api, swarm)
    ids = replicated_app(api, server)
    resource = ids["resource"]
    api.post(f"/servers/{server}/edge-proxy/bootstrap", {})
    eventually(lambda: api.get(f"/servers/{server}")["server"]["edgeProxy"]["status"]
               == "ready", within=120)
    v1 = deployed(api, ids, timeout=180)
    logs = [e["message"] for e in api.get(f"/deployments/{v1['id']}/logs")["logs"]]
    worker_address = swarm["servers"][1]["address"]
    assert "copying lbtest/hello:v1 to the server (docker save | docker load)" in logs, logs
    assert f"copying lbtest/hello:v1 to node {worker_address}" in logs, logs
    image_v1 = manager.images.get("lbtest/hello:v1").id
    assert swarm["worker"].images.get(image_v1).id == image_v1
    assert v1["runtimePlan"]["target"] == {"kind": "orchestrator-cluster",
                                           "providerKey": "docker-swarm",
                                           "serverIds": [server]}
    up = running(manager, resource)
    assert len(up) == 2
    assert len({t["NodeID"] for t in up}) == 2  # one replica on each node
    service = manager.services.get(v1["containerName"])
    spec = service.attrs["Spec"]
    assert spec["UpdateConfig"]["Order"] == "start-first"
    assert spec["UpdateConfig"]["FailureAction"] == "rollback"
    assert spec["EndpointSpec"]["Mode"] == "dnsrr"
    assert spec["TaskTemplate"]["ContainerSpec"]["Healthcheck"]["Test"][0] == "CMD-SHELL"

    # The edge on each node serves it: a request reaching either node is answered.
    host = host_of(api, resource)
    assert api.get(f"/deployments/{v1['id']}")["deployment"]["url"] == f"http://{host}/"
    nodes = [s["address"] for s in swarm["servers"]]
    for address in nodes:
        assert eventually(lambda a=address: answer(a, host) == "hello v1\n")

    # A new release replaces the tasks under bounded constant traffic, through both nodes'
    # edges and from a client on the environment's overlay network (by the app's name): not
    # one request fails.
    client = manager.containers.run("lbtest/hello:v1", overlay_traffic("web"), detach=True,
                                    network=f"lb-{ids['env']}")
    with Traffic([f"http://{address}/" for address in nodes], host) as traffic:
        set_image(api, resource, "lbtest/hello:v2")
        v2 = deployed(api, ids, timeout=180)
        eventually(lambda: "hello v2" in client.logs().decode(), within=10)
        eventually(lambda: traffic.seen[-1][1] == "hello v2\n", within=10)
    assert len(traffic.seen) > 50 and traffic.failures == [], traffic.failures[:5]
    assert {text for _, text in traffic.seen} == {"hello v1\n", "hello v2\n"}
    client.kill()
    answers = client.logs().decode().splitlines()
    client.remove(force=True)
    assert len(answers) > 50 and failed_requests(answers) == [], answers
    assert any("hello v1" in a for a in answers) and "hello v2" in answers[-1]
    # ...the same service, no second one.
    assert v2["containerName"] == v1["containerName"]
    assert [s.name for s in manager.services.list()] == [v1["containerName"]]
    image_v2 = manager.images.get("lbtest/hello:v2").id
    assert {t["Spec"]["ContainerSpec"]["Image"] for t in running(manager, resource)} == \
        {image_v2}

    # A release whose health check fails: Swarm rolls back, the deployment fails with why.
    api.post(f"/resources/{resource}/health-policy", {"healthCheck": {
        **FAST, "http": {"path": "/missing"}}})
    set_image(api, resource, "lbtest/hello:v1")
    bad = wait(api, deploy(api, ids), timeout=240)
    assert bad["status"] == "failed", bad
    assert "unhealthy" in (bad["errorMessage"] or ""), bad["errorMessage"]
    logs = [e["message"] for e in api.get(f"/deployments/{bad['id']}/logs")["logs"]]
    assert any("rolled the service back" in m for m in logs), logs
    up = running(manager, resource)
    assert len(up) == 2 and {t["Spec"]["ContainerSpec"]["Image"] for t in up} == {image_v2}
    for address in nodes:  # the old release still answers, at both nodes
        assert answer(address, host) == "hello v2\n"

    # Scale 2 -> 3 -> 1 through the API.
    api.post(f"/resources/{resource}/health-policy", {"healthCheck": FAST})
    for replicas in (3, 1):
        scaled = api.post(f"/resources/{resource}/scale", {"replicas": replicas})
        assert scaled["replicas"] == replicas
        eventually(lambda n=replicas: len(running(manager, resource)) == n
                   and len(tasks(manager, resource)) == n, within=90)

    # Draining a node moves its replica to the other (scaled back to 2 by the CLI).
    assert "web runs 2 replicas" in cli("apps", "scale", resource, "2")
    eventually(lambda: len(running(manager, resource)) == 2, within=90)
    worker = next(n for n in manager.nodes.list() if n.attrs["Spec"]["Role"] == "worker")
    worker.update({**worker.attrs["Spec"], "Availability": "drain"})
    eventually(lambda: {t["NodeID"] for t in running(manager, resource)} != {worker.id}
               and worker.id not in {t["NodeID"] for t in tasks(manager, resource)}
               and len(running(manager, resource)) == 2, within=90)
    for address in nodes:  # ...and the app keeps answering at both nodes' edges
        assert answer(address, host) == "hello v2\n"

    # Runtime controls and logs act on the service: logs merged across tasks, each line
    # naming its task and node; stop scales it to 0 (its replicas given back by start);
    # restart replaces its tasks; delete removes it.
    lines = api.get(f"/resources/{resource}/runtime-logs", params={"tailLines": 50})["logs"]
    assert lines and all(line["message"].startswith("[task ") for line in lines), lines[:3]
    before = {t["ID"] for t in running(manager, resource)}
    for action, expected, lifecycle in (("stop", 0, "stopped"), ("start", 2, "running"),
                                        ("restart", 2, "running")):
        control(api, resource, action)
        eventually(lambda n=expected: len(running(manager, resource)) == n
                   and len(tasks(manager, resource)) == n, within=90)
        health = api.get(f"/resources/{resource}/health", params={"mode": "live"})
        assert health["runtime"]["lifecycle"] == lifecycle, health
    assert not before & {t["ID"] for t in running(manager, resource)}  # all replaced
    assert api.request("DELETE", f"/resources/{resource}",
                       {"confirmation": {"resourceSlug": "web"}}).status_code < 300
    eventually(lambda: manager.services.list() == [], within=60)


def answer(address: str, host: str) -> str:
    """The body a node's edge answers for `host`."""
    return str(httpx.get(f"http://{address}/", headers={"Host": host}, timeout=5).text)


def control(api: Api, resource: str, action: str) -> None:
    """A runtime control of the resource, done."""
    work = api.post(f"/resources/{resource}/runtime/{action}", {})["runtimeControlAttemptId"]
    eventually(lambda: api.get(f"/operator-work/{work}")["item"]["status"] == "succeeded",
               within=90)


def test_a_control_plane_killed_mid_release_ends_it_as_the_service_really_is(swarm, tmp_path):
    """SIGKILL while Swarm replaces the tasks: the next process reads the service's spec (it
    names the release) and waits for Swarm's verdict instead of asking again; one service."""
    port = free_port()
    proc = serve(tmp_path, port)
    try:
        api = first_admin(port)
        ids = replicated_app(api, register_swarm(api, swarm))
        deployed(api, ids, timeout=180)
        set_image(api, ids["resource"], "lbtest/hello:v2")
        release = deploy(api, ids)
        eventually(lambda: api.get(f"/deployments/{release}")["deployment"]["status"]
                   == "running", within=60)  # the service's update asked for, or about to be
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc = serve(tmp_path, port)
        api = first_admin(port)
        done = wait(api, release, timeout=180)
        assert done["status"] == "succeeded", done
        service = swarm["manager"].services.get(done["containerName"])
        assert service.attrs["Spec"]["Labels"]["launchbay.deployment"] == release
        assert [s.name for s in swarm["manager"].services.list()] == [done["containerName"]]
        image_v2 = swarm["manager"].images.get("lbtest/hello:v2").id
        up = running(swarm["manager"], ids["resource"])
        assert len(up) == 2 and {t["Spec"]["ContainerSpec"]["Image"] for t in up} == {image_v2}
        work = api.get(f"/deployments/{release}/logs")["logs"]
        assert any("resuming after an interrupted attempt" in e["message"] for e in work)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)


def test_a_node_presenting_another_host_key_gets_no_image_until_pinned_again(swarm, api: Api):
    server = register_swarm(api, swarm)
    ids = replicated_app(api, server)
    deployed(api, ids, timeout=180)
    fixture("restart-sshd", swarm["name"], "--server", "b", "--new-host-key")
    set_image(api, ids["resource"], "lbtest/hello:v2")
    refused = wait(api, deploy(api, ids), timeout=120)
    assert refused["status"] == "failed" and refused["errorCode"] == "image-unavailable-on-node"
    assert swarm["servers"][1]["address"] in refused["errorMessage"]
    assert "host key" in refused["errorMessage"]
    with pytest.raises(docker.errors.ImageNotFound):  # nothing was sent there
        swarm["worker"].images.get(docker.from_env().images.get("lbtest/hello:v2").id)

    # An admin who checked the keys pins them again (the manager's is unchanged).
    manager_key = swarm["servers"][0]["host_key_fingerprint"]
    api.post(f"/servers/{server}/host-key", {"hostKeyFingerprint": manager_key})
    v2 = deployed(api, ids, timeout=180)
    assert v2["status"] == "succeeded"
    assert len(running(swarm["manager"], ids["resource"])) == 2

    # Placement constraints apply from the next release: both replicas on the manager.
    api.post(f"/resources/{ids['resource']}/runtime-profile", {"runtimeProfile": {
        "replicas": 2, "placementConstraints": ["node.role==manager"]}})
    deployed(api, ids, timeout=180)
    manager_id = swarm["manager"].info()["Swarm"]["NodeID"]
    assert {t["NodeID"] for t in running(swarm["manager"], ids["resource"])} == {manager_id}


STACK = """services:
  web:
    build: ./web
    ports: ["8080"]
    depends_on: [api]
  api:
    image: lbtest/hello:v2
    command: httpd -f -p 5000 -h /www
"""
# Asks the stack's `api` service, by its name on the stack's network.
ASK_API = """#!/bin/sh
echo "Content-Type: text/plain"
echo ""
printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 api 5000 | tail -n 1
"""


def test_a_compose_stack_is_services_that_find_each_other_by_name(swarm, api: Api, tmp_path):
    server = register_swarm(api, swarm)
    api.post(f"/servers/{server}/edge-proxy/bootstrap", {})
    source = tmp_path / "stack"
    repo(source, {"compose.yaml": STACK,
                  "web/Dockerfile": "FROM lbtest/busybox:v1\nCOPY www /www\n"
                                    'CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]\n',
                  "web/www/index.html": "stack web\n", "web/www/cgi-bin/api": ASK_API})
    (source / "web/www/cgi-bin/api").chmod(0o755)
    repo(source, {}, message="executable")
    project = api.post("/projects", {"name": "stack"})["id"]
    env = api.post("/environments", {"projectId": project, "name": "production"})["id"]
    ids = {"project": project, "env": env, "resource": api.post("/resources", {
        "projectId": project, "environmentId": env, "name": "web", "serverId": server,
        "source": {"kind": "git", "locator": str(source), "gitRef": "main"},
        "runtimeProfile": {"replicas": 2}})["id"]}
    api.post(f"/resources/{ids['resource']}/health-policy", {"healthCheck": FAST})
    first = deployed(api, ids, timeout=300)
    web = first["containerName"]
    assert sorted(s.name for s in swarm["manager"].services.list()) == [web, f"{web}-api"]
    host = host_of(api, ids["resource"])
    for address in (s["address"] for s in swarm["servers"]):
        assert eventually(lambda a=address: answer(a, host) == "stack web\n", within=60)
        assert httpx.get(f"http://{address}/cgi-bin/api", headers={"Host": host},
                         timeout=10).text == "hello v2\n"  # web reaches api by its name
    second = deployed(api, ids, timeout=300)
    assert second["containerName"] == web
    assert sorted(s.name for s in swarm["manager"].services.list()) == [web, f"{web}-api"]
    api_service = swarm["manager"].services.get(f"{web}-api")
    assert api_service.attrs["Spec"]["Labels"]["launchbay.deployment"] == second["id"]
    lines = api.get(f"/resources/{ids['resource']}/runtime-logs",
                    params={"serviceName": "api", "tailLines": 20})["logs"]
    assert all(line["serviceName"] == "api" for line in lines)

    # A release whose `api` cannot run: Swarm rolls that service back, the release fails
    # naming it, and the stack as it was keeps answering.
    repo(source, {"compose.yaml": STACK.replace("httpd -f -p 5000 -h /www",
                                                "sh -c 'echo cannot start >&2; exit 3'")})
    failed = wait(api, deploy(api, ids), timeout=300)
    assert (failed["status"], failed["errorCode"]) == ("failed", "service-failed"), failed
    assert "service api" in failed["errorMessage"]
    assert swarm["manager"].services.get(f"{web}-api").attrs["Spec"]["Labels"][
        "launchbay.deployment"] == second["id"]
    address = swarm["servers"][1]["address"]
    assert eventually(lambda: httpx.get(f"http://{address}/cgi-bin/api", headers={"Host": host},
                                        timeout=10).text == "hello v2\n", within=60)
