"""Schedules: a 5-field cron expression (or `@hourly`, `@daily`, `@weekly`, `@monthly`) in an
IANA time zone, or every N hours. Fire times come from cronsim, which follows the zone's
daylight-saving changes (a time that does not exist that day fires at the next one that
does; one that happens twice fires once)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

ALIASES = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@weekly": "0 0 * * 0",
           "@monthly": "0 0 1 * *"}


def problem(expression: str | None, zone: str) -> str | None:
    """What is wrong with a schedule, in words; None when it is valid."""
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {zone!r}"
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
    local = after.astimezone(ZoneInfo(zone))
    return next(CronSim(ALIASES.get(expression, expression), local)).astimezone(timezone.utc)


def upcoming(expression: str | None, zone: str, interval_hours: int | None, after: datetime,
             count: int = 5) -> list[datetime]:
    times: list[datetime] = []
    for _ in range(count):
        after = next_fire(expression, zone, interval_hours, after)
        times.append(after)
    return times
