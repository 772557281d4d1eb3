"""The Docker engine driver: containers, networks, volumes and logs of one engine.

It knows nothing of HTTP or the store. Everything it creates carries the `launchbay.*`
labels, so that launchbay can always tell its containers from anybody else's. It never
removes a named volume except through `remove_volume`.
"""

from __future__ import annotations

import functools
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.utils.socket import frames_iter

MANAGED = "launchbay.managed"

__all__ = ["APIError", "BuildError", "ContainerSpec", "DockerEngine", "DockerException",
           "ImageBuild", "ImageInfo", "ImageNotFound", "LogLine"]


class BuildError(Exception):
    """A build that did not produce its image; the message is the builder's last words."""


@dataclass
class ImageBuild:
    """One `docker build`: plain `args` are build arguments (they may show in the image's
    history, like any build argument); `secrets` are BuildKit secrets (files a `RUN
    --mount=type=secret,id=KEY` step reads, never written to a layer or the history)."""

    context: Path
    dockerfile: str
    tag: str
    args: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    timeout_seconds: float = 1800


@dataclass
class ContainerSpec:
    name: str
    image: str
    labels: dict[str, str]
    network: str
    aliases: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    command: list[str] | None = None
    internal_port: int | None = None
    cpu_limit: float | None = None
    memory_limit_mb: int | None = None
    volumes: list[tuple[str, str, str]] = field(default_factory=list)  # (name, path, rw|ro)
    restart_policy: str = "unless-stopped"
    networks: dict[str, list[str]] = field(default_factory=dict)  # more networks: aliases
    # An init process as PID 1 forwards signals (so SIGTERM stops the app at once) and reaps
    # zombies; without it many apps ignore SIGTERM and every stop waits out its timeout.
    init: bool = True


@dataclass
class ContainerInfo:
    id: str
    name: str
    status: str  # created | running | exited | ...
    labels: dict[str, str]
    host_port: int | None
    exit_code: int | None
    oom_killed: bool = False
    image_id: str | None = None


@dataclass(frozen=True)
class ImageInfo:
    id: str
    labels: dict[str, str]
    onbuild: list[str]  # the image's ONBUILD triggers (they run in builds FROM it)


@dataclass
class LogLine:
    timestamp: datetime
    stream: str  # stdout | stderr
    message: str
    masked: bool = False  # secret values were taken out of `message`


