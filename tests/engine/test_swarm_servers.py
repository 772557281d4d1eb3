"""A Docker Swarm registered as a server (seed 004's `docker-swarm` provider): its manager is
reached over SSH and the connectivity test says whether the cluster is ready: Swarm active
with control available here, the managers' quorum, its nodes ready and taking tasks, the
overlay driver. Two namespace servers on one segment (`remote_server.py --swarm-pair`) make
the cluster."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from remote_support import fixture, form_swarm
from support import Api


@pytest.fixture
def pair() -> Any:
    name = f"lbw{uuid.uuid4().hex[:5]}"
    try:
        yield fixture("up", name, "--swarm-pair")
    finally:
        fixture("down", name)


def checks(tested: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in tested["checks"]}


def test_a_swarm_manager_is_registered_with_the_clusters_readiness(pair, api: Api):
    a, b = pair["servers"]
    credential = api.post("/credentials/ssh", {
        "name": "swarm", "username": "root",
        "privateKey": Path(pair["private_key_path"]).read_text()})["id"]
    draft = {"host": a["address"], "port": 22, "username": "root", "credentialId": credential,
             "providerKey": "docker-swarm"}
    inactive = api.post("/servers/connectivity-tests", {"server": draft})
    assert inactive["status"] == "degraded"
    assert checks(inactive)["swarm"]["failure"] == "swarm-inactive"

    manager, _ = form_swarm(pair)

    tested = api.post("/servers/connectivity-tests", {"server": draft})
    found = checks(tested)
    assert tested["status"] == "healthy", tested
    assert found["swarm"]["metadata"] == {"managers": "1", "nodes": "2"}
    assert found["nodes"]["metadata"] == {"ready": "2", "active": "2", "total": "2"}
    assert found["overlay"]["status"] == "passed" and found["ports"]["status"] == "skipped"
    # The worker's host key, as it presents it through the manager: pinned at registration.
    assert found["node-keys"]["metadata"] == {b["address"]: b["host_key_fingerprint"]}
    server = api.post("/servers", {**draft, "name": pair["name"],
                                   "hostKeyFingerprint": tested["hostKeyFingerprint"]})["id"]
    shown = api.get(f"/servers/{server}")["server"]
    assert (shown["providerKey"], shown["targetKind"]) == ("docker-swarm",
                                                           "orchestrator-cluster")

    on_worker = api.post("/servers/connectivity-tests", {"server": {**draft,
                                                                    "host": b["address"]}})
    assert checks(on_worker)["swarm"]["failure"] == "not-a-manager"

    drained = next(n for n in manager.nodes.list() if n.attrs["Spec"]["Role"] == "worker")
    spec = drained.attrs["Spec"]
    drained.update({**spec, "Availability": "drain"})
    degraded = api.post(f"/servers/{server}/connectivity-tests", {})
    assert degraded["status"] == "degraded"
    assert checks(degraded)["nodes"]["metadata"] == {"ready": "2", "active": "1", "total": "2"}
