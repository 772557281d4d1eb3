"""Scheduled tasks: the lag from a fire's scheduled time to its container started (p50 and p99
over 30 fires of an `@every 2s` task, with the default scheduler settings), against the floor
measured in the same run (`docker run -d` of the same image until it is started); and the
control plane's idle CPU with 200 enabled tasks against its idle CPU with none.

Last line: `job_fire: lag_p50_ms=... lag_p99_ms=... idle_cpu_pct=... start_floor_ms=...
idle_cpu_pct_no_tasks=...`.
"""

from __future__ import annotations

import os
import statistics
import time
from datetime import datetime
from pathlib import Path

import docker
from harness import launchbay

import images  # the tests' locally built images (harness puts them on the path)

FIRES = int(os.environ.get("BENCH_FIRES", "30"))
IMAGE = "lbtest/hello:v1"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def idle_cpu(pid: int, seconds: float = 20) -> float:
    start, wall = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return 100 * (cpu_seconds(pid) - start) / (time.monotonic() - wall)


def stamp(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def start_floor(client: docker.DockerClient) -> float:
    """Seconds for `docker run -d` of the image, as the engine alone starts a job."""
    times = []
    for _ in range(10):
        began = time.monotonic()
        container = client.containers.run(IMAGE, ["true"], detach=True, init=True)
        times.append(time.monotonic() - began)
        container.remove(force=True)
    return statistics.median(times)


def main() -> None:
    images.ensure(IMAGE)
    floor = start_floor(docker.from_env())
    with launchbay(edge_enabled="false") as lb:
        name, tag = IMAGE.split(":")
        app = lb.create_app("web", source={"kind": "docker-image", "imageName": name,
                                           "imageTag": tag},
                            networkProfile={"internalPort": 8080})
        lb.succeeded(lb.deploy(app))
        time.sleep(3)
        quiet = idle_cpu(lb.pid)
        task = lb.api.post("/scheduled-tasks", json={
            "resourceId": app["resourceId"], "schedule": "@every 2s", "commandIntent": "true",
            "concurrencyPolicy": "allow"}).json()["task"]["taskId"]
        deadline = time.monotonic() + FIRES * 2 + 60
        while True:
            runs = [r for r in lb.api.get("/scheduled-task-runs", params={
                "taskId": task, "limit": 100}).json()["items"] if r["startedAt"]]
            if len(runs) >= FIRES or time.monotonic() > deadline:
                break
            time.sleep(1)
        lb.api.post(f"/scheduled-tasks/{task}", json={"status": "disabled"})
        lags = sorted(1000 * (stamp(r["startedAt"]) - stamp(r["scheduledFor"]))
                      for r in runs[:FIRES])
        for n in range(200):
            lb.api.post("/scheduled-tasks", json={
                "resourceId": app["resourceId"], "schedule": "0 3 * * *",
                "commandIntent": f"echo report {n}", "name": f"report-{n}"})
        time.sleep(5)
        busy = idle_cpu(lb.pid)
    p50 = statistics.median(lags)
    p99 = lags[min(len(lags) - 1, round(0.99 * (len(lags) - 1)))]
    print(f"lags (ms): {', '.join(f'{lag:.0f}' for lag in lags)}")
    print(f"job_fire: lag_p50_ms={p50:.0f} lag_p99_ms={p99:.0f} idle_cpu_pct={busy:.1f} "
          f"start_floor_ms={1000 * floor:.0f} idle_cpu_pct_no_tasks={quiet:.1f}")


if __name__ == "__main__":
    main()
