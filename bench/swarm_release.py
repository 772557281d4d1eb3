"""Release latency on a two-node Docker Swarm against single-server Docker, in the same run: an
app of 2 replicas on a swarm (`../shared/fixtures/remote_server.py --swarm-pair`, its manager
registered over SSH) and one on the control plane's own engine, redeployed alternately between
two images, each timed from `POST /api/deployments` to the deployment succeeded (for the swarm:
the update `completed` and every replica of the new release running and healthy). Meanwhile a
client on the swarm's overlay network sends bounded constant traffic to the app's tasks by
their DNS name; every answer that is not a 200 is a failed request.

Last line: `swarm_release: docker_s=... swarm_s=... ratio=... failed_requests=...`.
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from pathlib import Path

from harness import launchbay

import images  # the tests' locally built images (harness puts them on the path)
from remote_support import failed_requests, fixture, form_swarm, overlay_traffic

N = int(os.environ.get("BENCH_N", "4"))
IMAGES = ("lbtest/hello:v1", "lbtest/hello:v2")
FAST = {"intervalSeconds": 1, "timeoutSeconds": 1, "retries": 2, "startPeriodSeconds": 2}



def timed(lb, app: dict[str, str], image: str) -> float:
    name, tag = image.split(":")
    lb.api.post(f"/resources/{app['resourceId']}/source", json={
        "source": {"kind": "docker-image", "imageName": name, "imageTag": tag}})
    start = time.monotonic()
    lb.succeeded(lb.deploy(app))
    return time.monotonic() - start


def main() -> None:
    for image in IMAGES:
        images.ensure(image)
    name = f"lbq{uuid.uuid4().hex[:5]}"
    pair = fixture("up", name, "--swarm-pair")  # images are copied there by launchbay
    a = pair["servers"][0]
    manager, _ = form_swarm(pair)
    client = None
    try:
        with launchbay(edge_enabled="false",
                       server_allowed_networks='["10.251.0.0/16"]') as lb:
            credential = lb.api.post("/credentials/ssh", json={
                "name": "bench", "username": "root",
                "privateKey": Path(pair["private_key_path"]).read_text()}).json()["id"]
            server = lb.api.post("/servers", json={
                "host": a["address"], "port": 22, "username": "root",
                "credentialId": credential, "providerKey": "docker-swarm", "name": name,
                "hostKeyFingerprint": a["host_key_fingerprint"]}).json()["id"]
            image, tag = IMAGES[0].split(":")
            source = {"kind": "docker-image", "imageName": image, "imageTag": tag}
            local = lb.create_app("docker", source=source, networkProfile={"internalPort": 8080})
            swarm = lb.create_app("swarm", source=source, serverId=server,
                                  networkProfile={"internalPort": 8080},
                                  runtimeProfile={"replicas": 2})
            for app in (local, swarm):
                lb.api.post(f"/resources/{app['resourceId']}/health-policy",
                            json={"healthCheck": FAST})
            timed(lb, swarm, IMAGES[0])  # the service made
            timed(lb, local, IMAGES[0])
            client = manager.containers.run(
                IMAGES[0], overlay_traffic("swarm", most=4000), detach=True,
                network=f"lb-{swarm['environmentId']}")
            docker_times, swarm_times = [], []
            for n in range(N):
                image = IMAGES[(n + 1) % 2]
                docker_times.append(timed(lb, local, image))
                swarm_times.append(timed(lb, swarm, image))
            client.kill()
            answers = client.logs().decode(errors="replace").splitlines()
    finally:
        if client is not None:
            client.remove(force=True)
        fixture("down", name)
    failed = len(failed_requests(answers))
    docker_s, swarm_s = statistics.median(docker_times), statistics.median(swarm_times)
    print(f"docker runs: {', '.join(f'{t:.3f}' for t in docker_times)}")
    print(f"swarm runs: {', '.join(f'{t:.3f}' for t in swarm_times)}")
    print(f"requests on the overlay during the swarm releases: {len(answers)}")
    print(f"swarm_release: docker_s={docker_s:.3f} swarm_s={swarm_s:.3f} "
          f"ratio={swarm_s / docker_s:.2f} failed_requests={failed}")


if __name__ == "__main__":
    main()
