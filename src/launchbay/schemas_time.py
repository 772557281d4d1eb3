"""Timestamps on the wire: RFC 3339 in UTC with a `Z`."""

from __future__ import annotations

from datetime import datetime, timezone


def iso(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
