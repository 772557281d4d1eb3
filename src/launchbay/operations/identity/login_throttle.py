"""Slowing down password guessing in a way that holds under concurrency.

Every attempt is counted before its password is checked, by one atomic upsert per key (the
e-mail address, and the client's address across e-mail addresses), committed at once; so a
burst of concurrent attempts gets at most the limit of password checks, and the rest are
refused (429) without one. Over the limit, the key is locked for a time that doubles with each
lock-out. A right password forgets the attempts only if nothing was attempted since, and never
lifts a lock: a correct password in the middle of a guessing burst does not reopen it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, case, null, or_, update
from sqlalchemy.orm import Session as DbSession

from launchbay.settings import Settings
from launchbay.store.db import changed, upsert
from launchbay.store.models import LoginThrottle, utcnow

MAX_LOCK_SECONDS = 3600


@dataclass
class Attempt:
    key: str
    number: int  # this attempt's place among the key's attempts in the window
    wait_seconds: float | None  # None: the password may be checked


def keys(email: str, address: str | None, settings: Settings) -> list[tuple[str, int]]:
    """The keys an attempt counts against, with their limits."""
    found = [(f"email:{email}", settings.login_max_failures)]
    if address:
        found.append((f"address:{address}", settings.login_max_failures_per_address))
    return found


def count(db: DbSession, key: str, limit: int, settings: Settings) -> Attempt:
    """Counts one attempt for `key` (in the caller's transaction, which should commit before
    the password is checked)."""
    now = utcnow()
    t = LoginThrottle
    lock_over = and_(t.locked_until.is_not(None), t.locked_until <= now)
    quiet = and_(t.locked_until.is_(None),
                 t.updated_at < now - timedelta(seconds=settings.login_window_seconds))
    statement = upsert(db, t).values(key=key, failures=1, lockouts=0, updated_at=now) \
        .on_conflict_do_update(index_elements=[t.key], set_={
            "failures": case((or_(lock_over, quiet), 1), else_=t.failures + 1),
            "locked_until": case((lock_over, null()), else_=t.locked_until),
            "lockouts": case((quiet, 0), else_=t.lockouts),
            "updated_at": now,
        }).returning(t.failures, t.locked_until, t.lockouts)
    number, locked_until, lockouts = db.execute(statement).one()
    if locked_until is not None and locked_until > now:
        return Attempt(key, number, _seconds(locked_until, now))
    if number <= limit:
        return Attempt(key, number, None)
    seconds = min(settings.login_lockout_seconds * 2 ** lockouts, MAX_LOCK_SECONDS)
    db.execute(update(t).where(t.key == key, t.locked_until.is_(None))
               .values(locked_until=now + timedelta(seconds=seconds), lockouts=t.lockouts + 1))
    return Attempt(key, number, seconds)


def forgive(db: DbSession, attempt: Attempt) -> None:
    """After a right password: the key's attempts are forgotten if none came after this one
    and no lock is on; else only this attempt is."""
    t = LoginThrottle
    cleared = changed(db, update(t).where(
        t.key == attempt.key, t.failures == attempt.number, t.locked_until.is_(None))
        .values(failures=0, lockouts=0))
    if not cleared:
        db.execute(update(t).where(t.key == attempt.key, t.failures > 0)
                   .values(failures=t.failures - 1))


def _seconds(until: datetime, now: datetime) -> float:
    return max((until - now).total_seconds(), 1)
