"""Timestamps on the wire: RFC 3339 in UTC with a `Z`."""

from __future__ import annotations

from datetime import datetime, timezone


def iso(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def iso_seconds(value: datetime) -> str:
    """To the second, as the compatible faces' clients expect (`2026-01-15T16:00:00Z`)."""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
