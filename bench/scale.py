"""Scale: one control plane with 10,000 resources and 20,000 deployments, on SQLite and on
PostgreSQL. One app is made and deployed through the API; the rest are copies of its rows
written through the store's own tables (the API would take an hour). Measured on each store:

- the lists a user pages through (each face's): p99 of the slowest, against the p99 of
  `GET /api/bootstrap/auth/status` (no store) as the baseline; and apart, the console's
  project and app pages (a page runs a dozen operations, so it is no list endpoint);
- one reconcile sweep and one health sweep, run in this process against the same store (the
  second health sweep: the first records every resource's first state);
- the control plane's CPU while idle (its periodic jobs run) over `IDLE_S` seconds;
- the health history one resource keeps per day when it flaps at every sweep (the worst
  case: the history is bounded, not sampled), measured in the store's own pages.

Last line: `scale: list_p99_ms=... reconcile_s=... health_sweep_s=... idle_cpu_pct=...
health_kb_per_resource_day=... console_p99_ms=...` (the worst of the two stores; targets:
< 25 ms, < 5 s, < 5 s, < 2 %, < 50 KB). A p99 is of `BENCH_REQUESTS` (300) requests: of 100,
it would be the second slowest, which one hiccup of a shared machine decides.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from harness import launchbay
from sqlalchemy import create_engine, insert, select, text

from launchbay.control_plane import ControlPlane
from launchbay.engine.health_monitor import HealthMonitor, hour_of
from launchbay.settings import Settings
from launchbay.store.models import Deployment, Environment, Project, Resource, utcnow

import images

RESOURCES = int(os.environ.get("BENCH_RESOURCES", "10000"))
PER_PROJECT = 100
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "300"))
IDLE_S = float(os.environ.get("BENCH_IDLE_S", "60"))
FLAPPING = 50  # resources whose day of flapping is measured
POSTGRES = os.environ.get("LAUNCHBAY_TEST_POSTGRES_URL",
                          "postgresql+psycopg://launchbay:launchbay@127.0.0.1:5432/postgres")
LISTS = ["/resources", "/deployments", "/projects", "/environments", "/operator-work",
         "/audit-events", "/domain-bindings", "/hosted-deployments", "/instances"]


def rows(db: Any, model: Any, **where: Any) -> list[dict[str, Any]]:
    query = select(model.__table__)
    for k, v in where.items():
        query = query.where(model.__table__.c[k] == v)
    return [dict(r._mapping) for r in db.execute(query)]


def populate(url: str, app: dict[str, str], count: int = RESOURCES) -> None:
    """Copies of the deployed app's project, environment, resource and deployment rows:
    `count` resources in projects of PER_PROJECT, two deployments each (the newer current,
    its container long gone)."""
    engine = create_engine(url)
    with engine.begin() as db:
        project = rows(db, Project, id=app["projectId"])[0]
        env = rows(db, Environment, id=app["environmentId"])[0]
        resource = rows(db, Resource, id=app["resourceId"])[0]
        deployment = rows(db, Deployment, resource_id=app["resourceId"])[0]
        start = utcnow() - timedelta(days=30)
        projects, envs, resources, deployments, current = [], [], [], [], []
        for p in range(max(1, count // PER_PROJECT)):
            pid, eid = f"prj_s{p:05d}{uuid.uuid4().hex[:8]}", f"env_s{p:05d}{uuid.uuid4().hex[:8]}"
            projects.append({**project, "id": pid, "name": f"scale-{p}", "slug": f"scale-{p}"})
            envs.append({**env, "id": eid, "project_id": pid})
            for n in range(min(count, PER_PROJECT)):
                rid = f"res_s{p:05d}{n:03d}{uuid.uuid4().hex[:6]}"
                resources.append({**resource, "id": rid, "project_id": pid, "environment_id": eid,
                                  "name": f"app-{n}", "slug": f"app-{n}",
                                  "current_deployment_id": None})
                for k in range(2):
                    did = f"dep_s{p:05d}{n:03d}{k}{uuid.uuid4().hex[:6]}"
                    when = start + timedelta(seconds=(p * PER_PROJECT + n) * 60 + k)
                    deployments.append({**deployment, "id": did, "resource_id": rid,
                                        "project_id": pid, "environment_id": eid,
                                        "container_id": uuid.uuid4().hex * 2, "host_port": None,
                                        "created_at": when, "started_at": when,
                                        "finished_at": when})
                current.append((rid, did))
        for model, batch in ((Project, projects), (Environment, envs), (Resource, resources),
                             (Deployment, deployments)):
            for at in range(0, len(batch), 2000):
                db.execute(insert(model.__table__), batch[at:at + 2000])
        table = Resource.__table__
        db.execute(table.update().where(table.c.id == text(":rid")).values(
            current_deployment_id=text(":did")), [{"rid": r, "did": d} for r, d in current])
    if not url.startswith("sqlite"):  # what autovacuum does within a minute of such a load
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as db:
            db.execute(text("ANALYZE"))
    engine.dispose()


MEDIANS: dict[str, float] = {}


def p99(api: Any, path: str, **params: Any) -> float:
    """The 99th percentile of REQUESTS requests, after five that warm the path up (its SQL
    compiled and cached); the median goes to MEDIANS."""
    for _ in range(5):
        api.get(path, params=params)
    times = []
    for _ in range(REQUESTS):
        start = time.perf_counter()
        answer = api.get(path, params=params)
        times.append((time.perf_counter() - start) * 1000)
        assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
    MEDIANS[path] = statistics.median(times)
    return statistics.quantiles(times, n=100)[98]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def deployed_app(lb: Any) -> dict[str, str]:
    """The one app made and deployed through the API: what the store's copies copy."""
    app = lb.create_app("web", source={"kind": "docker-image", "imageName": "lbtest/hello",
                                       "imageTag": "v1"}, networkProfile={"internalPort": 8080})
    lb.succeeded(lb.deploy(app))
    return app


