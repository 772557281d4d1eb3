"""Runtime targets: the runtime of each server. The local engine is reached at the server's
`docker_url`; a server reached over SSH through one long-lived connection, made again (and
its runtime with it) when an admin changes what it is reached with: its address, user,
credential (rotated too) or pinned host key."""

from __future__ import annotations

import threading

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from launchbay.crypto import SecretBox
from launchbay.drivers.remote_docker import RemoteDockerEngine
from launchbay.drivers.ssh_transport import Target, Tunnel
from launchbay.engine.runtime import (
    Runtime,
    ServerUnreachable,
    SwarmManager,
    connect,
    connect_over_ssh,
)
from launchbay.store.models import LifecycleStatus, Server, SshCredential


class Targets:
    def __init__(self, sessions: sessionmaker, secrets: SecretBox, ssh_timeout: float = 10):
        self.sessions, self.secrets, self.ssh_timeout = sessions, secrets, ssh_timeout
        # By server id (a swarm's other nodes: `server@address`)
        self._engines: dict[str, tuple[tuple[str | None, ...], Runtime]] = {}
        self._lock = threading.Lock()
        self._local: str | None = None

    def of(self, server_id: str) -> Runtime:
        """The runtime of the server `server_id` (one connection per server, kept)."""
        with self._lock:
            kept = self._engines.get(server_id)
            if kept is not None and kept[0] == ("local",):
                return kept[1]
            with self.sessions() as db:
                server = db.get_one(Server, server_id)
                if server.credential_id is None:
                    engine = kept[1] if kept else connect(server.docker_url)
                    self._engines[server_id] = (("local",), engine)
                    return engine
                credential = db.get_one(SshCredential, server.credential_id)
                reached_with = (server.host, str(server.port), server.ssh_username,
                                credential.sealed_private_key, server.host_public_key,
                                server.provider_key)
                if kept is not None and kept[0] == reached_with:
                    return kept[1]
                target = Target(server.host, server.port, server.ssh_username or "root",
                                self.secrets.decrypt(credential.sealed_private_key),
                                server.host_public_key)
            if kept is not None:
                kept[1].close()
            engine = connect_over_ssh(target, self.ssh_timeout,
                                      swarm=reached_with[-1] == "docker-swarm")
            self._engines[server_id] = (reached_with, engine)
            return engine

    def nodes(self, server_id: str) -> list[tuple[str, Runtime]]:
        """The swarm's ready nodes but its manager: (address, runtime), each reached through
        the manager's SSH server with the same user and key, against the host key pinned for
        it (a node with none pinned is refused: ServerUnreachable)."""
        manager = self.of(server_id)
        assert isinstance(manager, SwarmManager), f"{server_id} is not a swarm manager"
        with self.sessions() as db:
            pinned = dict(db.get_one(Server, server_id).node_host_keys or {})
        jump = manager.tunnel.target
        found = []
        for address in manager.other_nodes():
            if address not in pinned:
                raise ServerUnreachable("host-key-mismatch", f"the host key of node {address} "
                                        "is not pinned: pin the server's host keys again once "
                                        "you trust the new node")
            key = f"{server_id}@{address}"
            reached_with = (jump.host, str(jump.port), jump.username, jump.private_key,
                            jump.pinned_host_key, pinned[address])
            with self._lock:
                kept = self._engines.get(key)
                if kept is None or kept[0] != reached_with:
                    if kept is not None:
                        kept[1].close()
                    kept = (reached_with, connect_over_ssh(Target(
                        address, 22, jump.username, jump.private_key, pinned[address],
                        jump=jump), self.ssh_timeout))
                    self._engines[key] = kept
            found.append((address, kept[1]))
        return found

    def tunnel(self, server_id: str) -> Tunnel:
        """The SSH tunnel of a server reached over SSH (its edge proxy's admin API goes
        through it too)."""
        runtime = self.of(server_id)
        assert isinstance(runtime, RemoteDockerEngine), f"{server_id} is not reached over SSH"
        return runtime.tunnel

    def local_id(self) -> str:
        """The control plane's own server: where images other servers lack may come from."""
        if self._local is None:
            with self.sessions() as db:
                self._local = db.scalars(select(Server.id).where(
                    Server.organization_id.is_(None), Server.credential_id.is_(None))
                    .order_by(Server.created_at)).first()
        assert self._local is not None, "the local server is registered on first start"
        return self._local

    def server_ids(self) -> list[str]:
        with self.sessions() as db:
            return list(db.scalars(select(Server.id).where(
                Server.lifecycle_status == LifecycleStatus.ACTIVE)))

    def close(self) -> None:
        with self._lock:
            for _, engine in self._engines.values():
                engine.close()
            self._engines.clear()
