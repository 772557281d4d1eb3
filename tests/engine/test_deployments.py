"""The deploy engine on the real Docker engine: releases, health gates, rollback, cancel,
variables, volumes, runtime controls and logs."""

from __future__ import annotations

import json
import time

import docker
import httpx
import pytest

from docker_support import (
    body,
    containers,
    deploy,
    deployed,
    set_image,
    tags_of,
    wait,
)
from support import add_member, make_app


def assert_only_release(resource: str, deployment: str, within: float = 15) -> None:
    """Eventually the resource has exactly one container: `deployment`'s (old releases are
    retired after the new one serves)."""
    deadline = time.monotonic() + within
    while True:
        owners = [c.labels["launchbay.deployment"]
                  for c in containers(**{"launchbay.resource": resource})]
        if owners == [deployment]:
            return
        assert time.monotonic() < deadline, owners
        time.sleep(0.1)


FAST_FAIL = {"intervalSeconds": 1, "timeoutSeconds": 1, "retries": 2, "startPeriodSeconds": 0,
             "http": {"path": "/missing"}}


@pytest.mark.both_stores
def test_deploy_redeploy_and_zero_leftovers(api):
    ids = make_app(api, "lbtest/hello:v1")
    first = deployed(api, ids)
    assert first["url"] and body(first["url"]) == "hello v1\n"
    assert first["hostPort"] and first["containerName"].startswith("lb-web-")
    events = [e["event"]["eventType"] for e in api.get(
        f"/deployments/{first['id']}/events")["envelopes"] if e["kind"] == "event"]
    assert events[0] == "deployment-requested" and events[-1] == "deployment-succeeded"
    assert "deployment-switched" in events

    set_image(api, ids["resource"], "lbtest/hello:v2")
    second = deployed(api, ids)
    assert body(second["url"]) == "hello v2\n"
    assert_only_release(ids["resource"], second["id"])
    resource = api.get(f"/resources/{ids['resource']}",
                       params={"includeLatestDeployment": "true", "includeAccessSummary": "true"})
    assert resource["resource"]["currentDeploymentId"] == second["id"]
    assert resource["latestDeployment"]["status"] == "succeeded"
    assert resource["accessSummary"]["latestGeneratedAccessRoute"]["url"] == second["url"]
    assert api.get("/deployments/count", params={"resourceId": ids["resource"]})["count"] == 2
    work = api.get("/operator-work", params={"resourceId": ids["resource"]})["items"]
    assert {w["status"] for w in work} == {"succeeded"} and len(work) == 2


def test_failed_health_check_keeps_the_old_release_serving(api):
    ids = make_app(api, "lbtest/hello:v1")
    good = deployed(api, ids)
    api.post(f"/resources/{ids['resource']}/health-policy", {"healthCheck": FAST_FAIL})
    set_image(api, ids["resource"], "lbtest/hello:v2")
    bad = wait(api, deploy(api, ids))
    assert bad["status"] == "failed" and bad["errorCode"] == "health-check-failed"
    assert "HTTP 404" in bad["errorMessage"]
    assert body(good["url"]) == "hello v1\n"  # untouched, same port
    assert_only_release(ids["resource"], good["id"])
    logs = [entry["message"] for entry in api.get(f"/deployments/{bad['id']}/logs")["logs"]]
    assert any("previous release keeps serving" in m for m in logs)
    shown = api.get(f"/deployments/{bad['id']}")
    assert shown["latestFailure"]["level"] == "error"
    assert "retry" in shown["nextActions"]


def test_a_crashing_release_fails_with_its_own_error_output(api):
    ids = make_app(api, "lbtest/crash:v1")
    failed = wait(api, deploy(api, ids))
    assert failed["status"] == "failed" and failed["errorCode"] == "container-exited"
    assert "code 3" in failed["errorMessage"]
    logs = api.get(f"/deployments/{failed['id']}/logs")["logs"]
    assert any(e["source"] == "runtime" and "fatal: cannot open config" in e["message"]
               for e in logs)
    # Its first release: nothing keeps serving, and the log does not pretend otherwise.
    assert any("nothing was deployed before" in e["message"] for e in logs)
    assert not any("keeps serving" in e["message"] for e in logs)
    assert containers(**{"launchbay.resource": ids["resource"]}) == []


