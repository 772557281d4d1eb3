"""Deploy latency to a server reached over SSH against the local engine, in the same run: the
same image deployed alternately to an app on the control plane's engine and to one on a
namespace server (`../shared/fixtures/remote_server.py`: its own sshd and Docker engine),
each timed from `POST /api/deployments` to the deployment succeeded (health verified, the
remote one through the SSH tunnel). The first remote deploy also copies the image (`docker
save | docker load`); it is reported apart.

Last line: `remote_deploy: local_s=... remote_s=... ratio=... first_copy_s=...`.
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from pathlib import Path

from harness import launchbay

import images  # the tests' locally built images (harness puts them on the path)
from remote_support import fixture

N = int(os.environ.get("BENCH_N", "8"))
IMAGE = "lbtest/hello:v1"


def timed(lb, app: dict[str, str]) -> float:
    start = time.monotonic()
    lb.succeeded(lb.deploy(app))
    return time.monotonic() - start


def main() -> None:
    images.ensure(IMAGE)
    name = f"lbb{uuid.uuid4().hex[:5]}"
    remote = fixture("up", name)
    try:
        with launchbay(edge_enabled="false",
                       server_allowed_networks='["10.251.0.0/16"]') as lb:
            credential = lb.api.post("/credentials/ssh", json={
                "name": "bench", "username": "root",
                "privateKey": Path(remote["private_key_path"]).read_text()}).json()["id"]
            draft = {"host": remote["address"], "port": remote["ssh_port"],
                     "username": "root", "credentialId": credential}
            server = lb.api.post("/servers", json={
                **draft, "name": name,
                "hostKeyFingerprint": remote["host_key_fingerprint"]}).json()["id"]
            image, tag = IMAGE.split(":")
            source = {"kind": "docker-image", "imageName": image, "imageTag": tag}
            local = lb.create_app("local", source=source,
                                  networkProfile={"internalPort": 8080})
            there = lb.create_app("remote", source=source, serverId=server,
                                  networkProfile={"internalPort": 8080})
            first_copy = timed(lb, there)
            timed(lb, local)  # both paths warm
            local_times, remote_times = [], []
            for _ in range(N):
                local_times.append(timed(lb, local))
                remote_times.append(timed(lb, there))
    finally:
        fixture("down", name)
    local_s, remote_s = statistics.median(local_times), statistics.median(remote_times)
    print(f"local runs: {', '.join(f'{t:.3f}' for t in local_times)}")
    print(f"remote runs: {', '.join(f'{t:.3f}' for t in remote_times)}")
    print(f"remote_deploy: local_s={local_s:.3f} remote_s={remote_s:.3f} "
          f"ratio={remote_s / local_s:.2f} first_copy_s={first_copy:.3f}")


if __name__ == "__main__":
    main()
