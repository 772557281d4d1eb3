"""Runtime targets: the runtime of each server (today its Docker engine, at the server's
`docker_url`; remote and Swarm runtimes are handed out here too)."""

from __future__ import annotations

import threading

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from launchbay.engine.runtime import Runtime, connect
from launchbay.store.models import LifecycleStatus, Server


class Targets:
    def __init__(self, sessions: sessionmaker):
        self.sessions = sessions
        self._engines: dict[str, Runtime] = {}
        self._lock = threading.Lock()

    def of(self, server_id: str) -> Runtime:
        """The runtime of the server `server_id` (one connection per server, kept)."""
        with self._lock:
            if server_id not in self._engines:
                with self.sessions() as db:
                    server = db.get_one(Server, server_id)
                    self._engines[server_id] = connect(server.docker_url)
            return self._engines[server_id]

    def server_ids(self) -> list[str]:
        with self.sessions() as db:
            return list(db.scalars(select(Server.id).where(
                Server.lifecycle_status == LifecycleStatus.ACTIVE)))

    def close(self) -> None:
        for engine in self._engines.values():
            engine.close()