def test_rollback_serves_the_earlier_image_again(api):
    ids = make_app(api, "lbtest/hello:v1")
    v1 = deployed(api, ids)
    set_image(api, ids["resource"], "lbtest/hello:v2")
    v2 = deployed(api, ids)
    readiness = api.get(f"/deployments/{v2['id']}/recovery-readiness")
    assert readiness["rollbackReady"] is True
    assert readiness["rollback"]["recommendedCandidateId"] == v1["id"]
    back = api.post(f"/deployments/{v2['id']}/rollback",
                    {"rollbackCandidateDeploymentId": v1["id"]})["id"]
    done = wait(api, back)
    assert done["status"] == "succeeded" and done["triggerKind"] == "rollback"
    assert done["rollbackOfDeploymentId"] == v2["id"]
    assert body(done["url"]) == "hello v1\n"
    assert api.get(f"/deployments/{v2['id']}")["deployment"]["status"] == "rolled-back"
    bogus = api.request("POST", f"/deployments/{v1['id']}/rollback",
                        {"rollbackCandidateDeploymentId": v2["id"]})
    assert bogus.status_code == 409  # v2 is not earlier than v1


def test_cancel_during_a_slow_start_leaves_nothing_behind(api):
    ids = make_app(api, "lbtest/hello:v1")
    v1 = deployed(api, ids)
    set_image(api, ids["resource"], "lbtest/slow:v1")
    slow = deploy(api, ids)
    wait(api, slow, {"running"})
    deadline = time.monotonic() + 20
    while not [c for c in containers(**{"launchbay.deployment": slow})]:
        assert time.monotonic() < deadline, "the slow release never started"
        time.sleep(0.1)
    wrong = api.request("POST", f"/deployments/{slow}/cancel", {"confirm": "nope"})
    assert wrong.status_code == 400
    asked = api.post(f"/deployments/{slow}/cancel", {"confirm": slow})
    assert asked["status"] == "cancel-requested"
    done = wait(api, slow, timeout=20)
    assert done["status"] == "canceled"
    assert containers(**{"launchbay.deployment": slow}) == []
    assert body(v1["url"]) == "hello v1\n"
    again = api.request("POST", f"/deployments/{slow}/cancel", {"confirm": slow})
    assert again.status_code == 409


@pytest.mark.both_stores
def test_cancel_before_pickup_and_retry(api):
    ids = make_app(api, "lbtest/crash:v1")
    failed = wait(api, deploy(api, ids))
    set_image(api, ids["resource"], "lbtest/hello:v1")
    retried = api.post(f"/deployments/{failed['id']}/retry")["id"]
    again = wait(api, retried)
    assert again["status"] == "failed"  # the frozen plan still has the crashing image
    assert again["sourceDeploymentId"] == failed["id"] and again["triggerKind"] == "retry"
    redeployed = wait(api, api.post(f"/resources/{ids['resource']}/redeploy")["id"])
    assert redeployed["status"] == "succeeded"  # the current configuration


def test_variables_and_secrets_reach_the_container_and_stay_masked(api):
    ids = make_app(api, "lbtest/env:v1")
    api.post(f"/environments/{ids['env']}/variables",
             {"key": "GREETING", "value": "from-environment"})
    api.post(f"/environments/{ids['env']}/variables", {"key": "LEVEL", "value": "env"})
    api.post(f"/resources/{ids['resource']}/variables", {"key": "LEVEL", "value": "resource"})
    api.post(f"/resources/{ids['resource']}/secrets", {"key": "API_KEY", "value": "s3cr3t-v4lue"})
    imported = api.post(f"/resources/{ids['resource']}/variables/import", {
        "content": "# comment\nexport FROM_FILE=\"a b\"\nDUP=1\nDUP=2\n"})
    assert imported["duplicateOverrides"][0]["key"] == "DUP"
    effective = {e["key"]: e for e in api.get(
        f"/resources/{ids['resource']}/effective-config")["effectiveEntries"]}
    assert effective["LEVEL"]["value"] == "resource" and effective["API_KEY"]["value"] == "****"
    d = deployed(api, ids)
    env = dict(line.split("=", 1) for line in body(d["url"]).splitlines() if "=" in line)
    assert env["GREETING"] == "from-environment" and env["LEVEL"] == "resource"
    assert env["API_KEY"] == "s3cr3t-v4lue" and env["FROM_FILE"] == "a b" and env["DUP"] == "2"
    assert env["PORT"] == "8080"
    snapshot = api.get(f"/deployments/{d['id']}")["deployment"]["environmentSnapshot"]
    assert {v["key"]: v["value"] for v in snapshot["variables"]}["API_KEY"] == "****"
    assert "s3cr3t-v4lue" not in json.dumps(api.get(f"/deployments/{d['id']}"))
    secrets = api.get(f"/resources/{ids['resource']}/secrets")["items"]
    assert [(s["key"], s["value"]) for s in secrets] == [("API_KEY", "****")]


