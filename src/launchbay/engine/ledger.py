"""The operator work ledger: durable work items claimed by one worker at a time under a lease.

A worker claims an item (pending, retry-scheduled and due, or running with an expired lease)
with a conditional UPDATE, so two workers never hold the same item; on PostgreSQL the
candidate row is also selected `FOR UPDATE SKIP LOCKED` so claimers do not queue behind each
other. While it works, the worker renews the lease. A worker that dies stops renewing; the
item is reclaimed when its lease expires, up to `max_attempts`.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from launchbay.store.db import changed
from launchbay.store.models import OperatorWork, WorkKind, WorkStatus, new_id, utcnow

KINDS = tuple(WorkKind)
STATUSES = tuple(WorkStatus)
OPEN = (WorkStatus.PENDING, WorkStatus.RUNNING, WorkStatus.RETRY_SCHEDULED)
CLOSED = (WorkStatus.SUCCEEDED, WorkStatus.FAILED, WorkStatus.CANCELED, WorkStatus.DEAD_LETTERED)


def enqueue(db: DbSession, kind: str, operation_key: str, *, max_attempts: int = 3,
            payload: dict[str, Any] | None = None, **refs: str | None) -> OperatorWork:
    """Adds a work item in the caller's transaction: it exists exactly when that commits."""
    item = OperatorWork(id=new_id("wrk"), kind=kind, operation_key=operation_key,
                        max_attempts=max_attempts, payload=payload or {}, **refs)
    db.add(item)
    return item


class Ledger:
    def __init__(self, sessions: sessionmaker, lease_seconds: float = 30,
                 backoff_seconds: float = 2):
        self.sessions = sessions
        self.lease = timedelta(seconds=lease_seconds)
        self.backoff = backoff_seconds

    def _claimable(self, now):
        return or_(
            and_(OperatorWork.status.in_((WorkStatus.PENDING, WorkStatus.RETRY_SCHEDULED)),
                 OperatorWork.run_after <= now),
            and_(OperatorWork.status == WorkStatus.RUNNING, OperatorWork.lease_expires_at < now),
        )

    def claim(self, worker_id: str, kinds: tuple[str, ...] = KINDS) -> OperatorWork | None:
        """The next due item, now leased to `worker_id`; None when there is nothing to do."""
        now = utcnow()
        with self.sessions() as db:
            candidate = db.scalar(
                select(OperatorWork.id)
                .where(self._claimable(now), OperatorWork.kind.in_(kinds))
                .order_by(OperatorWork.run_after, OperatorWork.created_at)
                .limit(1).with_for_update(skip_locked=True)
            )
            if candidate is None:
                return None
            claimed = changed(db, update(OperatorWork)
                              .where(OperatorWork.id == candidate, self._claimable(now))
                              .values(status=WorkStatus.RUNNING, lease_owner=worker_id,
                                      lease_expires_at=now + self.lease,
                                      attempts=OperatorWork.attempts + 1, started_at=now,
                                      updated_at=now)
                              .execution_options(synchronize_session=False))
            db.commit()
            return db.get(OperatorWork, candidate, populate_existing=True) if claimed else None

    def release_dead_owners(self, hostname: str) -> int:
        """Expires the leases held by processes of this host that no longer exist, so their
        work is taken up at once after a crash instead of when the lease runs out."""
        now, released = utcnow(), 0
        with self.sessions() as db:
            for item in db.scalars(select(OperatorWork).where(
                    OperatorWork.status == WorkStatus.RUNNING,
                    OperatorWork.lease_owner.like(f"{hostname}:%"))):
                pid = (item.lease_owner or "").split(":")[1]
                if pid.isdigit() and not _alive(int(pid)):
                    item.lease_expires_at = now
                    released += 1
            db.commit()
        return released

    def renew(self, work_id: str, worker_id: str, **progress: str | None) -> bool:
        """Extends the lease (and records phase/step); False if the item is no longer ours."""
        now = utcnow()
        with self.sessions() as db:
            renewed = changed(db, update(OperatorWork)
                              .where(OperatorWork.id == work_id,
                                     OperatorWork.lease_owner == worker_id,
                                     OperatorWork.status == WorkStatus.RUNNING)
                              .values(lease_expires_at=now + self.lease, updated_at=now,
                                      **progress)
                              .execution_options(synchronize_session=False))
            db.commit()
            return renewed == 1

    def finish(self, work_id: str, worker_id: str,
               status: WorkStatus = WorkStatus.SUCCEEDED) -> None:
        self._close(work_id, worker_id, status=status)

    def fail(self, work_id: str, worker_id: str, code: str, message: str, *,
             retriable: bool, category: str = "runtime") -> str:
        """Schedules a retry with exponential backoff, or fails the item for good; "lost" when
        the item is no longer this worker's (another took it over meanwhile)."""
        with self.sessions() as db:
            item = db.get(OperatorWork, work_id)
            if item is None or item.lease_owner != worker_id:
                return "lost"
            values: dict[str, Any] = {"error_code": code, "error_message": message[:4000],
                                      "error_category": category, "updated_at": utcnow()}
            if retriable and item.attempts < item.max_attempts:
                values.update(status=WorkStatus.RETRY_SCHEDULED, lease_owner=None,
                              lease_expires_at=None, run_after=utcnow() + timedelta(
                                  seconds=self.backoff * 2 ** (item.attempts - 1)))
            else:
                values.update(status=WorkStatus.FAILED, finished_at=utcnow())
            return values["status"] if self._update_if_mine(
                db, work_id, worker_id, item.attempts, **values) else "lost"

    def defer(self, work_id: str, worker_id: str, seconds: float, step: str) -> None:
        """Puts an item back without counting the attempt (it had to wait for other work)."""
        with self.sessions() as db:
            item = db.get(OperatorWork, work_id)
            if item is not None and item.lease_owner == worker_id:
                self._update_if_mine(db, work_id, worker_id, item.attempts,
                                     status=WorkStatus.PENDING, step=step,
                                     attempts=item.attempts - 1,
                                     run_after=utcnow() + timedelta(seconds=seconds),
                                     lease_owner=None, lease_expires_at=None)

    @staticmethod
    def _update_if_mine(db: DbSession, work_id: str, worker_id: str, attempt: int,
                        **values: Any) -> bool:
        """Changes the item only if it is still this worker's, in the attempt that was read
        (a conditional UPDATE, like a claim: a worker that lost its lease changes nothing)."""
        done = changed(db,
            update(OperatorWork)
            .where(OperatorWork.id == work_id, OperatorWork.lease_owner == worker_id,
                   OperatorWork.status == WorkStatus.RUNNING, OperatorWork.attempts == attempt)
            .values(**values).execution_options(synchronize_session=False))
        db.commit()
        return done == 1

    def _close(self, work_id: str, worker_id: str, **values: Any) -> None:
        now = utcnow()
        with self.sessions() as db:
            db.execute(
                update(OperatorWork)
                .where(OperatorWork.id == work_id, OperatorWork.lease_owner == worker_id)
                .values(finished_at=now, updated_at=now, lease_expires_at=None, **values)
                .execution_options(synchronize_session=False)
            )
            db.commit()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
