"""Health of a resource, observed: its container, its health check answered directly, and its
public route answered through the edge proxy.

The history keeps changes, not every look (every 30 s for a week would be 20,000 rows per
resource): a `health_observations` row when a resource's health state changes, within a
budget of `BURST` changes refilled by `PER_HOUR` (a change past it is recorded once the budget
allows, if it still holds), and a `health_rollups` row per resource and hour with the worst
state of each minute. Both are pruned after `health_retention_days`, by index. A sweep reads
the store in a constant number of queries, lists each server's containers once, probes
`health_concurrency` resources at a time and writes only the changes (and, every few
minutes, the rollups).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
from sqlalchemy import ColumnElement, String, cast, delete, func, select
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from launchbay.engine.health import PROBE_AGENT, failure, probe
from launchbay.engine.plan import HealthSpec, ReleasePlan
from launchbay.engine.routing import access_policy, hostname
from launchbay.engine.runtime import ContainerInfo, RuntimeFailure
from launchbay.engine.targets import Targets
from launchbay.schemas_time import iso
from launchbay.settings import Settings
from launchbay.store.models import (
    Deployment,
    Environment,
    HealthObservation,
    HealthRollup,
    Project,
    Resource,
    Server,
    new_id,
    newest_deployments,
    utcnow,
)

log = logging.getLogger("launchbay.health")
BURST, PER_HOUR = 6, 1.5  # changes recorded per resource: at once, then per hour
ROLLUP_FLUSH = timedelta(minutes=5)
# Each minute of a rollup: the worst state seen in it (later in this string is worse).
MINUTE_CODES = {"not-deployed": "n", "healthy": "h", "degraded": "d", "unhealthy": "u"}
WORSE = "-nhdu"
UNOBSERVED = "-" * 60
_edge = httpx.Client(trust_env=False, follow_redirects=False,
                     headers={"User-Agent": PROBE_AGENT})


@dataclass
class Current:
    """What observing a resource needs of its current release."""

    id: str
    server_id: str
    container_id: str | None
    host_port: int | None


@dataclass
class Subject:
    """A resource, with what observing it reads from the store (columns, not whole rows: a
    sweep reads every serving resource)."""

    resource_id: str
    health_configured: bool
    current: Current | None
    health: HealthSpec | None  # the current release's health check
    proxy: dict[str, str]
    host: str | None  # its generated hostname, when it has one


def subjects(db: DbSession, settings: Settings, resource_id: str | None = None,
             specs: dict[str, HealthSpec] | None = None) -> list[Subject]:
    """The serving resources (or the one named) and what observing them needs, in a constant
    number of queries however many there are. `specs` keeps the releases' health checks from
    one sweep to the next (a release's plan never changes): only new plans are read."""
    chosen: ColumnElement[bool] = (Resource.id == resource_id if resource_id
                                   else Resource.current_deployment_id.is_not(None))
    specs = {} if specs is None else specs
    resources = db.execute(select(
        Resource.id, Resource.server_id, cast(Resource.health_policy, String),
        Deployment.id, Deployment.server_id, Deployment.container_id, Deployment.host_port,
        *((Resource.access_profile, Resource.slug, Resource.environment_id, Resource.project_id)
          if settings.edge_enabled else ())).outerjoin(
        Deployment, Deployment.id == Resource.current_deployment_id).where(chosen)).all()
    unread = [r[3] for r in resources if r[3] and r[3] not in specs]
    for at in range(0, len(unread), 500):
        specs.update({i: ReleasePlan.model_validate(plan).health for i, plan in db.execute(
            select(Deployment.id, Deployment.plan).where(Deployment.id.in_(unread[at:at + 500])))})
    proxies = {s.id: {"kind": s.edge_proxy_kind, "status": s.edge_proxy_status}
               for s in db.execute(select(Server.id, Server.edge_proxy_kind,
                                          Server.edge_proxy_status))}
    hosts: dict[str, str | None] = {}
    if settings.edge_enabled:
        envs = {i: name for i, name in db.execute(select(Environment.id, Environment.name).where(
            Environment.id.in_(select(Resource.environment_id).where(chosen))))}
        projects = {i: slug for i, slug in db.execute(select(Project.id, Project.slug).where(
            Project.id.in_(select(Resource.project_id).where(chosen))))}
        policies = {s: access_policy(db, s) for s in {r[1] for r in resources}}
        hosts = {r[0]: hostname(settings, r.slug, r.access_profile, envs[r.environment_id],
                                projects[r.project_id], policies[r[1]]) for r in resources}
    return [Subject(r[0], r[2] not in (None, "null", "{}"),
                    Current(r[3], r[4], r[5], r[6]) if r[3] else None, specs.get(r[3] or ""),
                    proxies.get(r[1], {"kind": "none", "status": "unknown"}), hosts.get(r[0]))
            for r in resources]


def with_latest(db: DbSession, summaries: list[dict[str, Any]]) -> None:
    """Fills the summaries' `latestDeployment` (a sweep reads it only for what it records)."""
    ids = [s["resourceId"] for s in summaries]
    for at in range(0, len(ids), 500):
        latest = {d.resource_id: {"id": d.id, "status": d.status, "createdAt": iso(d.created_at),
                                  "finishedAt": iso(d.finished_at) if d.finished_at else None,
                                  "serverId": d.server_id} for d in db.execute(select(
            Deployment.resource_id, Deployment.id, Deployment.status, Deployment.created_at,
            Deployment.finished_at, Deployment.server_id).where(
                Deployment.id.in_(newest_deployments(ids[at:at + 500]))))}
        for summary in summaries[at:at + 500]:
            summary["latestDeployment"] = latest.get(summary["resourceId"])


def look(settings: Settings, targets: Targets, found: list[Subject]) -> list[dict[str, Any]]:
    """`resources.health/v1` summaries of the subjects, observed now: one container listing
    per server, then the health checks and public routes of the running ones,
    `health_concurrency` at a time."""
    containers: dict[str, ContainerInfo | str] = {}  # container id: its state, or why unknown
    runtimes = {server_id: targets.of(server_id) for server_id in {
        s.current.server_id for s in found if s.current and s.current.container_id}}
    for server_id, runtime in runtimes.items():
        try:
            containers.update({c.id: c for c in runtime.containers(
                **{"launchbay.server": server_id})})
        except (RuntimeFailure, OSError) as exc:
            containers.update({s.current.container_id: str(exc) for s in found
                               if s.current and s.current.container_id
                               and s.current.server_id == server_id})

    at = iso(utcnow())  # the time of the whole look
    states = {s.resource_id: containers.get(s.current.container_id or "") if s.current else None
              for s in found}

    running = [s for s in found if isinstance(state := states[s.resource_id], ContainerInfo)
               and state.status == "running"]  # their observation makes requests
    probed = {s.resource_id for s in running}

    def one(s: Subject) -> dict[str, Any]:
        reach = None
        if s.resource_id in probed and s.current and s.current.host_port:
            reach = runtimes[s.current.server_id].reach(s.current.host_port)
        return summarize(settings, s, states[s.resource_id], at, reach)
    summaries = {}
    if running:
        with ThreadPoolExecutor(min(settings.health_concurrency, len(running)),
                                thread_name_prefix="launchbay-health") as pool:
            summaries = dict(zip([s.resource_id for s in running], pool.map(one, running),
                                 strict=True))
    return [summaries.get(s.resource_id) or one(s) for s in found]


def summarize(settings: Settings, s: Subject, container: ContainerInfo | str | None,
              at: str, reach: str | None = None) -> dict[str, Any]:
    """The subject's summary, given its container's state (or why it is unknown), observed
    `at`; `reach` is where the control plane reaches the release's port."""
    current, spec = s.current, s.health
    runtime: dict[str, Any] = {"lifecycle": "not-deployed", "health": "unknown",
                               "observedAt": at, "runtimeKind": "docker-container"}
    if current is not None and current.container_id:
        if isinstance(container, str):
            runtime.update(lifecycle="missing", health="unhealthy",
                           reasonCode="runtime-unreachable", message=container)
        elif container is None:
            runtime.update(lifecycle="missing", health="unhealthy")
        elif container.status != "running":
            runtime.update(lifecycle="stopped" if container.status == "exited"
                           else container.status, health="unhealthy",
                           message=f"container {container.status}")
        else:
            runtime["lifecycle"] = "running"
            if spec and spec.enabled and reach:
                ok, seen = probe(f"http://{reach}{spec.path}", spec)
                runtime.update(health="healthy" if ok else "unhealthy", message=seen)
            else:
                runtime["health"] = "healthy"
    # The public route is asked only of a running release (it cannot answer otherwise).
    public = _public_access(settings, s.host, spec if runtime["lifecycle"] == "running"
                            else None)
    if runtime["lifecycle"] == "not-deployed":
        overall = "not-deployed"
    elif runtime["health"] != "healthy":
        overall = "unhealthy"
    elif public["status"] == "failed":
        overall = "degraded"
    else:
        overall = "healthy"
    return {
        "schemaVersion": "resources.health/v1", "resourceId": s.resource_id,
        "generatedAt": at, "observedAt": at, "overall": overall,
        "latestDeployment": None, "runtime": runtime,  # see `with_latest`
        "currentDeploymentId": current.id if current else None,
        "healthPolicy": health_policy(s.health_configured, spec),
        "publicAccess": public, "proxy": s.proxy,
    }


def health_policy(configured: bool, spec: HealthSpec | None) -> dict[str, Any]:
    """The health policy a summary shows: the current release's."""
    return {"status": "configured" if configured else "default",
            "enabled": spec.enabled if spec else True, "type": "http",
            "path": spec.path if spec else "/",
            "expectedStatusCode": spec.expected_status if spec else None,
            "intervalSeconds": spec.interval_seconds if spec else None,
            "timeoutSeconds": spec.timeout_seconds if spec else None,
            "retries": spec.retries if spec else None,
            "startPeriodSeconds": spec.start_period_seconds if spec else None}


def _public_access(settings: Settings, host: str | None,
                   spec: HealthSpec | None) -> dict[str, Any]:
    """Asks the edge proxy for the resource's health path at its generated hostname."""
    if host is None:
        return {"status": "not-configured", "kind": "none"}
    if spec is None:
        return {"status": "not-ready", "kind": "generated-default-access",
                "reasonCode": "runtime_not_ready"}
    edge = settings.edge_bind or "127.0.0.1"
    url = f"http://{edge}:{settings.edge_http_port}{spec.path}"
    try:
        answer = _edge.get(url, headers={"Host": host}, timeout=spec.timeout_seconds)
    except httpx.HTTPError as exc:
        return {"status": "failed", "kind": "generated-default-access", "url": f"http://{host}/",
                "reasonCode": "edge_unreachable",
                "message": f"the edge proxy: {failure(exc, spec.timeout_seconds)}"}
    healthy = 200 <= answer.status_code < 400
    return {"status": "ready" if healthy else "failed", "kind": "generated-default-access",
            "url": f"http://{host}/", "httpStatus": answer.status_code,
            "reasonCode": None if healthy else "resource_access_unhealthy"}


def observe(db: DbSession, settings: Settings, targets: Targets, r: Resource) -> dict[str, Any]:
    """A summary of one resource, observed now."""
    summaries = look(settings, targets, subjects(db, settings, r.id))
    with_latest(db, summaries)
    return summaries[0]


def state_of(summary: dict[str, Any]) -> str:
    """What tells one health state from another (a change of it is a row of the history), as
    a short digest."""
    runtime, public = summary["runtime"], summary["publicAccess"]
    told = (f"{summary['overall']}|{runtime['lifecycle']}|{runtime['health']}|"
            f"{runtime.get('reasonCode')}|{public['status']}|{public.get('reasonCode')}|"
            f"{summary['proxy'].get('status')}|{summary['healthPolicy']['status']}|"
            f"{summary.get('currentDeploymentId')}")
    return hashlib.blake2b(told.encode(), digest_size=8).hexdigest()


def hour_of(when: datetime) -> datetime:
    return when.replace(minute=0, second=0, microsecond=0)


@dataclass
class Recorded:
    """A resource's last recorded state, and its budget of changes to record: `BURST` at once,
    refilled by `PER_HOUR` (so a day records at most BURST + 24 * PER_HOUR changes)."""

    state: str | None
    at: datetime
    budget: float

    def left(self, now: datetime) -> float:
        return min(BURST, self.budget + (now - self.at).total_seconds() / 3600 * PER_HOUR)

    def admits(self, state: str, now: datetime) -> bool:
        return state != self.state and self.left(now) >= 1

    def after(self, state: str, now: datetime) -> Recorded:
        return Recorded(state, now, self.left(now) - 1)


NOTHING_RECORDED = Recorded(None, datetime.min.replace(tzinfo=timezone.utc), BURST)


def recorded(db: DbSession, now: datetime, resource_id: str | None = None
             ) -> dict[str, Recorded]:
    """Each resource's (or one's) last recorded state, from the store, in two queries; its
    budget counts the changes of the hours that refill a whole burst."""
    mine = [HealthObservation.resource_id == resource_id] if resource_id else []
    newest = (select(HealthObservation.resource_id,
                     func.max(HealthObservation.observed_at).label("at"))
              .where(*mine).group_by(HealthObservation.resource_id).subquery())
    counts: dict[str, int] = {rid: n for rid, n in db.execute(
        select(HealthObservation.resource_id, func.count()).where(
            *mine, HealthObservation.observed_at >= now - timedelta(hours=BURST / PER_HOUR))
        .group_by(HealthObservation.resource_id))}
    return {rid: Recorded(state, now, max(0, BURST - counts.get(rid, 0)))
            for rid, state in db.execute(
                select(HealthObservation.resource_id, HealthObservation.state).join(newest, (
                    HealthObservation.resource_id == newest.c.resource_id)
                    & (HealthObservation.observed_at == newest.c.at)))}


def change(summary: dict[str, Any], state: str, now: datetime) -> HealthObservation:
    """The history's row of a change: what the history shows of the summary (the states, their
    reasons, messages cut to 200 characters), not what `expanded` can tell again."""
    kept = {k: v for k, v in summary.items()
            if k not in ("schemaVersion", "resourceId", "generatedAt", "healthPolicy")}
    kept["healthPolicy"] = {"status": summary["healthPolicy"]["status"]}
    if latest := summary.get("latestDeployment"):
        kept["latestDeployment"] = {"id": latest["id"], "status": latest["status"]}
    kept["runtime"] = {k: v[:200] if isinstance(v, str) else v
                       for k, v in summary["runtime"].items()
                       if k not in ("observedAt", "runtimeKind") and v is not None}
    kept["publicAccess"] = {k: v[:200] if isinstance(v, str) else v
                            for k, v in summary["publicAccess"].items() if v is not None}
    return HealthObservation(id=new_id("hob"), resource_id=summary["resourceId"],
                             observed_at=now, overall=summary["overall"], state=state,
                             summary=kept)


def expanded(row: HealthObservation) -> dict[str, Any]:
    """A recorded change as the `resources.health/v1` summary it was."""
    kept = row.summary
    return {"schemaVersion": "resources.health/v1", "resourceId": row.resource_id,
            "generatedAt": kept.get("observedAt"), **kept,
            "runtime": {"observedAt": kept.get("observedAt"), "runtimeKind": "docker-container",
                        **kept.get("runtime", {})}}


def record(db: DbSession, summary: dict[str, Any]) -> bool:
    """Records a summary observed outside the sweep (a live look) if it is a change the
    history admits; True when it did."""
    now, state = utcnow(), state_of(summary)
    last = recorded(db, now, summary["resourceId"]).get(summary["resourceId"], NOTHING_RECORDED)
    if last.admits(state, now):
        db.add(change(summary, state, now))
        return True
    return False


class HealthMonitor:
    """Observes every deployed resource periodically and keeps its health history."""

    def __init__(self, sessions: sessionmaker, settings: Settings, targets: Targets):
        self.sessions, self.settings, self.targets = sessions, settings, targets
        self.recorded: dict[str, Recorded] = {}
        self.specs: dict[str, HealthSpec] = {}  # the serving releases' health checks
        # Each resource's state when it was last looked at (a sweep, or a live look), and the
        # live looks the history's budget did not record: what is true now, whatever the
        # history could keep.
        self.seen: dict[str, tuple[str, datetime]] = {}
        self.looked: dict[str, dict[str, Any]] = {}
        self.swept_at: datetime | None = None
        self.minutes: dict[tuple[str, datetime], str] = {}  # rollups not yet written
        self.flushed_at = self.pruned_at = NOTHING_RECORDED.at
        self._lock = threading.Lock()

    def sweep(self) -> int:
        """Observes every serving resource; the probes hold no transaction (and no lock)."""
        with self.sessions() as db:
            found = subjects(db, self.settings, specs=self.specs)
        self.specs = {s.current.id: s.health for s in found if s.current and s.health}
        self.take(look(self.settings, self.targets, found), utcnow())
        return len(found)

    def take(self, summaries: list[dict[str, Any]], now: datetime) -> int:
        """Keeps a sweep's summaries: the changes the history admits now (one transaction),
        each minute's worst state, and every few minutes the rollups and the prune; returns
        how many changes were recorded."""
        with self._lock, self.sessions() as db:
            if self.swept_at is None or (
                    now - self.swept_at).total_seconds() > 3 * self.settings.health_observe_seconds:
                self.recorded = recorded(db, now)  # another control plane swept meanwhile
            seen, changes = {}, []
            hour, minute = hour_of(now), now.minute
            for summary in summaries:
                rid, state = summary["resourceId"], state_of(summary)
                seen[rid] = (state, now)
                self._minute(rid, hour, minute, MINUTE_CODES.get(summary["overall"], "u"))
                last = self.recorded.get(rid, NOTHING_RECORDED)
                if last.admits(state, now):
                    changes.append((summary, state))
                    self.recorded[rid] = last.after(state, now)
            flush = now - self.flushed_at >= ROLLUP_FLUSH or hour != hour_of(self.flushed_at)
            if changes or flush:
                alive = set(db.scalars(select(Resource.id).where(
                    Resource.current_deployment_id.is_not(None))))  # not deleted meanwhile
                changes = [(s, state) for s, state in changes if s["resourceId"] in alive]
                with_latest(db, [s for s, _ in changes])
                db.add_all(change(s, state, now) for s, state in changes)
                if flush:
                    self._flush(db, now, alive)
            if now - self.pruned_at >= timedelta(hours=1):
                self._prune(db, now)
            db.commit()
            self.seen, self.swept_at = seen, now
            self.looked = {}  # superseded by the sweep
            if len(self.recorded) > len(seen):  # forget what no longer serves
                self.recorded = {rid: r for rid, r in self.recorded.items() if rid in seen}
        return len(changes)

    def _minute(self, resource_id: str, hour: datetime, minute: int, code: str) -> None:
        key = (resource_id, hour)
        minutes = self.minutes.get(key, UNOBSERVED)
        if WORSE.index(code) > WORSE.index(minutes[minute]):
            self.minutes[key] = minutes[:minute] + code + minutes[minute + 1:]

    def flush(self) -> None:
        """Writes the rollups not yet written (when the control plane stops)."""
        with self._lock, self.sessions() as db:
            self._flush(db, utcnow(), set(db.scalars(select(Resource.id))))
            db.commit()

    def _flush(self, db: DbSession, now: datetime, alive: set[str]) -> None:
        for hour in {h for _, h in self.minutes}:
            stored = {r.resource_id: r for r in db.scalars(select(HealthRollup).where(
                HealthRollup.hour == hour))}
            for (rid, h), minutes in list(self.minutes.items()):
                if h != hour or rid not in alive:
                    continue
                if (row := stored.get(rid)) is not None:
                    row.minutes = merged(row.minutes, minutes)
                else:
                    db.add(HealthRollup(resource_id=rid, hour=hour, minutes=minutes))
        current = hour_of(now)  # the current hour's minutes stay, to merge the next ones into
        self.minutes = {key: m for key, m in self.minutes.items() if key[1] == current}
        self.flushed_at = now

    def _prune(self, db: DbSession, now: datetime) -> None:
        cutoff = now - timedelta(days=self.settings.health_retention_days)
        db.execute(delete(HealthObservation).where(HealthObservation.observed_at < cutoff))
        db.execute(delete(HealthRollup).where(HealthRollup.hour < hour_of(cutoff)))
        self.pruned_at = now

    def note(self, summary: dict[str, Any], recorded: bool) -> None:
        """A live look at a resource (one the history did not record is kept until the next
        sweep, so that cached answers stay true)."""
        rid = summary["resourceId"]
        self.seen[rid] = (state_of(summary), utcnow())
        self.looked.pop(rid, None)
        if not recorded:
            if len(self.looked) >= 1000:  # bounded: the oldest goes
                self.looked.pop(next(iter(self.looked)))
            self.looked[rid] = summary

    def unflushed(self, resource_id: str) -> dict[datetime, str]:
        """The resource's minutes of this process not written yet, by hour."""
        return {h: m for (rid, h), m in self.minutes.items() if rid == resource_id}


def cached(db: DbSession, r: Resource, fresh: float,
           monitor: HealthMonitor | None = None) -> dict[str, Any] | None:
    """What is known of the resource's health, if it was seen no more than `fresh` seconds
    ago: a live look the history did not record, or the latest recorded change (confirmed by
    the monitor's last look when that is newer); None when only a live look can tell."""
    now = utcnow()
    looked = monitor.looked.get(r.id) if monitor else None
    if looked is not None and monitor and (now - monitor.seen[r.id][1]).total_seconds() < fresh:
        return looked
    row = db.scalar(select(HealthObservation).where(HealthObservation.resource_id == r.id)
                    .order_by(HealthObservation.observed_at.desc()).limit(1))
    if row is None:
        return None
    state, seen_at = monitor.seen.get(r.id, (None, None)) if monitor else (None, None)
    if seen_at is not None and seen_at > row.observed_at and state != row.state:
        return None  # changed since, not recorded
    if (now - row.observed_at).total_seconds() < fresh:
        observed_at = row.summary.get("observedAt")
    elif seen_at is not None and (now - seen_at).total_seconds() < fresh:
        observed_at = iso(seen_at)
    else:
        return None
    current = db.get(Deployment, r.current_deployment_id) if r.current_deployment_id else None
    spec = ReleasePlan.model_validate(current.plan).health if current else None
    latest = [expanded(row)]
    with_latest(db, latest)
    return {**latest[0], "generatedAt": iso(now), "observedAt": observed_at,
            "healthPolicy": health_policy(bool(r.health_policy), spec)}


def merged(a: str, b: str) -> str:
    """Two rollups of one hour as one: the worse state of each minute."""
    return "".join(x if WORSE.index(x) >= WORSE.index(y) else y for x, y in zip(a, b, strict=True))