def test_named_volume_survives_redeploys_and_resource_deletion(api):
    ids = make_app(api, "lbtest/hello:v1")
    volume = api.post("/storage-volumes", {"projectId": ids["project"],
                                           "environmentId": ids["env"], "name": "data"})["id"]
    api.post(f"/resources/{ids['resource']}/storage-attachments",
             {"storageVolumeId": volume, "destinationPath": "/data"})
    deployed(api, ids)
    docker_name = api.get(f"/storage-volumes/{volume}")["storageVolume"]["dockerName"]
    client = docker.from_env()
    (container,) = containers(**{"launchbay.resource": ids["resource"]})
    container.exec_run(["sh", "-c", "echo kept > /data/file"])
    second = deployed(api, ids)
    assert_only_release(ids["resource"], second["id"])
    (container,) = containers(**{"launchbay.resource": ids["resource"]})
    assert container.exec_run(["cat", "/data/file"]).output == b"kept\n"
    slug = api.get(f"/resources/{ids['resource']}")["resource"]["slug"]
    api.ok("DELETE", f"/resources/{ids['resource']}", {"confirmation": {"resourceSlug": slug}})
    deadline = time.monotonic() + 20
    while containers(**{"launchbay.resource": ids["resource"]}):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert client.volumes.get(docker_name)  # the data outlives the resource
    assert api.request("DELETE", f"/storage-volumes/{volume}").status_code == 200
    with pytest.raises(docker.errors.NotFound):
        client.volumes.get(docker_name)


def test_runtime_controls_and_logs(api):
    ids = make_app(api, "lbtest/hello:v1")
    d = deployed(api, ids)
    body(d["url"])
    body(d["url"])
    logs = api.get(f"/resources/{ids['resource']}/runtime-logs", params={"tailLines": 10})
    assert logs["deploymentId"] == d["id"]
    assert any("response:200" in line["message"] for line in logs["logs"])

    def control(action: str) -> None:
        work = api.request("POST", f"/resources/{ids['resource']}/runtime/{action}").json()
        assert work["status"] == "accepted"
        deadline = time.monotonic() + 20
        while api.get(f"/operator-work/{work['runtimeControlAttemptId']}")["item"]["status"] \
                != "succeeded":
            assert time.monotonic() < deadline
            time.sleep(0.1)

    control("stop")
    with pytest.raises(httpx.HTTPError):
        httpx.get(d["url"], timeout=2)
    control("start")
    url = api.get(f"/deployments/{d['id']}")["deployment"]["url"]  # a new loopback port
    deadline = time.monotonic() + 10
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline
        time.sleep(0.1)
    control("restart")
    assert body(api.get(f"/deployments/{d['id']}")["deployment"]["url"]) == "hello v1\n"


def test_plan_preview_has_no_side_effects(api):
    ids = make_app(api, "lbtest/hello:v1")
    server = api.server_id
    plan = api.get("/deployments/plan", params={
        "projectId": ids["project"], "environmentId": ids["env"], "resourceId": ids["resource"],
        "serverId": server})
    assert plan["readiness"]["ready"] is True
    assert plan["artifact"]["image"] == "lbtest/hello:v1"
    assert plan["health"]["path"] == "/" and plan["network"]["internalPort"] == 8080
    assert api.get("/deployments/count")["count"] == 0
    assert api.get("/operator-work")["items"] == []
    empty = api.post("/resources", {"projectId": ids["project"], "environmentId": ids["env"],
                                    "name": "empty"})["id"]
    blocked = api.get("/deployments/plan", params={
        "projectId": ids["project"], "environmentId": ids["env"], "resourceId": empty,
        "serverId": server})
    assert blocked["readiness"]["reasonCodes"] == ["resource-source-missing"]
    assert blocked["unsupportedReasons"][0]["fix"]
    refused = api.request("POST", "/deployments", {
        "projectId": ids["project"], "environmentId": ids["env"], "resourceId": empty})
    assert refused.status_code == 409 and refused.json()["code"] == "resource_source_missing"


