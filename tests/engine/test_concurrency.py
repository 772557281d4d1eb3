"""Many releases at once: concurrent first deploys into one new environment all get the same
network (Docker would accept two of one name, and every later use of it would fail)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import docker
import pytest

from launchbay.settings import Settings

from docker_support import wait


@pytest.fixture
def settings(tmp_path, database_url) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database_url, workers=8,
                    edge_enabled=False, shipped_templates=False, worker_poll_seconds=0.05,
                    work_lease_seconds=10, reconcile_seconds=30)


def test_fifty_concurrent_first_deploys_into_a_new_environment_all_succeed(api):
    project = api.post("/projects", {"name": "burst"})["id"]
    env = api.post("/environments", {"projectId": project, "name": "production"})["id"]
    apps = [api.post("/resources", {
        "projectId": project, "environmentId": env, "name": f"app-{n}",
        "source": {"kind": "docker-image", "imageName": "lbtest/hello", "imageTag": "v1"},
        "networkProfile": {"internalPort": 8080}})["id"] for n in range(50)]

    def deploy(resource: str) -> str:
        return api.post("/deployments", {"projectId": project, "environmentId": env,
                                         "resourceId": resource})["id"]

    with ThreadPoolExecutor(10) as pool:
        deployments = list(pool.map(deploy, apps))
    ended = [wait(api, d, timeout=180) for d in deployments]
    assert [d["status"] for d in ended] == ["succeeded"] * 50, [
        d["errorMessage"] for d in ended if d["status"] != "succeeded"][:3]
    named = [n for n in docker.from_env().networks.list(names=[f"lb-{env}"])
             if n.name == f"lb-{env}"]
    assert len(named) == 1


def test_duplicate_networks_left_by_an_earlier_race_heal(api, cp):
    client = docker.from_env()
    name = "lb-env_duplicatetest"
    labels = {"launchbay.managed": "true", "launchbay.server": api.server_id}
    made = [client.networks.create(name, driver="bridge", labels=labels) for _ in range(2)]
    try:
        kept = cp.targets.of(api.server_id).ensure_network(name, {})
        left = [n.id for n in client.networks.list(names=[name]) if n.name == name]
        assert left == [kept] and kept in {n.id for n in made}
    finally:
        for n in client.networks.list(names=[name]):
            n.remove()
