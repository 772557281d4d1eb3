"""Runtime targets: the Docker engine of each server."""

from __future__ import annotations

import threading

from sqlalchemy.orm import sessionmaker

from launchbay.drivers.docker_engine import DockerEngine
from launchbay.store.models import Server


class Targets:
    def __init__(self, sessions: sessionmaker):
        self.sessions = sessions
        self._engines: dict[str, DockerEngine] = {}
        self._lock = threading.Lock()

    def docker(self, server_id: str) -> DockerEngine:
        with self._lock:
            if server_id not in self._engines:
                with self.sessions() as db:
                    server = db.get_one(Server, server_id)
                    self._engines[server_id] = DockerEngine(server.docker_url)
            return self._engines[server_id]

    def server_ids(self) -> list[str]:
        with self.sessions() as db:
            return [s.id for s in db.query(Server).filter(Server.lifecycle_status == "active")]

    def close(self) -> None:
        for engine in self._engines.values():
            engine.close()
