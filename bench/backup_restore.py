"""Backup and restore of a 200 MB PostgreSQL database through launchbay, against the same
dump and restore run by hand (`pg_dump -Fc` piped to a file, `pg_restore` from it, inside
the database's container) in the same run, alternating so that both see the same machine.

launchbay's backup also hashes the stream and reads the archive whole to verify it; its
restore also checks the file's sha256, lists the archive, and first takes a safety backup of
what is there (all part of the figure: that is what a user waits for).

Last line: `backup_restore: backup_s=... restore_s=... floor_backup_s=... floor_restore_s=...`
(medians of `BENCH_N` runs each).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import docker
from harness import launchbay

import images  # the tests' locally built images (harness puts them on the path)

N = int(os.environ.get("BENCH_N", "3"))
MB = int(os.environ.get("BENCH_MB", "200"))


def until(api: Any, path: str, done: Any, timeout: float = 900) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        shown = api.get(path).json()
        if done(shown):
            return shown
        assert time.monotonic() < deadline, shown
        time.sleep(0.05)


def main() -> None:
    image = images.ensure_postgres()
    with launchbay(edge_enabled="false", database_images=json.dumps({"postgres": image})) as lb:
        app = lb.create_app("bench", source={"kind": "docker-image", "imageName": "lbtest/hello",
                                             "imageTag": "v1"})
        db_id = lb.api.post("/dependency-resources/provision", json={
            "kind": "postgres", "projectId": app["projectId"],
            "environmentId": app["environmentId"], "name": "bench"}).json()["id"]
        until(lb.api, f"/dependency-resources/{db_id}",
              lambda s: s["dependencyResource"]["lifecycleStatus"] == "ready")
        container = docker.from_env().containers.list(
            filters={"label": f"launchbay.database={db_id}"})[0]
        rows = MB * 1024 * 1024 // 111  # two md5 texts and a number a row, with overheads
        filled = container.exec_run(["psql", "-U", "app", "-d", "bench", "-qc",
                                     "CREATE TABLE filler AS SELECT g, md5(random()::text) || "
                                     f"md5(random()::text) AS a FROM generate_series(1, {rows}) g"])
        assert filled.exit_code == 0, filled.output
        size = container.exec_run(["psql", "-U", "app", "-d", "bench", "-tAc",
                                   "SELECT pg_database_size('bench')"]).output.decode().strip()
        print(f"database: {int(size) / 1e6:.0f} MB")
        backups, restores, floor_backups, floor_restores = [], [], [], []
        with tempfile.TemporaryDirectory() as folder:
            dump = Path(folder) / "by-hand.dump"
            for _ in range(N):
                start = time.monotonic()
                with dump.open("wb") as out:
                    subprocess.run(["docker", "exec", container.id, "pg_dump", "-Fc", "-U", "app",
                                    "-d", "bench"], stdout=out, check=True)
                floor_backups.append(time.monotonic() - start)
                start = time.monotonic()
                with dump.open("rb") as source:
                    subprocess.run(["docker", "exec", "-i", container.id, "pg_restore",
                                    "--clean", "--if-exists", "--single-transaction",
                                    "--exit-on-error", "-U", "app", "-d", "bench"],
                                   stdin=source, check=True)
                floor_restores.append(time.monotonic() - start)

                start = time.monotonic()
                backup = lb.api.post(f"/dependency-resources/{db_id}/backups", json={}).json()["id"]
                shown = until(lb.api, f"/dependency-resources/backups/{backup}",
                              lambda s: s["backup"]["status"] != "pending")["backup"]
                assert shown["status"] == "ready", shown
                backups.append(time.monotonic() - start)
                start = time.monotonic()
                lb.api.post(f"/dependency-resources/backups/{backup}/restore",
                            json={"acknowledgeDataOverwrite": True})
                shown = until(lb.api, f"/dependency-resources/backups/{backup}", lambda s: (
                    s["backup"]["latestRestoreAttempt"] or {}).get("status") in (
                    "succeeded", "failed"))["backup"]
                assert shown["latestRestoreAttempt"]["status"] == "succeeded", shown
                restores.append(time.monotonic() - start)
        lb.api.delete(f"/dependency-resources/{db_id}", params={"releaseBackups": "true"})
        until(lb.api, "/dependency-resources", lambda s: s["items"] == [], timeout=120)
    print(f"by hand: dump {', '.join(f'{t:.1f}' for t in floor_backups)} s, restore "
          f"{', '.join(f'{t:.1f}' for t in floor_restores)} s")
    print(f"launchbay: backup {', '.join(f'{t:.1f}' for t in backups)} s, restore "
          f"{', '.join(f'{t:.1f}' for t in restores)} s (with its safety backup)")
    print(f"backup_restore: backup_s={statistics.median(backups):.2f} "
          f"restore_s={statistics.median(restores):.2f} "
          f"floor_backup_s={statistics.median(floor_backups):.2f} "
          f"floor_restore_s={statistics.median(floor_restores):.2f}")


if __name__ == "__main__":
    main()