class DockerEngine:
    # The networks it makes (a swarm's span its nodes)
    network_options: dict[str, Any] = {"driver": "bridge"}

    def __init__(self, url: str | None = None, timeout: int = 60):
        self.url = url or "unix:///var/run/docker.sock"
        self._timeout = timeout
        self._client: docker.DockerClient | None = None

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = docker.DockerClient(base_url=self.url, timeout=self._timeout)
        return self._client

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except (DockerException, OSError):
            return False

    def image_id(self, ref: str) -> str | None:
        """The local image's id, or None when the engine does not have it."""
        try:
            return self.client.images.get(ref).id
        except ImageNotFound:
            return None

    def image(self, ref: str) -> ImageInfo | None:
        """The local image `ref` names, or None when the engine does not have it."""
        try:
            image = self.client.images.get(ref)
        except ImageNotFound:
            return None
        config = image.attrs.get("Config") or {}
        return ImageInfo(id=str(image.id), labels=dict(image.labels or {}),
                         onbuild=list(config.get("OnBuild") or []))

    def current_image_id(self, ref: str) -> str | None:
        """The image `ref` names now: pulled again first when it came from a registry that
        now has another digest for it (unreachable registry: the local one)."""
        try:
            image = self.client.images.get(ref)
        except ImageNotFound:
            return None
        pulled = {d.partition("@")[2] for d in image.attrs.get("RepoDigests") or []}
        if pulled:
            try:
                if self.client.images.get_registry_data(ref).id not in pulled:
                    return self.pull(ref)
            except (DockerException, OSError):
                pass
        return image.id

    def pull(self, ref: str) -> str:
        """Pulls `name[:tag]` or `name@digest` (with the engine's registry credentials); the
        image's id."""
        return str(self.client.images.pull(ref).id)

    def build(self, spec: ImageBuild) -> Iterator[str]:
        """Builds an image with BuildKit, yielding the builder's output line by line.

        Through the docker CLI: the SDK speaks only the legacy builder, which has no secret
        mounts (a secret passed to it stays in the image). Secrets reach the CLI as files in a
        private folder removed after the build; build arguments through its environment."""
        with tempfile.TemporaryDirectory(prefix="launchbay-build-") as folder:
            command = [*_buildkit_cli(), "--progress=plain", "--file",
                       str(spec.context / spec.dockerfile), "--tag", spec.tag]
            env = {**os.environ, "DOCKER_BUILDKIT": "1", "DOCKER_HOST": self.url}
            for key, value in spec.args.items():  # `--build-arg KEY` takes KEY's value from env
                env[key] = value
                command += ["--build-arg", key]
            for n, (key, value) in enumerate(spec.secrets.items()):
                path = Path(folder) / f"secret-{n}"
                path.touch(mode=0o600)
                path.write_text(value)
                command += ["--secret", f"id={key},src={path}"]
            for key, value in spec.labels.items():
                command += ["--label", f"{key}={value}"]
            if spec.target:
                command += ["--target", spec.target]
            command.append(str(spec.context))
            yield from _run_build(command, env, spec.timeout_seconds)

    # Docker accepts several networks of one name, and every use of the name is then
    # ambiguous: a container would not even start. Creators in this process take turns; those
    # of other processes (a separate `launchbay worker`) all keep the same one.
    _creating = threading.Lock()

    def ensure_network(self, name: str, labels: dict[str, str]) -> str:
        """The id of the network `name`, created if missing. Of duplicates (left by creators
        in another process), the one in use, else the oldest, is kept and the others go."""
        with self._creating:
            found = self._named(name)
            if not found:
                try:
                    self.client.networks.create(name, labels={MANAGED: "true", **labels},
                                                **self.network_options)
                except APIError as exc:  # created concurrently
                    if exc.status_code != 409:
                        raise
                found = self._named(name)
        keep, *extra = sorted(found, key=lambda n: (not n.attrs.get("Containers"),
                                                    n.attrs.get("Created", ""), n.id))
        for network in extra:
            try:
                network.remove()
            except APIError:  # in use, or removed by another creator: the next call retries
                pass
        return str(keep.id)

    def _named(self, name: str) -> list[Any]:
        """The networks called exactly `name` (Docker's filter also matches prefixes)."""
        return [self.client.networks.get(n.id) for n in self.client.networks.list(names=[name])
                if n.name == name]

    def networks(self, **labels: str) -> list[tuple[str, dict[str, str], int]]:
        """launchbay's networks with the given labels: (name, labels, attached containers)."""
        filters = [f"{MANAGED}=true"] + [f"{k}={v}" for k, v in labels.items()]
        return [(n.name, n.attrs.get("Labels") or {}, len(n.attrs.get("Containers") or {}))
                for n in (self.client.networks.get(n.id) for n in self.client.networks.list(
                    filters={"label": filters}))]

    def remove_network(self, name: str) -> None:
        try:
            self.client.networks.get(name).remove()
        except NotFound:
            pass

    def ensure_volume(self, name: str, labels: dict[str, str]) -> None:
        try:
            self.client.volumes.get(name)
        except NotFound:
            self.client.volumes.create(name, labels={MANAGED: "true", **labels})

    def remove_volume(self, name: str) -> None:
        """Deletes a volume and its data: only for an explicit delete of that volume."""
        try:
            self.client.volumes.get(name).remove()
        except NotFound:
            pass

    def volume_created(self, name: str) -> datetime | None:
        try:
            created = self.client.volumes.get(name).attrs.get("CreatedAt") or ""
        except NotFound:
            return None
        return datetime.fromisoformat(created.replace("Z", "+00:00")).astimezone(timezone.utc)

    def volume_users(self, name: str) -> list[str]:
        return [c.id for c in self.client.containers.list(
            all=True, filters={"volume": name}, ignore_removed=True)]

    def run(self, spec: ContainerSpec) -> ContainerInfo:
        """Creates and starts a container; its port is published on a free loopback port."""
        kwargs: dict = {}
        if spec.internal_port:
            kwargs["ports"] = {f"{spec.internal_port}/tcp": ("127.0.0.1", None)}
        if spec.cpu_limit:
            kwargs["nano_cpus"] = int(spec.cpu_limit * 1e9)
        if spec.memory_limit_mb:
            kwargs["mem_limit"] = f"{spec.memory_limit_mb}m"
        if spec.volumes:
            kwargs["volumes"] = {name: {"bind": path, "mode": "ro" if mode == "ro" else "rw"}
                                 for name, path, mode in spec.volumes}
        endpoint = self.client.api.create_endpoint_config(aliases=spec.aliases or None)
        container = self.client.containers.create(
            spec.image, command=spec.command, name=spec.name, detach=True,
            labels={MANAGED: "true", **spec.labels}, environment=spec.env,
            restart_policy={"Name": spec.restart_policy}, network=spec.network,
            networking_config={spec.network: endpoint}, init=spec.init, **kwargs,
        )
        for network, aliases in spec.networks.items():
            self.client.networks.get(network).connect(container, aliases=aliases or None)
        container.start()
        return self.inspect(container.id)  # type: ignore[return-value]  # inspect of a container just created is never None

    def run_to_end(self, spec: ContainerSpec, *, stdin: BinaryIO | None = None,
                   stdout: Callable[[bytes], None] | None = None,
                   timeout: float = 3600) -> tuple[int, str]:
        """Runs a one-off container to its end and removes it: `stdin` is streamed in, its
        standard output handed to `stdout` as it comes (never held whole in memory). Answers
        its exit code (-1: killed at `timeout`) and the tail of its standard error. Its
        environment is the only way in for secrets: never its command line."""
        api = self.client.api
        # Docker removes it when it ends, even if this process is killed meanwhile.
        host = api.create_host_config(network_mode=spec.network, init=spec.init, auto_remove=True,
                                      mem_limit=f"{spec.memory_limit_mb}m"
                                      if spec.memory_limit_mb else None,
                                      binds={name: {"bind": path, "mode": mode}
                                             for name, path, mode in spec.volumes} or None)
        container = api.create_container(
            spec.image, command=spec.command, name=spec.name, environment=spec.env,
            labels={MANAGED: "true", **spec.labels}, host_config=host,
            stdin_open=stdin is not None)["Id"]
        killed = threading.Event()

        def kill() -> None:
            killed.set()
            try:
                api.kill(container)
            except APIError:
                pass

        timer = threading.Timer(timeout, kill)
        exited: list[int] = []  # asked before it starts: it may be gone once it ended
        waiter = threading.Thread(target=lambda: exited.append(int(api.wait(
            container, timeout=timeout + 60, condition="next-exit")["StatusCode"])), daemon=True)
        try:
            sock = api.attach_socket(container, params={
                "stdin": int(stdin is not None), "stdout": 1, "stderr": 1, "stream": 1})
            waiter.start()
            time.sleep(0.05)  # the wait request is registered before the start
            api.start(container)
            timer.start()
            raw = getattr(sock, "_sock", sock)
            if stdin is not None:
                threading.Thread(target=_feed, args=(raw, stdin), daemon=True).start()
            errors = bytearray()
            for stream, data in frames_iter(sock, tty=False):
                if stream == 1 and stdout is not None:
                    stdout(data)
                elif stream == 2:
                    errors += data
                    del errors[:-8192]
            waiter.join(timeout + 60)
            sock.close()
            code = exited[0] if exited else -1
            return (-1 if killed.is_set() else code), errors.decode(errors="replace")
        finally:
            timer.cancel()
            try:
                api.remove_container(container, force=True)
            except (NotFound, APIError):
                pass

    def inspect(self, container_id: str) -> ContainerInfo | None:
        try:
            container = self.client.containers.get(container_id)
        except NotFound:
            return None
        return _info(container.attrs)

    def containers(self, **labels: str) -> list[ContainerInfo]:
        """launchbay's containers (running or not) carrying all the given labels; from one
        list call, so a container removed meanwhile cannot make it fail."""
        filters = [f"{MANAGED}=true"] + [f"{k}={v}" for k, v in labels.items()]
        return [_listed(c) for c in self.client.api.containers(
            all=True, filters={"label": filters})]

    def stop(self, container_id: str, timeout: int = 10) -> None:
        try:
            self.client.api.stop(container_id, timeout=timeout)
        except NotFound:
            pass
        except APIError as exc:
            if not _concurrent(exc):
                raise

    def start(self, container_id: str) -> None:
        self.client.containers.get(container_id).start()

    def restart(self, container_id: str, timeout: int = 10) -> None:
        self.client.containers.get(container_id).restart(timeout=timeout)

    def remove(self, container_id: str) -> None:
        """Removes a container (anonymous and named volumes stay). Idempotent: a container
        already gone, or being removed by someone else, counts as removed."""
        try:
            self.client.api.remove_container(container_id, force=True, v=False)
        except NotFound:
            pass
        except APIError as exc:
            if not _concurrent(exc):
                raise

    def logs(self, container_id: str, tail: int = 100,
             since: datetime | None = None) -> list[LogLine]:
        """The last `tail` lines of stdout and stderr, oldest first."""
        lines: list[LogLine] = []
        for stream in ("stdout", "stderr"):
            for chunk in self._log_chunks(container_id, stream, False, tail, since):
                lines += [self._log_line(stream, text)
                          for text in chunk.decode(errors="replace").splitlines()]
        lines.sort(key=lambda line: line.timestamp)
        return lines[-tail:] if tail else []

    def _log_chunks(self, container_id: str, stream: str, follow: bool, tail: int,
                    since: datetime | None) -> Iterator[bytes]:
        """The raw log output of one stream (timestamped lines), as chunks."""
        container = self.client.containers.get(container_id)
        said = container.logs(stdout=stream == "stdout", stderr=stream == "stderr",
                              stream=follow, follow=follow, timestamps=True, tail=tail,
                              since=since)
        return said if follow else iter([said])

    def _log_line(self, stream: str, text: str) -> LogLine:
        return _line(stream, text)

    def follow(self, container_id: str, tail: int = 0, stop: threading.Event | None = None,
               since: datetime | None = None) -> Iterator[LogLine]:
        """New lines as the container writes them, until it stops or `stop` is set."""
        sources = {stream: self._log_chunks(container_id, stream, True, tail, since)
                   for stream in ("stdout", "stderr")}
        lines: queue.Queue[LogLine | None] = queue.Queue(maxsize=1000)
        stop = stop or threading.Event()

        def pump(stream: str) -> None:
            try:
                for chunk in sources[stream]:
                    if stop.is_set():
                        break
                    for text in chunk.decode(errors="replace").splitlines():
                        lines.put(self._log_line(stream, text))
            except (DockerException, OSError):
                pass
            finally:
                lines.put(None)

        for stream in ("stdout", "stderr"):
            threading.Thread(target=pump, args=(stream,), daemon=True).start()
        done = 0
        while done < 2 and not stop.is_set():
            try:
                item = lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if item is None:
                done += 1
            else:
                yield item

    def built_tags(self) -> list[str]:
        """Every tag of launchbay's own namespace (`lb/...`) that exists, in one listing."""
        listed = self.client.api.images(filters={"reference": ["lb/*", "lb/*/*"]})
        return sorted({t for i in listed for t in i.get("RepoTags") or [] if t.startswith("lb/")})

    def remove_image(self, ref: str) -> bool:
        """Removes an image by tag or id; False if it is in use or gone."""
        try:
            self.client.api.remove_image(ref)
            return True
        except (NotFound, APIError):
            return False

    def dangling_images(self) -> list[tuple[str, int]]:
        return [(i["Id"], i.get("Size", 0))
                for i in self.client.api.images(filters={"dangling": True})]

    def prune_build_cache(self) -> int:
        """Removes the build cache; the bytes reclaimed."""
        try:
            return int(self.client.api.prune_builds().get("SpaceReclaimed") or 0)
        except APIError:  # a builder without BuildKit has no separate cache
            return 0

    def events(self, since: datetime, **labels: str) -> list[dict]:
        """The engine's recent events (it keeps the last 256) of launchbay's containers with
        all the given labels, oldest first."""
        filters = {"type": ["container"],
                   "label": [f"{MANAGED}=true"] + [f"{k}={v}" for k, v in labels.items()]}
        until = datetime.now(timezone.utc)
        return list(self.client.api.events(since=since, until=until, filters=filters,
                                           decode=True))

    def stats(self, container_id: str) -> dict:
        return self.client.containers.get(container_id).stats(stream=False)

    def disk_usage(self) -> dict:
        return self.client.df()

    def export(self, ref: str) -> Iterator[bytes]:
        """The image as `docker save` writes it, streamed."""
        return iter(self.client.api.get_image(ref, chunk_size=1 << 20))

    def load(self, chunks: Iterator[bytes]) -> None:
        """Loads images `docker save` wrote, streamed (never whole in memory)."""
        for said in self.client.api.load_image(chunks):
            if isinstance(said, dict) and said.get("error"):
                raise DockerException(said["error"])

    def reach(self, port: int) -> str:
        """Where the control plane reaches a port the engine published on its loopback."""
        return f"127.0.0.1:{port}"

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