def test_other_organizations_cannot_see_or_touch_deployments(api):
    ids = make_app(api, "lbtest/hello:v1")
    d = deployed(api, ids)
    beta = api.post("/organizations", {"name": "Beta"})["organizationId"]
    bob = add_member(api, beta, "bob@example.com", "admin")
    for method, path, payload in [
        ("GET", f"/resources/{ids['resource']}", None),
        ("GET", f"/deployments/{d['id']}", None),
        ("GET", f"/deployments/{d['id']}/logs", None),
        ("GET", f"/deployments/{d['id']}/events/stream", None),
        ("GET", f"/resources/{ids['resource']}/runtime-logs", None),
        ("POST", f"/deployments/{d['id']}/rollback", {}),
        ("POST", f"/resources/{ids['resource']}/runtime/stop", {}),
        ("POST", "/deployments", {"projectId": ids["project"], "environmentId": ids["env"],
                                  "resourceId": ids["resource"]}),
    ]:
        response = bob.request(method, path, payload)
        assert response.status_code == 404, (method, path, response.text)
    assert bob.get("/deployments")["items"] == [] and bob.get("/operator-work")["items"] == []
    viewer = add_member(api, api.org_id if hasattr(api, "org_id") else
                        api.get("/organizations/current-context")["currentOrganization"]
                        ["organizationId"], "viola@example.com", "viewer")
    assert viewer.request("POST", f"/resources/{ids['resource']}/redeploy").status_code == 403
    assert viewer.get(f"/deployments/{d['id']}")["deployment"]["status"] == "succeeded"


def test_containers_get_their_profile_labels_limits_and_loopback_port(api):
    ids = make_app(api, "lbtest/hello:v1")
    api.post(f"/resources/{ids['resource']}/runtime-profile", {"runtimeProfile": {
        "cpuLimit": 0.5, "memoryLimitMb": 64, "restartPolicy": "always",
        "startCommand": "httpd -f -p 8080 -h /www"}})
    d = deployed(api, ids)
    (container,) = containers(**{"launchbay.deployment": d["id"]})
    host = container.attrs["HostConfig"]
    assert host["NanoCpus"] == 500_000_000 and host["Memory"] == 64 * 1024 * 1024
    assert host["RestartPolicy"]["Name"] == "always" and host["Init"] is True
    bindings = container.attrs["NetworkSettings"]["Ports"]["8080/tcp"]
    assert {b["HostIp"] for b in bindings} == {"127.0.0.1"}
    assert container.attrs["Config"]["Cmd"] == ["httpd", "-f", "-p", "8080", "-h", "/www"]
    labels = container.labels
    assert labels["launchbay.resource"] == ids["resource"]
    assert labels["launchbay.environment"] == ids["env"]
    assert labels["launchbay.project"] == ids["project"]
    network = container.attrs["NetworkSettings"]["Networks"][f"lb-{ids['env']}"]
    assert "web" in network["Aliases"]
    capacity = api.get(f"/servers/{api.server_id}/capacity")
    assert capacity["cpu"]["logicalCores"] >= 1 and capacity["memory"]["total"] > 0
    assert [c["deploymentId"] for c in capacity["launchbayContainers"]] == [d["id"]]


def test_driver_is_idempotent_and_keeps_to_its_own_tags(api, cp):
    """Removing twice is fine (a release and the reconciler may race), and a resource's image
    tags never include another resource's tags on the same image."""
    import docker

    from launchbay.drivers.docker_engine import ContainerSpec
    from launchbay.engine import reconcile

    engine = cp.targets.of(api.server_id)
    engine.ensure_network("lb-driver-test", {"launchbay.server": api.server_id})
    info = engine.run(ContainerSpec(name="lb-driver-test", image="lbtest/hello:v1",
                                    labels={"launchbay.server": api.server_id},
                                    network="lb-driver-test"))
    engine.stop(info.id)
    engine.stop(info.id)
    engine.remove(info.id)
    engine.remove(info.id)
    engine.remove_network("lb-driver-test")
    image = docker.from_env().images.get("lbtest/hello:v1")
    image.tag("lb/res_aaaaaaaaaaaaaaaa", "one")
    image.tag("lb/res_bbbbbbbbbbbbbbbb", "two")
    try:
        assert tags_of(engine, "lb/res_aaaaaaaaaaaaaaaa") == ["lb/res_aaaaaaaaaaaaaaaa:one"]
        reconcile._prune_old_images(cp.sessions, cp.targets, api.server_id, keep=5)
        assert tags_of(engine, "lb/res_bbbbbbbbbbbbbbbb") == ["lb/res_bbbbbbbbbbbbbbbb:two"]
        assert docker.from_env().images.get("lbtest/hello:v1")  # never another repository's
    finally:
        for tag in ("lb/res_aaaaaaaaaaaaaaaa:one", "lb/res_bbbbbbbbbbbbbbbb:two"):
            engine.remove_image(tag)
