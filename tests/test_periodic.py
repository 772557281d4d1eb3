"""Periodic jobs run once per period across control planes on one store: two `launchbay
worker` processes share the reaper's runs instead of doubling them, and the survivor keeps
it going when the other stops."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from sqlalchemy import create_engine, select

from launchbay.store.models import PeriodicJob

PERIOD = 0.5


def worker(tmp_path, database_url: str, n: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LAUNCHBAY_DATA_DIR": str(tmp_path / f"data{n}"),
           "LAUNCHBAY_DATABASE_URL": database_url, "LAUNCHBAY_EDGE_ENABLED": "false",
           "LAUNCHBAY_SHIPPED_TEMPLATES": "false", "LAUNCHBAY_WORKERS": "1",
           "LAUNCHBAY_INSTANCE_REAP_SECONDS": str(PERIOD)}
    for slow in ("RECONCILE", "HEALTH_OBSERVE", "AUTO_UPDATE", "INSTANCE_POOL"):
        env[f"LAUNCHBAY_{slow}_SECONDS"] = "3600"
    exe = os.path.join(os.path.dirname(sys.executable), "launchbay")
    return subprocess.Popen([exe, "worker"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def reaper(database_url: str) -> PeriodicJob | None:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(select(PeriodicJob.runs, PeriodicJob.holder)
                               .where(PeriodicJob.name == "reap")).one_or_none()
            return row  # type: ignore[return-value]
    finally:
        engine.dispose()


def test_two_control_planes_run_each_periodic_job_once_per_period(tmp_path, database_url):
    first, second = worker(tmp_path, database_url, 1), worker(tmp_path, database_url, 2)
    try:
        deadline = time.monotonic() + 30
        while reaper(database_url) is None:  # both have started (and migrated nothing)
            assert time.monotonic() < deadline and first.poll() is None
            time.sleep(0.1)
        start, began = reaper(database_url).runs, time.monotonic()
        time.sleep(2.5)
        ran = reaper(database_url).runs - start
        periods = (time.monotonic() - began) / PERIOD
        assert periods * 0.5 <= ran <= periods * 1.25 + 1, (ran, periods)  # not twice

        first.terminate()
        first.wait(20)
        before = reaper(database_url).runs
        time.sleep(1.5)
        after = reaper(database_url)
        assert after.runs - before >= 2  # the other one carries on
        assert after.holder.endswith(f":{second.pid}") or str(second.pid) in after.holder
    finally:
        for proc in (first, second):
            proc.terminate()
            proc.wait(20)
