"""Proxy overhead: latency (p50, p99) and requests/s through the edge proxy (Caddy) against
straight to the container's port, for the same release in the same run.

Last line: `proxy_overhead: direct_p50_ms=... proxy_p50_ms=... added_p50_ms=... direct_rps=...
proxy_rps=...` (also printed: p99s). Traffic stays on loopback and is bounded in time.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import docker
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "engine")]
import images  # noqa: E402  (the tests' locally built images)

IMAGE = "lbtest/hello:v1"
SAMPLES = int(os.environ.get("BENCH_SAMPLES", "1000"))
LOAD_SECONDS, LOAD_THREADS = 5.0, 8


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def latencies(url: str, host: str | None) -> list[float]:
    headers = {"Host": host} if host else {}
    with httpx.Client(trust_env=False, headers=headers) as client:
        for _ in range(50):  # warm up connections
            client.get(url)
        times = []
        for _ in range(SAMPLES):
            start = time.perf_counter()
            assert client.get(url).status_code == 200
            times.append((time.perf_counter() - start) * 1000)
    return times


def throughput(url: str, host: str | None) -> float:
    headers = {"Host": host} if host else {}
    counts = [0] * LOAD_THREADS
    deadline = time.monotonic() + LOAD_SECONDS

    def worker(n: int) -> None:
        with httpx.Client(trust_env=False, headers=headers) as client:
            while time.monotonic() < deadline:
                if client.get(url).status_code == 200:
                    counts[n] += 1

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(LOAD_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / LOAD_SECONDS


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


def main() -> None:
    images.ensure(IMAGE)
    data, port, edge = tempfile.mkdtemp(prefix="lb-bench-"), free_port(), free_port()
    env = {**os.environ, "LAUNCHBAY_DATA_DIR": data, "LAUNCHBAY_LISTEN": f"127.0.0.1:{port}",
           "LAUNCHBAY_EDGE_BIND": "127.0.0.1", "LAUNCHBAY_EDGE_HTTP_PORT": str(edge),
           "LAUNCHBAY_EDGE_HTTPS_PORT": str(free_port()),
           "LAUNCHBAY_EDGE_ADMIN": f"127.0.0.1:{free_port()}"}
    env.pop("LAUNCHBAY_DATABASE_URL", None)
    exe = os.path.join(os.path.dirname(sys.executable), "launchbay")
    serve = subprocess.Popen([exe, "serve"], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    server_id = None
    try:
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}/api", timeout=30)
        deadline = time.monotonic() + 60
        while True:
            try:
                if api.get("/bootstrap/auth/status").status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        api.post("/bootstrap/auth/first-admin",
                 json={"email": "bench@example.com", "password": "bench-password"})
        api.headers["Authorization"] = "Bearer " + api.post("/auth/login", json={
            "email": "bench@example.com", "password": "bench-password"}).json()["token"]
        api.cookies.clear()
        server_id = api.get("/servers").json()["items"][0]["id"]
        project = api.post("/projects", json={"name": "bench"}).json()["id"]
        environment = api.post("/environments", json={"projectId": project,
                                                      "name": "production"}).json()["id"]
        name, tag = IMAGE.split(":")
        resource = api.post("/resources", json={
            "projectId": project, "environmentId": environment, "name": "web",
            "source": {"kind": "docker-image", "imageName": name, "imageTag": tag},
            "networkProfile": {"internalPort": 8080}}).json()["id"]
        deployment = api.post("/deployments", json={
            "projectId": project, "environmentId": environment, "resourceId": resource}).json()
        while (shown := api.get(f"/deployments/{deployment['id']}").json()["deployment"])[
                "status"] != "succeeded":
            assert shown["status"] not in ("failed", "canceled"), shown
            time.sleep(0.05)
        host = shown["url"].split("//", 1)[1].split(":", 1)[0]
        direct, proxied = f"http://127.0.0.1:{shown['hostPort']}/", f"http://127.0.0.1:{edge}/"
        while httpx.get(proxied, headers={"Host": host}).status_code != 200:
            time.sleep(0.05)
        direct_lat, proxy_lat = latencies(direct, None), latencies(proxied, host)
        direct_rps, proxy_rps = throughput(direct, None), throughput(proxied, host)
    finally:
        serve.terminate()
        serve.wait(20)
        if server_id:
            client = docker.from_env()
            for c in client.containers.list(all=True, filters={
                    "label": [f"launchbay.server={server_id}"]}):
                c.remove(force=True)
            for n in client.networks.list(filters={"label": [f"launchbay.server={server_id}"]}):
                n.remove()
    d50, x50 = statistics.median(direct_lat), statistics.median(proxy_lat)
    print(f"p99: direct_p99_ms={p(direct_lat, 99):.2f} proxy_p99_ms={p(proxy_lat, 99):.2f}")
    print(f"proxy_overhead: direct_p50_ms={d50:.2f} proxy_p50_ms={x50:.2f} "
          f"added_p50_ms={x50 - d50:.2f} direct_rps={direct_rps:.0f} proxy_rps={proxy_rps:.0f}")


if __name__ == "__main__":
    main()
