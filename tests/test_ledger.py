"""The operator work ledger on both backends: exclusive claims, leases, retries, deferral."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from launchbay.engine.ledger import Ledger, enqueue
from launchbay.engine.worker import Defer, Job, Retry, Workers
from launchbay.store.models import OperatorWork, utcnow


def add(cp, n: int = 1, **kw) -> list[str]:
    with cp.sessions() as db:
        ids = [enqueue(db, "system", "test.work", **kw).id for _ in range(n)]
        db.commit()
    return ids


def status(cp, work_id: str) -> OperatorWork:
    with cp.sessions() as db:
        return db.get_one(OperatorWork, work_id)


def test_concurrent_claimers_never_share_an_item(cp):
    add(cp, 40)
    ledger = Ledger(cp.sessions, lease_seconds=60)
    claims: dict[str, list[str]] = {}
    lock = threading.Lock()

    def claimer(name: str) -> None:
        while (item := ledger.claim(name, ("system",))) is not None:
            with lock:
                claims.setdefault(item.id, []).append(name)

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(claims) == 40
    assert all(len(owners) == 1 for owners in claims.values()), claims


def test_an_expired_lease_is_reclaimed_and_counts_an_attempt(cp):
    (work_id,) = add(cp)
    ledger = Ledger(cp.sessions, lease_seconds=0.3)
    first = ledger.claim("dead-worker")
    assert first.id == work_id and first.attempts == 1
    assert ledger.claim("other") is None  # leased
    time.sleep(0.4)
    again = ledger.claim("other")
    assert again.id == work_id and again.attempts == 2 and again.lease_owner == "other"
    assert not ledger.renew(work_id, "dead-worker")  # the old owner has lost it
    assert ledger.renew(work_id, "other", step="still here")
    assert status(cp, work_id).step == "still here"


def test_retries_back_off_then_fail(cp):
    (work_id,) = add(cp, max_attempts=2)
    ledger = Ledger(cp.sessions, backoff_seconds=0.2)
    ledger.claim("w")
    assert ledger.fail(work_id, "w", "flaky", "try again", retriable=True) == "retry-scheduled"
    item = status(cp, work_id)
    assert item.run_after > utcnow() + timedelta(seconds=0.05)
    assert ledger.claim("w") is None  # not due yet
    time.sleep(0.25)
    assert ledger.claim("w").attempts == 2
    assert ledger.fail(work_id, "w", "flaky", "again", retriable=True) == "failed"
    item = status(cp, work_id)
    assert item.status == "failed" and item.error_code == "flaky" and item.finished_at


def test_defer_does_not_spend_an_attempt(cp):
    (work_id,) = add(cp)
    ledger = Ledger(cp.sessions)
    ledger.claim("w")
    ledger.defer(work_id, "w", 0, "waiting")
    item = status(cp, work_id)
    assert (item.status, item.attempts, item.step) == ("pending", 0, "waiting")


def test_dead_local_owners_are_released_at_once(cp):
    (work_id,) = add(cp)
    ledger = Ledger(cp.sessions, lease_seconds=600)
    ledger.claim("thishost:999999:0")  # a process id that does not exist
    assert ledger.claim("x") is None
    assert ledger.release_dead_owners("thishost") == 1
    assert ledger.claim("x").id == work_id


class Recorder:
    def __init__(self, outcome):
        self.outcome, self.runs, self.given_up = outcome, [], []

    def run(self, job: Job) -> str:
        self.runs.append(job.item.id)
        return self.outcome(job)

    def give_up(self, item, code, message) -> None:
        self.given_up.append((item.id, code))


def test_workers_run_handlers_and_record_outcomes(cp):
    ok, retry, boom = add(cp), add(cp, max_attempts=1), add(cp)

    def outcome(job: Job) -> str:
        if job.item.id == retry[0]:
            raise Retry("busy", "engine busy")
        if job.item.id == boom[0]:
            raise RuntimeError("bug")
        job.progress(phase="work", step="done")
        return "succeeded"

    handler = Recorder(outcome)
    workers = Workers(Ledger(cp.sessions), {"system": handler}, count=2, poll_seconds=0.05)
    workers.start()
    try:
        deadline = time.monotonic() + 10
        while len(handler.runs) < 3 or status(cp, boom[0]).status == "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.2)
    finally:
        workers.stop()
    assert status(cp, ok[0]).status == "succeeded" and status(cp, ok[0]).phase == "work"
    assert status(cp, retry[0]).status == "failed"
    assert status(cp, boom[0]).status == "failed" and status(cp, boom[0]).error_code == "internal"
    assert sorted(handler.given_up) == sorted([(retry[0], "busy"), (boom[0], "internal")])


def test_deferred_work_runs_later(cp):
    (work_id,) = add(cp)
    seen = []

    def outcome(job: Job) -> str:
        seen.append(job.item.attempts)
        if len(seen) == 1:
            raise Defer(0.1, "not yet")
        return "succeeded"

    workers = Workers(Ledger(cp.sessions), {"system": Recorder(outcome)}, count=1,
                      poll_seconds=0.05)
    workers.start()
    try:
        deadline = time.monotonic() + 10
        while status(cp, work_id).status != "succeeded":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        workers.stop()
    assert seen == [1, 1]  # the deferral did not count as an attempt


class Broken:
    """A handler that fails its item, then fails to clean up (as one calling a Docker engine
    that is down would)."""

    def __init__(self) -> None:
        self.ran: list[str] = []

    def run(self, job: Job) -> str:
        self.ran.append(job.item.id)
        if job.item.payload.get("explode"):
            raise RuntimeError("boom")
        return "succeeded"

    def give_up(self, item: OperatorWork, code: str, message: str) -> None:
        raise ConnectionError("the Docker engine is down")


def test_a_handler_that_raises_anywhere_never_ends_a_worker(cp):
    (first,) = add(cp, payload={"explode": True})
    (second,) = add(cp)
    handler = Broken()
    workers = Workers(Ledger(cp.sessions), {"system": handler}, count=1, poll_seconds=0.05)
    workers.start()
    try:
        deadline = time.monotonic() + 10
        while status(cp, second).status != "succeeded":
            assert time.monotonic() < deadline, "the worker stopped after the first item"
            time.sleep(0.05)
    finally:
        workers.stop()
    assert handler.ran == [first, second]
    assert status(cp, first).status == "failed" and status(cp, first).error_code == "internal"


def test_a_worker_that_lost_its_lease_changes_nothing(cp):
    (work_id,) = add(cp)
    ledger = Ledger(cp.sessions, lease_seconds=0.2)
    ledger.claim("slow")
    time.sleep(0.3)
    assert ledger.claim("fast").id == work_id  # taken over
    assert ledger.fail(work_id, "slow", "late", "too late", retriable=True) == "lost"
    ledger.defer(work_id, "slow", 0, "late")
    item = status(cp, work_id)
    assert (item.status, item.lease_owner, item.attempts, item.error_code) == \
        ("running", "fast", 2, None)
