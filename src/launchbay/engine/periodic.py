"""Periodic jobs that run once per period across every control plane on one store.

Each process wakes its jobs on its own clock; before a job runs, the process claims this
period's run in the store (a conditional UPDATE of the job's row, like a work item's claim).
Whoever claims first runs it; the others find it ran less than a period ago and skip. A
process that stops simply stops claiming: the next one to wake takes over, within a period.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import or_, update
from sqlalchemy.orm import sessionmaker

from launchbay.store.db import changed, upsert
from launchbay.store.models import PeriodicJob, utcnow

# A run counts for this share of a period: processes' clocks drift, and one that wakes a
# little early must not run a job that another ran a period ago.
EARLY = 0.8


def claim(sessions: sessionmaker, name: str, every: float, holder: str) -> bool:
    """Whether `holder` runs `name` now (and has recorded that it does). One UPDATE when the
    job's row exists (the job's first claim in a store makes it)."""
    now = utcnow()
    take = (update(PeriodicJob)
            .where(PeriodicJob.name == name, or_(
                PeriodicJob.last_started_at.is_(None),
                PeriodicJob.last_started_at <= now - timedelta(seconds=every * EARLY)))
            .values(last_started_at=now, holder=holder, runs=PeriodicJob.runs + 1)
            .execution_options(synchronize_session=False))
    with sessions() as db:
        claimed = changed(db, take)
        if claimed == 0 and changed(db, upsert(db, PeriodicJob).values(
                name=name, runs=0).on_conflict_do_nothing(index_elements=[PeriodicJob.name])):
            claimed = changed(db, take)  # not due, or (now made) its first run
        db.commit()
        return claimed == 1
