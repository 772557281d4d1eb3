"""Deploy latency: seconds from `POST /api/deployments` to the first 200 from the new release,
against the floor measured in the same run (`docker run` of the same image, then polling until
it answers 200), the two alternating so that both see the same machine; and the control
plane's resident memory when idle.

Last line: `deploy_latency: median_s=... floor_s=... ratio=... idle_rss_mb=...
concurrent50_s=...` (targets: ratio <= 1.5, idle_rss_mb < 80, which the libraries alone
nearly fill: docs/decisions.md).
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import docker
import httpx
from harness import launchbay

import images  # the tests' locally built images (harness puts them on the path)

N = int(os.environ.get("BENCH_N", "10"))
IMAGE = "lbtest/hello:v1"
PROBE = httpx.Client(trust_env=False, timeout=1)


def first_200(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if PROBE.get(url).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.005)
    raise TimeoutError(url)


def floor_once(client: docker.DockerClient) -> float:
    """`docker run` of the image with its port on loopback, until it answers 200."""
    start = time.monotonic()
    container = client.containers.run(IMAGE, detach=True, init=True,
                                      ports={"8080/tcp": ("127.0.0.1", None)})
    container.reload()
    port = container.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"]
    first_200(f"http://127.0.0.1:{port}/")
    elapsed = time.monotonic() - start
    container.remove(force=True)
    return elapsed


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    images.ensure(IMAGE)
    client = docker.from_env()
    floor_times, deploy_times = [], []
    # The engine alone: the edge proxy has its own benchmark.
    with launchbay(edge_enabled="false") as lb:
        name, tag = IMAGE.split(":")
        app = lb.create_app("web", source={"kind": "docker-image", "imageName": name,
                                           "imageTag": tag},
                            networkProfile={"internalPort": 8080})
        floor_once(client)  # warm both paths once, then alternate
        for _ in range(N):
            floor_times.append(floor_once(client))
            start = time.monotonic()
            deployment = lb.deploy(app)
            while True:  # where the new release will answer, as soon as it is started
                shown = lb.api.get(f"/deployments/{deployment}").json()["deployment"]
                if shown["hostPort"] or shown["status"] in ("failed", "canceled"):
                    break
                time.sleep(0.005)  # as often as the floor polls its port
            first_200(f"http://127.0.0.1:{shown['hostPort']}/")
            deploy_times.append(time.monotonic() - start)
            lb.succeeded(deployment)
        time.sleep(3)
        idle = rss_mb(lb.pid)
        concurrent = fifty_at_once(lb, name, tag)
    median, floor_median = statistics.median(deploy_times), statistics.median(floor_times)
    print(f"floor runs: {', '.join(f'{t:.3f}' for t in floor_times)}")
    print(f"deploy runs: {', '.join(f'{t:.3f}' for t in deploy_times)}")
    print(f"50 first deploys into one new environment at once: {concurrent:.1f} s "
          f"(one after another: about {50 * median:.1f} s)")
    print(f"deploy_latency: median_s={median:.3f} floor_s={floor_median:.3f} "
          f"ratio={median / floor_median:.2f} idle_rss_mb={idle:.1f} "
          f"concurrent50_s={concurrent:.1f}")


def fifty_at_once(lb, name: str, tag: str) -> float:
    """Seconds from asking for 50 first deploys into one new environment to all serving."""
    project = lb.api.post("/projects", json={"name": "burst"}).json()["id"]
    env = lb.api.post("/environments", json={"projectId": project,
                                              "name": "production"}).json()["id"]
    apps = [{"projectId": project, "environmentId": env, "resourceId": lb.api.post(
        "/resources", json={"projectId": project, "environmentId": env, "name": f"app-{n}",
                            "source": {"kind": "docker-image", "imageName": name,
                                       "imageTag": tag},
                            "networkProfile": {"internalPort": 8080}}).json()["id"]}
            for n in range(50)]
    start = time.monotonic()
    deployments = [lb.deploy(app) for app in apps]
    for deployment in deployments:
        lb.succeeded(deployment)
    return time.monotonic() - start


if __name__ == "__main__":
    main()
