"""Errors an operation raises; every face renders them in its own documented shape."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class OperationError(Exception):
    status = 400
    code = "bad_request"

    def __init__(
        self, message: str, *, code: str | None = None, details: Any = None, commit: bool = False
    ):
        super().__init__(message)
        self.message = message
        self.code = code or self.code
        self.details = details if details is not None else {}
        # Keep the work done before the refusal (e.g. a failed-login counter), not the audit.
        self.commit = commit


class Invalid(OperationError):
    status, code = 400, "validation_failed"


class Unauthenticated(OperationError):
    status, code = 401, "unauthenticated"


class Forbidden(OperationError):
    status, code = 403, "forbidden"


class NotFound(OperationError):
    status, code = 404, "not_found"


class Conflict(OperationError):
    status, code = 409, "conflict"


class TooLarge(OperationError):
    status, code = 413, "payload_too_large"


class Unavailable(OperationError):
    """A service launchbay drives (Docker, Caddy) failed to do what was asked."""

    status, code = 503, "unavailable"


class RateLimited(OperationError):
    status, code = 429, "rate_limited"


class NotYet(Conflict):
    """What the operation decides cannot be known yet (a commit's checks still run): asked
    again in `seconds`, it may be. Work run by the engine waits that long; a person gets 409."""

    code = "not_yet"

    def __init__(self, message: str, seconds: float, **kw: Any):
        super().__init__(message, **kw)
        self.seconds = seconds


def validation_failed(errors: Sequence[Mapping[str, Any]]) -> Invalid:
    """Turns pydantic's error list into `{field, message}` details."""
    details = [
        {
            "field": ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query"))
            or "body",
            "message": err.get("msg", "invalid"),
        }
        for err in errors
    ]
    return Invalid("Validation failed", details=details)
