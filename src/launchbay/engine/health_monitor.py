"""Health of a resource, observed: its container, its health check answered directly, and its
public route answered through the edge proxy. Observations are kept for the health history."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import delete, select
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from launchbay.engine.health import PROBE_AGENT, failure, probe
from launchbay.engine.plan import ReleasePlan
from launchbay.engine.routing import generated_host
from launchbay.engine.runtime import RuntimeFailure
from launchbay.engine.targets import Targets
from launchbay.schemas_time import iso
from launchbay.settings import Settings
from launchbay.store.models import (
    Deployment,
    HealthObservation,
    Resource,
    Server,
    new_id,
    utcnow,
)

log = logging.getLogger("launchbay.health")
KEEP = timedelta(days=7)
_edge = httpx.Client(trust_env=False, follow_redirects=False,
                     headers={"User-Agent": PROBE_AGENT})


def observe(db: DbSession, settings: Settings, targets: Targets, r: Resource) -> dict[str, Any]:
    """A `resources.health/v1` summary of the resource, observed now."""
    now = utcnow()
    latest = db.scalar(select(Deployment).where(Deployment.resource_id == r.id)
                       .order_by(Deployment.created_at.desc()).limit(1))
    current = db.get(Deployment, r.current_deployment_id) if r.current_deployment_id else None
    plan = ReleasePlan.model_validate(current.plan) if current else None
    runtime: dict[str, Any] = {"lifecycle": "not-deployed", "health": "unknown",
                               "observedAt": iso(now), "runtimeKind": "docker-container"}
    if current is not None and current.container_id:
        try:
            info = targets.of(current.server_id).inspect(current.container_id)
        except (RuntimeFailure, OSError) as exc:
            info, runtime["reasonCode"], runtime["message"] = None, "runtime-unreachable", str(exc)
        if info is None:
            runtime.update(lifecycle="missing", health="unhealthy")
        elif info.status != "running":
            runtime.update(lifecycle="stopped" if info.status == "exited" else info.status,
                           health="unhealthy", message=f"container {info.status}")
        else:
            runtime["lifecycle"] = "running"
            if plan and plan.health.enabled and current.host_port:
                ok, seen = probe(f"http://127.0.0.1:{current.host_port}{plan.health.path}",
                                 plan.health)
                runtime.update(health="healthy" if ok else "unhealthy", message=seen)
            else:
                runtime["health"] = "healthy"
    public = _public_access(db, settings, r, plan)
    server = db.get(Server, r.server_id)
    if runtime["lifecycle"] == "not-deployed":
        overall = "not-deployed"
    elif runtime["health"] != "healthy":
        overall = "unhealthy"
    elif public["status"] == "failed":
        overall = "degraded"
    else:
        overall = "healthy"
    return {
        "schemaVersion": "resources.health/v1", "resourceId": r.id, "generatedAt": iso(now),
        "observedAt": iso(now), "overall": overall,
        "latestDeployment": {"id": latest.id, "status": latest.status,
                             "createdAt": iso(latest.created_at),
                             "finishedAt": iso(latest.finished_at) if latest.finished_at
                             else None, "serverId": latest.server_id} if latest else None,
        "runtime": runtime,
        "healthPolicy": {"status": "configured" if r.health_policy else "default",
                         "enabled": plan.health.enabled if plan else True, "type": "http",
                         "path": plan.health.path if plan else "/",
                         "expectedStatusCode": plan.health.expected_status if plan else None,
                         "intervalSeconds": plan.health.interval_seconds if plan else None,
                         "timeoutSeconds": plan.health.timeout_seconds if plan else None,
                         "retries": plan.health.retries if plan else None,
                         "startPeriodSeconds": plan.health.start_period_seconds if plan
                         else None},
        "publicAccess": public,
        "proxy": {"kind": server.edge_proxy_kind if server else "none",
                  "status": server.edge_proxy_status if server else "unknown"},
    }


def _public_access(db: DbSession, settings: Settings, r: Resource,
                   plan: ReleasePlan | None) -> dict[str, Any]:
    """Asks the edge proxy for the resource's health path at its generated hostname."""
    host = generated_host(db, settings, r) if settings.edge_enabled else None
    if host is None:
        return {"status": "not-configured", "kind": "none"}
    if plan is None:
        return {"status": "not-ready", "kind": "generated-default-access",
                "reasonCode": "runtime_not_ready"}
    edge = settings.edge_bind or "127.0.0.1"
    url = f"http://{edge}:{settings.edge_http_port}{plan.health.path}"
    try:
        answer = _edge.get(url, headers={"Host": host}, timeout=plan.health.timeout_seconds)
    except httpx.HTTPError as exc:
        return {"status": "failed", "kind": "generated-default-access", "url": f"http://{host}/",
                "reasonCode": "edge_unreachable",
                "message": f"the edge proxy: {failure(exc, plan.health.timeout_seconds)}"}
    healthy = 200 <= answer.status_code < 400
    return {"status": "ready" if healthy else "failed", "kind": "generated-default-access",
            "url": f"http://{host}/", "httpStatus": answer.status_code,
            "reasonCode": None if healthy else "resource_access_unhealthy"}


def record(db: DbSession, r: Resource, summary: dict[str, Any]) -> HealthObservation:
    observation = HealthObservation(id=new_id("hob"), resource_id=r.id,
                                    overall=summary["overall"], summary=summary)
    db.add(observation)
    return observation


class HealthMonitor:
    """Records every deployed resource's health periodically, and forgets week-old records."""

    def __init__(self, sessions: sessionmaker, settings: Settings, targets: Targets):
        self.sessions, self.settings, self.targets = sessions, settings, targets

    def sweep(self) -> int:
        """Observes every serving resource, each in a short transaction of its own: the
        probes (Docker, HTTP) take time, and no write lock is held across them."""
        with self.sessions() as db:
            ids = list(db.scalars(select(Resource.id).where(
                Resource.current_deployment_id.is_not(None))))
            db.execute(delete(HealthObservation).where(
                HealthObservation.observed_at < utcnow() - KEEP))
            db.commit()
        for resource_id in ids:
            try:
                with self.sessions() as db:  # reads, probes, then one INSERT: the write
                    r = db.get(Resource, resource_id)  # lock is held for the commit alone
                    if r is None or r.current_deployment_id is None:  # gone meanwhile
                        continue
                    record(db, r, observe(db, self.settings, self.targets, r))
                    db.commit()
            except Exception:  # one resource's trouble does not keep the others unobserved
                log.exception("observing the health of %s failed", resource_id)
        return len(ids)
