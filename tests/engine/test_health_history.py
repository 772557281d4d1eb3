"""Health history: changes of state plus per-minute rollups, bounded however often a resource
flaps, pruned after the retention; the sweep lists each server's containers once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from launchbay.engine.health_monitor import BURST, PER_HOUR, HealthMonitor, hour_of
from launchbay.store.models import HealthObservation, HealthRollup, utcnow

from docker_support import deployed, eventually
from support import make_app

pytestmark = pytest.mark.both_stores


def rows(cp, model, resource_id):  # type: ignore[no-untyped-def]
    with cp.sessions() as db:
        return db.scalar(select(func.count()).select_from(model).where(
            model.resource_id == resource_id))


def test_sweep_records_changes_not_looks(api, cp):
    ids = make_app(api, "lbtest/hello:v1")
    deployed(api, ids)
    monitor = HealthMonitor(cp.sessions, cp.settings, cp.targets)
    assert monitor.sweep() >= 1
    before = rows(cp, HealthObservation, ids["resource"])
    for _ in range(3):  # nothing changed: nothing written
        monitor.sweep()
    assert rows(cp, HealthObservation, ids["resource"]) == before >= 1
    stop = api.ok("POST", f"/resources/{ids['resource']}/runtime/stop")
    eventually(lambda: api.get(f"/operator-work/{stop['runtimeControlAttemptId']}")["item"][
        "status"] == "succeeded")
    monitor.sweep()
    cp.ops.health = monitor  # the history shows this monitor's minutes not yet written
    history = api.get(f"/resources/{ids['resource']}/health-history")
    assert history["observations"][0]["overall"] == "unhealthy"
    assert history["observations"][0]["runtimeLifecycle"] == "stopped"
    assert history["observations"][1]["overall"] == "healthy"
    now = utcnow()
    assert history["rollups"][0]["minutes"][now.minute] in ("u", "-")  # a minute may turn
    assert "u" in history["rollups"][0]["minutes"] or "u" in history["rollups"][1]["minutes"]
    # The cached answer is the recorded change, confirmed by the sweep.
    cached = api.get(f"/resources/{ids['resource']}/health")
    assert cached["mode"] == "cached" and cached["overall"] == "unhealthy"
    assert cached["healthPolicy"]["path"] == "/"
    monitor.flush()
    with cp.sessions() as db:
        stored = db.scalars(select(HealthRollup).where(
            HealthRollup.resource_id == ids["resource"])).all()
    assert stored and any("u" in r.minutes for r in stored)


def test_flapping_is_bounded_and_pruned(api, cp):
    """A resource flapping at every sweep for a day keeps at most BURST + 24 * PER_HOUR changes
    and one rollup row an hour; after the retention both are gone."""
    ids = make_app(api, "lbtest/hello:v1")
    deployed(api, ids)
    good = api.get(f"/resources/{ids['resource']}/health", params={"mode": "live"})
    bad = {**good, "overall": "unhealthy",
           "runtime": {**good["runtime"], "health": "unhealthy", "message": "HTTP 500"}}
    monitor = HealthMonitor(cp.sessions, cp.settings, cp.targets)
    start = hour_of(utcnow() - timedelta(days=9))
    for n in range(24 * 60):  # a day, a sweep a minute, flapping every time
        monitor.take([bad if n % 2 else good], start + timedelta(minutes=n, seconds=5))
    monitor.flush()
    with cp.sessions() as db:
        day = select(func.count()).select_from(HealthObservation).where(
            HealthObservation.resource_id == ids["resource"],
            HealthObservation.observed_at < start + timedelta(days=1))
        changes = db.scalar(day)
        hours = db.scalars(select(HealthRollup).where(
            HealthRollup.resource_id == ids["resource"],
            HealthRollup.hour < start + timedelta(days=1))).all()
    assert 24 * PER_HOUR <= changes <= BURST + 24 * PER_HOUR
    assert len(hours) == 24 and all(h.minutes.count("u") == 30 for h in hours), hours[0].minutes
    monitor.take([good], utcnow())  # an hour later than the last prune: a week-old day goes
    with cp.sessions() as db:
        assert db.scalar(day) == 0
        assert not db.scalars(select(HealthRollup).where(
            HealthRollup.resource_id == ids["resource"],
            HealthRollup.hour < start + timedelta(days=1))).all()


def test_cached_health_stays_true_past_the_history_budget(api, cp):
    """Once a resource has spent its budget of recorded changes, a live look that finds it
    stopped is not in the history, yet the cached health (what the console shows) says so."""
    ids = make_app(api, "lbtest/hello:v1")
    deployed(api, ids)
    good = api.get(f"/resources/{ids['resource']}/health", params={"mode": "live"})
    bad = {**good, "overall": "unhealthy",
           "runtime": {**good["runtime"], "health": "unhealthy", "message": "HTTP 500"}}
    for n in range(BURST + 2):  # flapping spends the budget
        cp.health.take([bad if n % 2 == 0 else good], utcnow())
    stop = api.ok("POST", f"/resources/{ids['resource']}/runtime/stop")
    eventually(lambda: api.get(f"/operator-work/{stop['runtimeControlAttemptId']}")["item"][
        "status"] == "succeeded")
    live = api.get(f"/resources/{ids['resource']}/health", params={"mode": "live"})
    assert live["runtime"]["lifecycle"] == "stopped"
    history = api.get(f"/resources/{ids['resource']}/health-history")["observations"]
    assert history[0]["runtimeLifecycle"] != "stopped"  # past the budget: not recorded
    cached = api.get(f"/resources/{ids['resource']}/health")
    assert cached["mode"] == "cached" and cached["runtime"]["lifecycle"] == "stopped"