def history_kb_per_day(url: str) -> float:
    """The store's bytes of health history (rows and indexes) per resource, for FLAPPING
    resources that flap at every 30 s sweep for a day, in a store of their own (nothing else
    writes to it meanwhile)."""
    with launchbay(database_url=url, edge_enabled="false") as lb:
        app = deployed_app(lb)
        good = lb.api.get(f"/resources/{app['resourceId']}/health",
                          params={"mode": "live"}).json()
    populate(url, app, FLAPPING)
    cp = ControlPlane(Settings(data_dir=Path(tempfile.mkdtemp(prefix="lb-scale-")),
                               database_url=url, workers=0, edge_enabled=False,
                               shipped_templates=False), migrate=False)
    try:
        with cp.sessions() as db:
            ids = list(db.scalars(select(Resource.id).where(
                Resource.current_deployment_id.is_not(None), Resource.id != app["resourceId"])))
        monitor = HealthMonitor(cp.sessions, cp.settings, cp.targets)
        before = stored_history(url)
        bad = {**good, "overall": "unhealthy",
               "runtime": {**good["runtime"], "health": "unhealthy", "message": "HTTP 500"}}
        day = hour_of(utcnow() - timedelta(days=3))
        for n in range(24 * 120):
            monitor.take([{**(bad if n % 2 else good), "resourceId": rid} for rid in ids],
                         day + timedelta(seconds=30 * n + 1))
        monitor.flush()
        return (stored_history(url) - before) / len(ids) / 1024
    finally:
        cp.close()


def stored_history(url: str) -> int:
    """Bytes of the health history's tables and indexes, as the store keeps them."""
    engine = create_engine(url, **({} if url.startswith("sqlite")
                                   else {"isolation_level": "AUTOCOMMIT"}))
    with engine.connect() as db:
        if url.startswith("sqlite"):
            found = db.scalar(text(
                "SELECT sum(pgsize) FROM dbstat WHERE name IN ('health_observations', "
                "'health_rollups') OR name LIKE 'ix_health%' "
                "OR name LIKE 'sqlite_autoindex_health%'"))
        else:
            db.execute(text("VACUUM ANALYZE health_observations"))
            found = db.scalar(text("SELECT pg_total_relation_size('health_observations') "
                                   "+ pg_total_relation_size('health_rollups')"))
    engine.dispose()
    return int(found or 0)


