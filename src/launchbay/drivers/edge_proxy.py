"""The edge proxy driver: Caddy, driven only through its admin API.

launchbay keeps the desired routes in its own store and always loads Caddy's whole
configuration at once (`POST /load`), so Caddy's state can be rebuilt at any time. When
launchbay manages the local Caddy, it starts `caddy run` with its own state directory (the
local CA and certificates live there) and starts it again if it stops.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import subprocess
import tarfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import httpx
from docker import errors as docker_errors

from launchbay.drivers.ssh_transport import Tunnel, Unreachable

log = logging.getLogger("launchbay.edge")


class EdgeError(Exception):
    """Caddy is unreachable, or refused a configuration (the message says why)."""


class Edge(Protocol):
    """What drives an edge proxy: a Caddy launchbay runs here, over SSH, or in containers."""

    @property
    def available(self) -> bool: ...
    def alive(self) -> bool: ...
    def start(self) -> bool: ...  # True if it had to be started
    def load(self, config: dict[str, Any]) -> None: ...
    def has(self, object_id: str) -> bool: ...
    def reach(self, host: str, port: int) -> tuple[str, int]: ...
    def shutdown(self) -> None: ...
    def release(self) -> None: ...


class Caddy:
    def __init__(self, admin: str, *, state_dir: Path | None = None, manage: bool = True,
                 binary: str = "caddy", listen: str | None = None):
        self.admin = admin  # where its admin API is reached from here
        self.listen = listen or admin  # where it listens (another address through a tunnel)
        self.state_dir = state_dir
        self.manage = manage
        self.binary = binary
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._http = self._client()

    def _client(self) -> httpx.Client:
        # The Host header names the address Caddy listens on: it refuses others.
        return httpx.Client(base_url=f"http://{self.admin}", timeout=10, trust_env=False,
                            headers={"Host": self.listen})

    @property
    def available(self) -> bool:
        """Whether this machine can run the Caddy that launchbay manages."""
        return not self.manage or shutil.which(self.binary) is not None

    def admin_block(self) -> dict[str, Any]:
        """Part of every configuration: the admin endpoint stays where it is, and Caddy keeps no
        copy of its own (launchbay's store is the source of truth)."""
        return {"listen": self.listen, "config": {"persist": False}}

    def alive(self) -> bool:
        try:  # a small object of the configuration, not the whole of it
            return self._http.get("/config/admin/listen").status_code == 200
        except httpx.HTTPError:
            return False

    def start(self) -> bool:
        """Starts the managed Caddy if it is not answering; True if it had to be started."""
        with self._lock:
            if self.alive():
                return False
            if not self.manage:
                raise EdgeError(f"Caddy's admin API at {self.admin} does not answer")
            if not self.available:
                raise EdgeError(f"{self.binary} is not installed")
            self._launch()
            deadline = time.monotonic() + 15
            while not self.alive():
                if self._exited() or time.monotonic() > deadline:
                    raise EdgeError(f"Caddy did not start; see {self._log_path()}")
                time.sleep(0.05)
            log.info("started Caddy (admin %s)", self.admin)
            return True

    def _log_path(self) -> str:
        return str(self.state_dir / "caddy.log") if self.state_dir else "its log"

    def _exited(self) -> bool:
        return self._process is None or self._process.poll() is not None

    def _launch(self) -> None:
        """`caddy run` with launchbay's bootstrap configuration (just the admin API)."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(10)
        assert self.state_dir is not None
        self.state_dir.mkdir(parents=True, exist_ok=True)
        bootstrap = self.state_dir / "bootstrap.json"
        bootstrap.write_text(json.dumps({"admin": self.admin_block()}))
        env = {**os.environ, "XDG_DATA_HOME": str(self.state_dir / "data"),
               "XDG_CONFIG_HOME": str(self.state_dir / "config"),
               "HOME": str(self.state_dir)}
        logfile = open(self.state_dir / "caddy.log", "ab")  # noqa: SIM115 (owned by Caddy)
        self._process = subprocess.Popen(
            [self.binary, "run", "--config", str(bootstrap)], env=env,
            stdout=logfile, stderr=logfile, start_new_session=True)

    def reach(self, host: str, port: int) -> tuple[str, int]:
        """Where the control plane reaches a port this Caddy serves on `host`."""
        return host, port

    def load(self, config: dict[str, Any]) -> None:
        """Replaces Caddy's whole configuration; Caddy keeps serving while it switches."""
        try:
            response = self._http.post("/load", json={"admin": self.admin_block(), **config})
        except httpx.HTTPError as exc:
            raise EdgeError(f"Caddy's admin API at {self.admin} does not answer: {exc}") from exc
        if response.status_code != 200:
            raise EdgeError(f"Caddy refused the configuration: {response.text[:2000]}")

    def has(self, object_id: str) -> bool:
        """Whether the loaded configuration has an object with this `@id`."""
        try:
            return self._http.get(f"/id/{object_id}").status_code == 200
        except httpx.HTTPError:
            return False

    def config(self) -> dict[str, Any] | None:
        try:
            response = self._http.get("/config/")
        except httpx.HTTPError:
            return None
        return response.json() if response.status_code == 200 else None

    def pid(self) -> int | None:
        return self._process.pid if self._process and self._process.poll() is None else None

    def shutdown(self) -> None:
        """Stops Caddy: ours by signal, another one through its admin API."""
        with self._lock:
            self._terminate()
        try:
            self._http.post("/stop")
        except httpx.HTTPError:
            pass  # not running
        deadline = time.monotonic() + 10
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.05)

    def _terminate(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
        self._process = None

    def release(self) -> None:
        """Lets go of the admin API; Caddy keeps serving (the next control plane adopts it)."""
        self._http.close()


# Starts the Caddy of a server over SSH, in a folder of its own, installing it from the
# server's packages when it has none (and leaving the package's own service off: launchbay's
# configuration is the one Caddy serves). The bootstrap configuration comes on stdin.
_REMOTE_START = """set -e
dir="$HOME/.launchbay-edge/{name}"
mkdir -p "$dir/data" "$dir/config"
cat > "$dir/bootstrap.json"
if ! command -v caddy >/dev/null 2>&1; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "Caddy is not installed, and this server has no apt-get to install it"; exit 3
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y caddy >/dev/null
  (systemctl disable --now caddy || service caddy stop) >/dev/null 2>&1 || true
fi
cd "$dir"
XDG_DATA_HOME="$dir/data" XDG_CONFIG_HOME="$dir/config" HOME="$dir" \\
  setsid -f caddy run --config "$dir/bootstrap.json" >>"$dir/caddy.log" 2>&1 </dev/null
"""


class RemoteCaddy(Caddy):
    """The Caddy of a server reached over SSH: started there over SSH, its admin API listening
    only on the server's loopback and driven through the SSH tunnel (never on a public
    port). `tunnel` gives the server's current tunnel (made again when the server's key or
    credential changes)."""

    LISTEN = "127.0.0.1:2019"

    def __init__(self, name: str, tunnel: Callable[[], Tunnel]):
        self.name, self.tunnel, self._through = name, tunnel, tunnel()
        super().__init__(self._address(), manage=True, listen=self.LISTEN)

    def _address(self) -> str:
        host, port = self.LISTEN.rsplit(":", 1)
        return f"127.0.0.1:{self._through.port(int(port), host, keep=True)}"

    @property
    def available(self) -> bool:
        return True  # installed when started, if the server can

    def alive(self) -> bool:
        current = self.tunnel()
        if current is not self._through:  # the tunnel was made again: so is the client
            self._through = current
            self.admin = self._address()
            self._http.close()
            self._http = self._client()
        return super().alive()

    def _exited(self) -> bool:
        return False  # not a child of this process: the deadline decides

    def reach(self, host: str, port: int) -> tuple[str, int]:
        return "127.0.0.1", self._through.port(port, keep=True)  # its loopback, tunnelled

    def _log_path(self) -> str:
        return f"~/.launchbay-edge/{self.name}/caddy.log on the server"

    def _launch(self) -> None:
        try:
            status, said = self._through.run(
                _REMOTE_START.format(name=self.name),
                stdin=json.dumps({"admin": self.admin_block()}).encode(), timeout=600)
        except (Unreachable, OSError, TimeoutError) as exc:
            raise EdgeError(f"cannot reach the server to start Caddy: {exc}") from exc
        if status != 0:
            raise EdgeError(f"Caddy could not be started on the server: {said[-1000:]}")


class ContainerCaddy:
    """A Caddy in a container (`lb-edge`) on one node of a Docker Swarm: it publishes the
    node's ports 80 and 443 and joins the swarm's overlay networks, where it reaches services
    by their tasks' DNS names. Its admin API listens on the container's own loopback only
    (never on a network the apps share): a configuration is written into the container and
    loaded with `caddy reload` run inside it, through the node's Docker engine.

    `engine` is the node's Docker driver; `networks()` the overlay networks (ids) it must
    be on."""

    NAME = "lb-edge"
    CONFIG = "/etc/launchbay/caddy.json"
    ADMIN = {"listen": "localhost:2019", "config": {"persist": False}}

    def __init__(self, engine: Any, image: str, networks: Callable[[], list[str]]):
        self.engine, self.image, self.networks = engine, image, networks
        # (container id, the `@id`s of the configuration it loaded)
        self._loaded: tuple[str, set[str]] | None = None

    available = True

    def _container(self) -> Any:
        try:
            return self.engine.client.containers.get(self.NAME)
        except docker_errors.NotFound:
            return None

    def alive(self) -> bool:
        found = self._container()
        return found is not None and found.status == "running"

    def start(self) -> bool:
        """Creates and starts the container if it is not running; True if it had to."""
        found = self._container()
        if found is not None and found.status == "running":
            return False
        try:
            if found is None:
                found = self.engine.client.containers.create(
                    self.image, ["caddy", "run", "--config", self.CONFIG], name=self.NAME,
                    ports={"80/tcp": 80, "443/tcp": 443}, detach=True,
                    restart_policy={"Name": "unless-stopped"},
                    environment={"XDG_DATA_HOME": "/data", "XDG_CONFIG_HOME": "/config",
                                 "HOME": "/data"},
                    volumes={"lb-edge-data": {"bind": "/data", "mode": "rw"}},
                    labels={"launchbay.edge": "true"})
                self._write(found, {"admin": self.ADMIN})
            found.start()
        except docker_errors.DockerException as exc:
            raise EdgeError(f"the edge container could not be started: {exc}") from exc
        self._loaded = None
        return True

    def load(self, config: dict[str, Any]) -> None:
        """Joins the overlay networks it is not on yet, writes the configuration and has the
        Caddy inside load it (it keeps serving while it switches)."""
        found = self._container()
        if found is None:
            raise EdgeError("the edge container is gone")
        attached = (found.attrs.get("NetworkSettings") or {}).get("Networks") or {}
        joined = {*attached, *(n.get("NetworkID") for n in attached.values())}
        try:
            for network in self.networks():
                if network not in joined:
                    self.engine.client.api.connect_container_to_network(found.id, network)
            self._write(found, {"admin": self.ADMIN, **config})
            code, said = found.exec_run(["caddy", "reload", "--config", self.CONFIG,
                                         "--force"])
        except docker_errors.DockerException as exc:
            raise EdgeError(f"the edge container does not answer: {exc}") from exc
        if code != 0:
            raise EdgeError(f"Caddy refused the configuration: {said.decode()[-2000:]}")
        self._loaded = (found.id, _object_ids(config))

    def _write(self, container: Any, config: dict[str, Any]) -> None:
        body = json.dumps(config).encode()
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            info = tarfile.TarInfo(self.CONFIG.rsplit("/", 1)[1])
            info.size, info.mode = len(body), 0o600
            tar.addfile(info, io.BytesIO(body))
        container.client.api.put_archive(container.id, self.CONFIG.rsplit("/", 1)[0],
                                         archive.getvalue())

    def has(self, object_id: str) -> bool:
        """Whether the running container loaded the configuration with this `@id` (a
        restarted container loads its file again: the last one written)."""
        found = self._container()
        return (found is not None and found.status == "running" and self._loaded is not None
                and self._loaded[0] == found.id and object_id in self._loaded[1])

    def reach(self, host: str, port: int) -> tuple[str, int]:
        where, _, local = self.engine.reach(port).rpartition(":")
        return where, int(local)

    def shutdown(self) -> None:
        found = self._container()
        if found is not None:
            found.remove(force=True)
        self._loaded = None

    def release(self) -> None:
        pass


def _object_ids(config: Any) -> set[str]:
    """Every `@id` in a Caddy configuration."""
    if isinstance(config, dict):
        own = {str(config["@id"])} if "@id" in config else set()
        return own | {i for value in config.values() for i in _object_ids(value)}
    if isinstance(config, list):
        return {i for value in config for i in _object_ids(value)}
    return set()
