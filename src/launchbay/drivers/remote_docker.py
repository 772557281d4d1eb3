"""The Docker engine of a server reached over SSH: the local driver, talking to the socket an
SSH tunnel forwards to the server's own `/var/run/docker.sock` (the Docker SDK's `ssh://`
transport takes no key per client and runs the system's ssh; see docs/decisions.md).

Every use first makes sure the tunnel is up against the pinned host key, so a server that
cannot be reached says why (`ServerUnreachable.failure`) instead of a bare connection error.
"""

from __future__ import annotations

import docker

from launchbay.drivers.docker_engine import DockerEngine, DockerException
from launchbay.drivers.ssh_transport import Tunnel, Unreachable

# Failures no retry mends: somebody has to re-pin the host key or fix the credential.
PERMANENT = frozenset({"host-key-mismatch", "auth"})


class ServerUnreachable(DockerException):
    def __init__(self, failure: str, message: str):
        super().__init__(message)
        self.failure, self.message = failure, message

    @property
    def permanent(self) -> bool:
        return self.failure in PERMANENT


class RemoteDockerEngine(DockerEngine):
    def __init__(self, tunnel: Tunnel, timeout: int = 60):
        super().__init__(f"unix://{tunnel.unix_socket()}", timeout)
        self.tunnel = tunnel

    @property
    def client(self) -> docker.DockerClient:
        try:
            self.tunnel.ensure()
        except Unreachable as exc:
            raise ServerUnreachable(exc.failure, exc.message) from None
        return super().client

    def reach(self, port: int) -> str:
        return f"127.0.0.1:{self.tunnel.port(port)}"

    def close(self) -> None:
        super().close()
        self.tunnel.close()
