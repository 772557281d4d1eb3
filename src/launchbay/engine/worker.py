"""Workers: threads that claim work items from the ledger and run the handler of their kind."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from launchbay import heap
from launchbay.engine import periodic
from launchbay.engine.ledger import KINDS, Ledger
from launchbay.store.models import OperatorWork, WorkStatus

log = logging.getLogger("launchbay.worker")


class Retry(Exception):
    """A failure worth another attempt (the engine was busy, a pull timed out...)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


class Refused(Exception):
    """A failure no retry will mend (nothing to stop, a bad request)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


class Defer(Exception):
    """Not now: put the item back for `seconds` without spending an attempt."""

    def __init__(self, seconds: float, step: str):
        super().__init__(step)
        self.seconds, self.step = seconds, step


@dataclass
class Job:
    item: OperatorWork
    worker_id: str
    ledger: Ledger
    lost: threading.Event = field(default_factory=threading.Event)

    def progress(self, phase: str | None = None, step: str | None = None) -> None:
        """Records where the work is and renews the lease; notices if another worker took it."""
        values = {k: v for k, v in (("phase", phase), ("step", step)) if v is not None}
        if not self.ledger.renew(self.item.id, self.worker_id, **values):
            self.lost.set()


class Handler(Protocol):
    def run(self, job: Job) -> str: ...

    def give_up(self, item: OperatorWork, code: str, message: str) -> None: ...


@dataclass(frozen=True)
class Periodic:
    """A background job run every `every` seconds: once per period across every control
    plane on the store (`once`), or in each process (a watchdog of its own edge proxy)."""

    name: str
    every: float
    task: Callable[[], object]
    once: bool = True


IDLE_POLL = 2.0  # seconds between an idle worker's looks at the store, at most


class Workers:
    """A pool of worker threads, woken at once when work is enqueued in this process, and the
    process's periodic jobs."""

    def __init__(self, ledger: Ledger, handlers: dict[str, Handler], *, count: int = 2,
                 poll_seconds: float = 0.5, lease_seconds: float = 30,
                 background: list[Periodic] | None = None):
        self.ledger, self.handlers, self.count = ledger, handlers, count
        self.poll, self.lease = poll_seconds, lease_seconds
        self.background = background or []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.id = f"{socket.gethostname()}:{os.getpid()}"

    def start(self) -> None:
        self.ledger.release_dead_owners(self.id.split(":")[0])
        for n in range(self.count):
            self._spawn(self._loop, f"{self.id}:{n}")
        for job in self.background:
            self._spawn(self._periodic, job)

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True,
                                  name=f"launchbay-{target.__name__.strip('_')}")
        thread.start()
        self._threads.append(thread)

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)

    def _periodic(self, job: Periodic) -> None:
        while not self._stop.is_set():
            try:
                if not job.once or periodic.claim(self.ledger.sessions, job.name, job.every,
                                                  self.id):
                    job.task()
                    if job.once:  # a sweep of the store (not a watchdog of each second)
                        heap.trim()
            except Exception:  # a failed sweep must not end the sweeper
                log.exception("background job %s failed", job.name)
            self._stop.wait(job.every)

    def _loop(self, worker_id: str) -> None:
        """Claims and runs work until stopped. Nothing a handler or the store does ends it: an
        item whose outcome could not be recorded is taken up again when its lease expires."""
        worked, wait = False, self.poll
        while not self._stop.is_set():
            try:
                item = self.ledger.claim(worker_id, tuple(k for k in KINDS if k in self.handlers))
                if item is not None:
                    self.execute(item, worker_id)
                    worked, wait = True, self.poll
            except Exception:
                log.exception("worker %s: the work could not be run or recorded", worker_id)
                item = None
            if item is None:
                if worked:  # the queue is empty: what the work took goes back
                    heap.trim()
                    worked = False
                # Work enqueued here wakes the workers at once; the store is asked less and
                # less often while it has nothing (for work of other control planes, and
                # retries that come due), up to IDLE_POLL apart.
                if self._wake.wait(wait):
                    wait = self.poll
                else:
                    wait = max(self.poll, min(IDLE_POLL, wait * 2))
                self._wake.clear()

    def execute(self, item: OperatorWork, worker_id: str) -> None:
        handler = self.handlers[item.kind]
        if item.attempts > item.max_attempts:  # reclaimed after its workers died, too often
            message = f"gave up after {item.max_attempts} attempts whose workers stopped"
            if self.ledger.fail(item.id, worker_id, "worker-lost", message,
                                retriable=False) == WorkStatus.FAILED:
                handler.give_up(item, "worker-lost", message)
            return
        job = Job(item, worker_id, self.ledger)
        beat = threading.Event()
        heartbeat = threading.Thread(target=self._heartbeat, args=(job, beat), daemon=True)
        heartbeat.start()
        try:
            status = WorkStatus(handler.run(job))  # a handler answers a final status
            self.ledger.finish(item.id, worker_id, status)
        except Defer as wait:
            self.ledger.defer(item.id, worker_id, wait.seconds, wait.step)
        except Refused as refusal:
            if self.ledger.fail(item.id, worker_id, refusal.code, refusal.message,
                                retriable=False) == WorkStatus.FAILED:
                handler.give_up(item, refusal.code, refusal.message)
        except Retry as failure:
            if self.ledger.fail(item.id, worker_id, failure.code, failure.message,
                                retriable=True) == WorkStatus.FAILED:
                handler.give_up(item, failure.code, failure.message)
        except Exception as exc:
            log.exception("work %s (%s) failed", item.id, item.kind)
            message = f"{type(exc).__name__}: {exc}"
            if self.ledger.fail(item.id, worker_id, "internal", message,
                                retriable=False) == WorkStatus.FAILED:
                handler.give_up(item, "internal", message)
        finally:
            beat.set()
            heartbeat.join(5)

    def _heartbeat(self, job: Job, done: threading.Event) -> None:
        while not done.wait(self.lease / 3):
            job.progress()