@functools.cache
def _buildkit_cli() -> tuple[str, ...]:
    """A docker CLI that builds with BuildKit: one with the buildx plugin, else one older than
    23 (where `DOCKER_BUILDKIT=1 docker build` is BuildKit; Debian's docker.io is such)."""
    seen = []
    for exe in (shutil.which("docker"), "/usr/bin/docker", "/usr/local/bin/docker"):
        if not exe or exe in seen or not os.access(exe, os.X_OK):
            continue
        seen.append(exe)
        probe = subprocess.run([exe, "buildx", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return exe, "buildx", "build", "--load"
        version = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
        major = re.search(r"version (\d+)\.", version.stdout)
        if major and int(major[1]) < 23:
            return exe, "build"
    raise BuildError("no docker CLI that builds with BuildKit was found: install the buildx "
                     "plugin (docker-buildx-plugin) or Debian's docker.io")


def _run_build(command: list[str], env: dict[str, str], timeout: float) -> Iterator[str]:
    """The build's output lines; BuildError with its last error lines when it fails, or when
    it takes longer than `timeout` seconds (it is stopped then)."""
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace", start_new_session=True)
    timer = threading.Timer(timeout, lambda: os.killpg(proc.pid, signal.SIGKILL))
    timer.start()
    last: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            if line:
                last = [*last[-20:], line]
                yield line
        code = proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if code == -signal.SIGKILL:
        raise BuildError(f"the build took longer than {timeout:.0f}s")
    if code != 0:
        errors = [line for line in last if "error" in line.lower()] or last[-3:]
        raise BuildError("\n".join(errors[-3:]) or f"the build failed (exit code {code})")


def _feed(raw: Any, source: BinaryIO) -> None:
    """Writes `source` into a container's attached standard input, then closes that side."""
    try:
        while chunk := source.read(1 << 16):
            raw.sendall(chunk)
        raw.shutdown(socket.SHUT_WR)
    except OSError:  # the container ended first: its exit code tells
        pass


def _info(attrs: dict) -> ContainerInfo:
    state = attrs.get("State", {})
    port = None
    for bindings in (attrs.get("NetworkSettings", {}).get("Ports") or {}).values():
        for binding in bindings or []:
            if binding.get("HostIp") in ("127.0.0.1", "0.0.0.0", ""):
                port = int(binding["HostPort"])
                break
    return ContainerInfo(
        id=attrs["Id"], name=attrs.get("Name", "").lstrip("/"), status=state.get("Status", "?"),
        labels=attrs.get("Config", {}).get("Labels") or {}, host_port=port,
        exit_code=state.get("ExitCode"), oom_killed=bool(state.get("OOMKilled")),
        image_id=attrs.get("Image"),
    )


def _concurrent(exc: APIError) -> bool:
    """Whether the engine refused only because another caller is already doing the same."""
    text = str(exc.explanation or exc).lower()
    return exc.status_code == 409 and ("in progress" in text or "is not running" in text)


def _listed(entry: dict) -> ContainerInfo:
    """A container as the engine's list call describes it."""
    port = next((p.get("PublicPort") for p in entry.get("Ports") or []
                 if p.get("PublicPort") and p.get("IP") in ("127.0.0.1", "0.0.0.0")), None)
    exited = re.match(r"Exited \((-?\d+)\)", entry.get("Status", ""))
    return ContainerInfo(
        id=entry["Id"], name=(entry.get("Names") or ["/"])[0].lstrip("/"),
        status=entry.get("State", "?"), labels=entry.get("Labels") or {}, host_port=port,
        exit_code=int(exited.group(1)) if exited else None, image_id=entry.get("ImageID"))


def _line(stream: str, text: str) -> LogLine:
    stamp, _, message = text.partition(" ")
    try:
        when = datetime.fromisoformat(stamp[:26].rstrip("Z") + "+00:00")
    except ValueError:
        when, message = datetime.now(timezone.utc), text
    return LogLine(timestamp=when, stream=stream, message=message)
