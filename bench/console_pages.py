"""Console pages: the server time (its `Server-Timing` header) of every console page with 200
resources and 2,000 deployments in the store, against the baseline of the same run: the
native API's JSON answer for the same data (`/api/resources`, `/api/deployments`...).

The store is filled through the API (projects, environments, resources, one deployment), then
the deployments are multiplied in the store directly: no engine runs, only reads are measured.

Last line: `console_pages: max_ms=... p50_ms=... api_p50_ms=...` (target: max_ms < 100).
"""

from __future__ import annotations

import os
import re
import statistics
import tempfile
from datetime import timedelta
from pathlib import Path

import httpx
from harness import launchbay
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from launchbay.http.common import SESSION_COOKIE
from launchbay.store.models import Deployment, new_id, utcnow

RESOURCES = 200
DEPLOYMENTS = 2000
ROUNDS = int(os.environ.get("BENCH_N", "10"))


def server_ms(response: httpx.Response) -> float:
    assert response.status_code == 200, (response.url, response.status_code)
    return float(re.search(r"app;dur=([\d.]+)", response.headers["server-timing"]).group(1))


def main() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="lb-bench-console-"))
    with launchbay(workers="0", edge_enabled="false", data_dir=str(data_dir)) as lb:
        api = lb.api
        project = api.post("/projects", json={"name": "Shop"}).json()["id"]
        envs = [api.post("/environments", json={"projectId": project, "name": name}).json()["id"]
                for name in ("production", "staging")]
        resources = [api.post("/resources", json={
            "projectId": project, "environmentId": envs[i % 2], "name": f"app-{i:03}",
            "source": {"kind": "docker-image", "imageName": "lbtest/hello", "imageTag": "v1"},
            "networkProfile": {"internalPort": 8080}}).json()["id"] for i in range(RESOURCES)]
        first = api.post("/deployments", json={"projectId": project, "environmentId": envs[0],
                                                "resourceId": resources[0]}).json()["id"]
        with Session(create_engine(f"sqlite:///{data_dir / 'launchbay.db'}")) as db:
            model = db.scalar(select(Deployment).where(Deployment.id == first))
            now = utcnow()
            for n in range(DEPLOYMENTS - 1):
                r = resources[n % RESOURCES]
                at = now - timedelta(minutes=DEPLOYMENTS - n)
                db.add(Deployment(
                    id=new_id("dep"), organization_id=model.organization_id,
                    project_id=project, environment_id=envs[resources.index(r) % 2],
                    resource_id=r, server_id=model.server_id, status="succeeded",
                    trigger_kind="create", triggered_by=model.triggered_by, plan=model.plan,
                    environment_snapshot=model.environment_snapshot, created_at=at,
                    started_at=at, finished_at=at + timedelta(seconds=2)))
            db.commit()
        assert api.get("/deployments/count").json()["count"] == DEPLOYMENTS

        site = str(api.base_url).rstrip("/").removesuffix("/api")
        console = httpx.Client(base_url=site, timeout=30,
                               cookies={SESSION_COOKIE: api.headers["Authorization"][7:]})
        pages = ["/projects", f"/projects/{project}", f"/resources/{resources[0]}",
                 f"/resources/{resources[-1]}/logs", f"/deployments/{first}",
                 f"/deployments/{first}/status", "/servers", "/work", "/members", "/tokens",
                 "/instances", "/login"]
        baseline = ["/projects", f"/resources?projectId={project}&limit=500",
                    f"/deployments?resourceId={resources[0]}&limit=50", "/operator-work"]
        times: dict[str, list[float]] = {page: [] for page in pages}
        api_times: list[float] = []
        for page in pages:  # warm every path once
            server_ms(console.get(page))
        for _ in range(ROUNDS):
            for page in pages:
                times[page].append(server_ms(console.get(page)))
            for path in baseline:
                response = api.get(path)
                assert response.status_code == 200
                api_times.append(response.elapsed.total_seconds() * 1000)
    for page, ms in times.items():
        print(f"{page:<48} p50 {statistics.median(ms):6.1f} ms  max {max(ms):6.1f} ms  "
              f"{[round(t) for t in ms]}")
    every = [t for ms in times.values() for t in ms]
    print(f"console_pages: max_ms={max(every):.1f} p50_ms={statistics.median(every):.1f} "
          f"api_p50_ms={statistics.median(api_times):.1f}")


if __name__ == "__main__":
    main()
