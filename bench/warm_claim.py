"""Warm claim: milliseconds of `GET /run/:env` on the Dploy face when it claims a member of the
template's warm pool (the answer is a Healthy instance), against a cold create of the same
image in the same run (from `GET /run/:env` until its status is Healthy). The two alternate so
that both see the same machine; each instance is deleted after it is measured, and the pool
refills in the background before the next warm claim.

Last line: `warm_claim: warm_p50_ms=... cold_p50_ms=... ratio=...` (target: warm_p50_ms < 150).
"""

from __future__ import annotations

import os
import statistics
import time

import httpx
from harness import launchbay

import images  # the tests' locally built images (harness puts them on the path)

N = int(os.environ.get("BENCH_N", "10"))
IMAGE = "lbtest/hello:v1"
BLUEPRINT = {"image": IMAGE, "port": 8080}


def wait(check, timeout: float = 120, every: float = 0.01):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(every)
    return result


def main() -> None:
    images.ensure(IMAGE)
    # The engine alone (the edge proxy has its own benchmark); pools topped up every 0.2 s.
    with launchbay(edge_enabled="false", instance_pool_seconds="0.2") as lb:
        api = lb.api
        api.post("/templates", json={"name": "warm", "blueprint": BLUEPRINT, "poolSize": 2})
        api.post("/templates", json={"name": "cold", "blueprint": BLUEPRINT})
        face = httpx.Client(base_url=str(api.base_url).replace("/api", "/compat/dploy"),
                            headers={"Authorization": api.headers["Authorization"]},
                            timeout=30)

        def pool_ready() -> bool:
            return api.post("/instance-pools/warm/fill").json()["ready"] >= 1

        def healthy(env: str) -> bool:
            return face.get(f"/run/{env}/status").json()["status"] == "Healthy"

        warm, cold = [], []
        for _ in range(N):
            wait(pool_ready, every=0.1)
            start = time.monotonic()
            claimed = face.get("/run/warm")
            warm.append((time.monotonic() - start) * 1000)
            assert claimed.status_code == 200 and claimed.json()["status"] == "Healthy", \
                claimed.text
            assert face.delete("/run/warm").status_code == 204

            start = time.monotonic()
            assert face.get("/run/cold").status_code == 200
            wait(lambda: healthy("cold"))
            cold.append((time.monotonic() - start) * 1000)
            assert face.delete("/run/cold").status_code == 204
    print(f"warm claims ms: {', '.join(f'{t:.1f}' for t in warm)}")
    print(f"cold creates ms: {', '.join(f'{t:.0f}' for t in cold)}")
    warm_p50, cold_p50 = statistics.median(warm), statistics.median(cold)
    print(f"warm_claim: warm_p50_ms={warm_p50:.1f} cold_p50_ms={cold_p50:.0f} "
          f"ratio={warm_p50 / cold_p50:.3f}")


if __name__ == "__main__":
    main()
