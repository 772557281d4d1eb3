"""The runtime: what the engine starts, stops, inspects and reads on a server, and the one
interface it does so through. Releases, runtime controls, health, the reconciler, builds and
image admission use `Runtime` and the shapes below, never a driver: the Docker engine
(`drivers/docker_engine.py`, reached at a socket or URL) is the first implementation, and
Docker over SSH and a Swarm manager (`drivers/swarm.py`: a release is a service, which it
presents as a container) are others that `engine/targets.py` can hand out without
changing that code.

A runtime's failures are `RuntimeFailure` (the engine unreachable, a refused request);
`RuntimeRefused` is the runtime saying no to a request (a bad plan, a name taken);
`ImageMissing`, an image it does not have; `ServerUnreachable`, a server reached over SSH
that cannot be (its `failure` says why, `permanent` when no retry mends it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, BinaryIO, Protocol

from launchbay.drivers.docker_engine import (
    APIError as RuntimeRefused,
)
from launchbay.drivers.docker_engine import (
    BuildError,
    ContainerInfo,
    ContainerSpec,
    DockerEngine,
    ImageBuild,
    ImageInfo,
    LogLine,
)
from launchbay.drivers.docker_engine import (
    DockerException as RuntimeFailure,
)
from launchbay.drivers.docker_engine import (
    ImageNotFound as ImageMissing,
)
from launchbay.drivers.remote_docker import RemoteDockerEngine, ServerUnreachable
from launchbay.drivers.ssh_transport import Target, Tunnel
from launchbay.drivers.swarm import SERVICE, ServiceSpec, ServiceState, SwarmManager

__all__ = ["BuildError", "ContainerInfo", "ContainerSpec", "ImageBuild", "ImageInfo",
           "ImageMissing", "LogLine", "Runtime", "RuntimeFailure", "RuntimeRefused",
           "SERVICE", "ServerUnreachable", "ServiceSpec", "ServiceState", "SwarmManager", "connect",
           "connect_over_ssh"]


class Runtime(Protocol):
    """One server's container runtime. Everything launchbay creates carries `launchbay.*`
    labels; the `**labels` filters select by them."""

    def ping(self) -> bool: ...

    # Images
    def image(self, ref: str) -> ImageInfo | None: ...
    def image_id(self, ref: str) -> str | None: ...
    def current_image_id(self, ref: str) -> str | None: ...
    def pull(self, ref: str) -> str: ...
    def build(self, spec: ImageBuild) -> Iterator[str]: ...
    def built_tags(self) -> list[str]: ...  # every `lb/...` tag
    def remove_image(self, ref: str) -> bool: ...
    def dangling_images(self) -> list[tuple[str, int]]: ...
    def prune_build_cache(self) -> int: ...
    def disk_usage(self) -> dict[str, Any]: ...
    def export(self, ref: str) -> Iterator[bytes]: ...  # `docker save`, streamed
    def load(self, chunks: Iterator[bytes]) -> None: ...  # `docker load`, streamed

    # Networks and volumes
    def ensure_network(self, name: str, labels: dict[str, str]) -> str: ...  # its id
    def networks(self, **labels: str) -> list[tuple[str, dict[str, str], int]]: ...
    def remove_network(self, name: str) -> None: ...
    def ensure_volume(self, name: str, labels: dict[str, str]) -> None: ...
    def remove_volume(self, name: str) -> None: ...
    def volume_created(self, name: str) -> datetime | None: ...  # None: there is none
    def volume_users(self, name: str) -> list[str]: ...  # the containers (any state) using it

    # Containers
    def run(self, spec: ContainerSpec) -> ContainerInfo: ...
    def run_to_end(self, spec: ContainerSpec, *, stdin: BinaryIO | None = None,
                   stdout: Callable[[bytes], None] | None = None,
                   timeout: float = 3600) -> tuple[int, str]: ...  # (exit code, stderr)
    def inspect(self, container_id: str) -> ContainerInfo | None: ...
    def containers(self, **labels: str) -> list[ContainerInfo]: ...
    def stop(self, container_id: str, timeout: int = 10) -> None: ...
    def start(self, container_id: str) -> None: ...
    def restart(self, container_id: str, timeout: int = 10) -> None: ...
    def remove(self, container_id: str) -> None: ...
    def logs(self, container_id: str, tail: int = 100,
             since: datetime | None = None) -> list[LogLine]: ...
    def follow(self, container_id: str, tail: int = 0, stop: threading.Event | None = None,
               since: datetime | None = None) -> Iterator[LogLine]: ...
    def stats(self, container_id: str) -> dict[str, Any]: ...
    def events(self, since: datetime, **labels: str) -> list[dict[str, Any]]: ...
    def reach(self, port: int) -> str: ...  # `host:port` where the control plane reaches a
    # port the runtime published on its server's loopback

    def close(self) -> None: ...


def connect(url: str | None) -> Runtime:
    """The runtime of a server whose engine answers at `url` (a Docker socket or URL)."""
    return DockerEngine(url)


def connect_over_ssh(target: Target, timeout: float = 10, swarm: bool = False) -> Runtime:
    """The runtime of a server reached over SSH (its Docker engine, through one long-lived
    connection that checks the pinned host key); `swarm`: the server is a Swarm manager, whose
    releases are services."""
    return (SwarmManager if swarm else RemoteDockerEngine)(Tunnel(target, timeout))