def first_sweep_done(url: str, at_least: int, within: float = 120) -> None:
    """Waits for the control plane's first health sweep (it records every resource's first
    state), so that the lists are timed against its steady state."""
    engine = create_engine(url)
    deadline = time.monotonic() + within
    with engine.connect() as db:
        while db.scalar(text("SELECT count(*) FROM health_observations")) < at_least:
            assert time.monotonic() < deadline, "the first health sweep never ended"
            time.sleep(1)
            db.rollback()
    engine.dispose()


def measure(url: str, small_url: str, store: str) -> dict[str, float]:
    kb = history_kb_per_day(small_url)
    with launchbay(database_url=url, edge_enabled="false") as lb:
        app = deployed_app(lb)
        started = time.monotonic()
        populate(url, app)
        print(f"[{store}] {RESOURCES} resources, {2 * RESOURCES} deployments written in "
              f"{time.monotonic() - started:.1f} s")
        first_sweep_done(url, RESOURCES)
        base = p99(lb.api, "/bootstrap/auth/status")
        lists = {path: p99(lb.api, path) for path in LISTS}
        console = httpx.Client(base_url=str(lb.api.base_url).rstrip("/").removesuffix("/api"),
                               headers=lb.api.headers, timeout=30)
        pages = {"console project page": p99(console, f"/projects/{app['projectId']}"),
                 "console app page": p99(console, f"/resources/{app['resourceId']}")}
        slowest = max(lists, key=lists.__getitem__)
        print(f"[{store}] list p99 ms: " + ", ".join(f"{k} {v:.1f}" for k, v in lists.items())
              + f" (baseline, no store: {base:.1f}); console p99 ms: "
              + ", ".join(f"{k} {v:.1f}" for k, v in pages.items()))
        print(f"[{store}] list median ms: " + ", ".join(
            f"{k} {v:.1f}" for k, v in MEDIANS.items()))

        cp = ControlPlane(Settings(data_dir=Path(tempfile.mkdtemp(prefix="lb-scale-")),
                                   database_url=url, workers=0, edge_enabled=False,
                                   shipped_templates=False), migrate=False)
        try:
            started = time.monotonic()
            cp.reconcile()
            reconcile_s = time.monotonic() - started
            started = time.monotonic()
            first = cp.health.sweep()
            first_s = time.monotonic() - started
            started = time.monotonic()
            cp.health.sweep()
            sweep_s = time.monotonic() - started
            print(f"[{store}] reconcile {reconcile_s:.2f} s; health sweep of {first} resources "
                  f"{sweep_s:.2f} s (the first, recording every state: {first_s:.2f} s)")
        finally:
            cp.close()
        time.sleep(5)  # the control plane's first sweeps at this size are done
        cpu, wall = cpu_seconds(lb.pid), time.monotonic()
        time.sleep(IDLE_S)
        idle = 100 * (cpu_seconds(lb.pid) - cpu) / (time.monotonic() - wall)
        print(f"[{store}] idle CPU {idle:.2f} % of a core over {IDLE_S:.0f} s; health history "
              f"of a resource flapping all day: {kb:.1f} KB")
    return {"list_p99_ms": lists[slowest], "reconcile_s": reconcile_s,
            "health_sweep_s": sweep_s, "idle_cpu_pct": idle, "health_kb_per_resource_day": kb,
            "console_p99_ms": max(pages.values()), "slowest": slowest}  # type: ignore[dict-item]


def main() -> None:
    images.ensure("lbtest/hello:v1")
    folder = Path(tempfile.mkdtemp(prefix="lb-scale-db-"))
    results = [measure(f"sqlite:///{folder / 'scale.db'}", f"sqlite:///{folder / 'small.db'}",
                       "sqlite")]
    names = [f"lb_bench_scale_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    server = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with server.connect() as db:
        for name in names:
            db.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        base = POSTGRES.rsplit("/", 1)[0]
        results.append(measure(f"{base}/{names[0]}", f"{base}/{names[1]}", "postgresql"))
    finally:
        with server.connect() as db:
            for name in names:
                db.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()
    keys = ["list_p99_ms", "reconcile_s", "health_sweep_s", "idle_cpu_pct",
            "health_kb_per_resource_day", "console_p99_ms"]
    worst = {k: max(r[k] for r in results) for k in keys}
    print("scale: " + " ".join(f"{k}={worst[k]:.{2 if k == 'reconcile_s' else 1}f}"
                               for k in keys))


if __name__ == "__main__":
    main()
