"""The control plane as one object: settings, store, operations. Faces and the CLI's `serve`
build one and call nothing else."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from launchbay.operations import Actor, Operations
from launchbay.operations.identity import authenticate
from launchbay.settings import Settings
from launchbay.store.db import make_engine, make_sessionmaker
from launchbay.store.migrate import is_current, upgrade


class ControlPlane:
    def __init__(self, settings: Settings, *, migrate: bool = True):
        self.settings = settings
        self.engine = make_engine(settings.resolved_database_url)
        if migrate:
            upgrade(self.engine)
        self.sessions = make_sessionmaker(self.engine)
        self.ops = Operations(settings, self.sessions)

    def authenticate(self, secret: str) -> Actor | None:
        return authenticate(self.sessions, secret)

    def readiness(self) -> dict[str, Any]:
        """Whether the store answers and is at the newest migration."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # any driver error means not ready
            return {"ready": False, "database": f"unreachable: {type(exc).__name__}"}
        if not is_current(self.engine):
            return {"ready": False, "database": "ok", "migrations": "pending"}
        return {"ready": True, "database": "ok", "migrations": "current"}

    def close(self) -> None:
        self.engine.dispose()
