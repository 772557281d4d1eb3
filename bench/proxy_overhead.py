"""Proxy overhead: latency (p50, p99) and requests/s through the edge proxy (Caddy) against
straight to the container's port, for the same release in the same run.

Last line: `proxy_overhead: direct_p50_ms=... proxy_p50_ms=... added_p50_ms=... direct_rps=...
proxy_rps=...` (also printed: p99s). Traffic stays on loopback and is bounded in time.
"""

from __future__ import annotations

import os
import statistics
import threading
import time

import httpx
from harness import free_port, launchbay

import images  # the tests' locally built images (harness puts them on the path)

IMAGE = "lbtest/hello:v1"
SAMPLES = int(os.environ.get("BENCH_SAMPLES", "1000"))
LOAD_SECONDS, LOAD_THREADS = 5.0, 8


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


def main() -> None:
    images.ensure(IMAGE)
    edge = free_port()
    with launchbay(edge_bind="127.0.0.1", edge_http_port=str(edge),
                   edge_https_port=str(free_port()),
                   edge_admin=f"127.0.0.1:{free_port()}") as lb:
        name, tag = IMAGE.split(":")
        app = lb.create_app("web", source={"kind": "docker-image", "imageName": name,
                                           "imageTag": tag},
                            networkProfile={"internalPort": 8080})
        shown = lb.succeeded(lb.deploy(app))
        host = shown["url"].split("//", 1)[1].split(":", 1)[0]
        direct, proxied = f"http://127.0.0.1:{shown['hostPort']}/", f"http://127.0.0.1:{edge}/"
        while httpx.get(proxied, headers={"Host": host}).status_code != 200:
            time.sleep(0.05)
        direct_lat, proxy_lat = latencies(direct, None), latencies(proxied, host)
        direct_rps, proxy_rps = throughput(direct, None), throughput(proxied, host)
    d50, x50 = statistics.median(direct_lat), statistics.median(proxy_lat)
    p99 = [statistics.quantiles(values, n=100)[98] for values in (direct_lat, proxy_lat)]
    print(f"p99: direct_p99_ms={p99[0]:.2f} proxy_p99_ms={p99[1]:.2f}")
    print(f"proxy_overhead: direct_p50_ms={d50:.2f} proxy_p50_ms={x50:.2f} "
          f"added_p50_ms={x50 - d50:.2f} direct_rps={direct_rps:.0f} proxy_rps={proxy_rps:.0f}")


if __name__ == "__main__":
    main()
