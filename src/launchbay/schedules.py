"""Schedules: a 5-field cron expression (or `@hourly`, `@daily`, `@weekly`, `@monthly`) in an
IANA time zone, `@every 30s` (`s`, `m` or `h`; fires at multiples of the period since the
epoch, so every control plane agrees on them), or every N hours. Cron fire times come from
cronsim, which follows the zone's daylight-saving changes (a time that does not exist that
day fires at the next one that does; one that happens twice fires once)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

ALIASES = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@weekly": "0 0 * * 0",
           "@monthly": "0 0 1 * *"}
EVERY = re.compile(r"^@every\s+(\d{1,7})([smh])$")
UNIT = {"s": 1, "m": 60, "h": 3600}


def period(expression: str) -> int | None:
    """The seconds of an `@every` schedule; None for a cron expression."""
    found = EVERY.match(expression.strip())
    return int(found[1]) * UNIT[found[2]] if found else None


def problem(expression: str | None, zone: str) -> str | None:
    """What is wrong with a schedule, in words; None when it is valid."""
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {zone!r}"
    if expression is not None and (every := period(expression)) is not None:
        return None if 1 <= every <= 31 * 86400 else \
            f"@every takes 1 second to 31 days, not {expression!r}"
    if expression is not None:
        try:
            CronSim(ALIASES.get(expression, expression), datetime.now(timezone.utc))
        except CronSimError as exc:
            return f"invalid cron expression {expression!r}: {exc}"
    return None


def next_fire(expression: str | None, zone: str, interval_hours: int | None,
              after: datetime) -> datetime:
    """The first fire time strictly after `after` (aware, UTC)."""
    if expression is None:
        return after + timedelta(hours=interval_hours or 24)
    if (every := period(expression)) is not None:
        at = (int(after.timestamp()) // every + 1) * every
        return datetime.fromtimestamp(at, timezone.utc)
    local = after.astimezone(ZoneInfo(zone))
    return next(CronSim(ALIASES.get(expression, expression), local)).astimezone(timezone.utc)


def upcoming(expression: str | None, zone: str, interval_hours: int | None, after: datetime,
             count: int = 5) -> list[datetime]:
    times: list[datetime] = []
    for _ in range(count):
        after = next_fire(expression, zone, interval_hours, after)
        times.append(after)
    return times
