"""SSH to servers (asyncssh): a connectivity test that says what works and, when something
does not, which kind of failure it is. The server's host key is pinned: a test against a
pinned key refuses any other (`host-key-mismatch`), never trusting a key on each use.

Each test runs on an event loop of its own in the calling thread (operations run in worker
threads): one connection, its checks, closed. A `Tunnel` keeps one connection to a registered
server for its runtime (the Docker engine, the ports it publishes, its edge proxy's admin API).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import tempfile
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.utils import CryptographyDeprecationWarning


def _asyncssh() -> Any:
    """asyncssh, imported on first use: its 16 MB are paid only once a server over SSH is."""
    with warnings.catch_warnings():  # asyncssh still names DSA, which cryptography deprecates
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        import asyncssh
    return asyncssh


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    username: str
    private_key: str = field(repr=False)  # OpenSSH form, unencrypted (as the store unseals it)
    pinned_host_key: str | None = None  # `ssh-ed25519 AAAA...`; None: the draft test
    # Reached through another server (a swarm's node through its manager), not directly.
    jump: Target | None = None


@dataclass
class Check:
    name: str  # ssh | docker | edge-proxy; for a swarm: swarm | nodes | overlay | ports
    status: str  # passed | failed | warning | skipped
    message: str
    duration_ms: int = 0
    failure: str | None = None  # dns | tcp | timeout | auth | host-key-mismatch | ...
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class Result:
    checks: list[Check]
    host_key: str | None = None  # what the server presented (OpenSSH public key line)
    host_key_fingerprint: str | None = None
    # A swarm manager's other nodes: {address: the host key it presents through the manager}
    node_host_keys: dict[str, str] = field(default_factory=dict)

    @property
    def status(self) -> str:
        """healthy (all passed), degraded (reached, something less), unreachable."""
        by = {c.name: c for c in self.checks}
        if by["ssh"].status != "passed":
            return "unreachable"
        return "healthy" if all(c.status in ("passed", "skipped") for c in self.checks) \
            else "degraded"


def test(target: Target, timeout: float = 10, swarm: bool = False) -> Result:
    """Connects (with the pinned host key when there is one) and checks the server: SSH, its
    Docker engine (present, and usable by the user), its edge proxy (Caddy); for a Swarm
    manager (`swarm`), the cluster's readiness too."""
    return asyncio.run(_test(target, timeout, swarm))


def _ms(start: float) -> int:
    return int((time.perf_counter() - start) * 1000)


class Unreachable(Exception):
    """The server could not be reached, and why: `failure` names the kind (dns, timeout,
    host-key-mismatch, auth, tcp)."""

    def __init__(self, failure: str, message: str):
        super().__init__(message)
        self.failure, self.message = failure, message


async def _connect(target: Target, timeout: float, keepalive: float = 0) -> Any:
    """An SSH connection to the target (with the pinned host key when there is one; through
    its `jump` server's connection when it has one), or Unreachable."""
    jump = await _connect(target.jump, timeout, keepalive) if target.jump else None
    try:
        conn = await _open(target, timeout, keepalive, jump)
    except Unreachable:
        if jump is not None:
            jump.close()
        raise
    if jump is not None:  # the way there goes with the connection
        asyncio.get_running_loop().create_task(_close_after(conn, jump))
    return conn


async def _open(target: Target, timeout: float, keepalive: float, jump: Any) -> Any:
    ssh = _asyncssh()
    known: Any = None if target.pinned_host_key is None else (  # None: the draft, shown the key
        [ssh.import_public_key(target.pinned_host_key)], [], [])
    try:
        key = ssh.import_private_key(target.private_key)
        return await asyncio.wait_for(ssh.connect(
            target.host, port=target.port, username=target.username, client_keys=[key],
            known_hosts=known, agent_path=None, config=None, connect_timeout=timeout,
            preferred_auth="publickey", keepalive_interval=keepalive or None,
            keepalive_count_max=3, tunnel=jump), timeout + 1)
    except socket.gaierror as exc:
        raise Unreachable("dns", f"{target.host} does not resolve ({exc})") from None
    except (asyncio.TimeoutError, TimeoutError):
        raise Unreachable("timeout", f"no answer from {target.host}:{target.port} within "
                          f"{timeout:g} s") from None
    except ssh.HostKeyNotVerifiable:
        raise Unreachable("host-key-mismatch", "the server's host key is not the one pinned: "
                          "it may have been reinstalled, or the connection intercepted; "
                          "re-pin it only once you know why") from None
    except ssh.PermissionDenied:
        raise Unreachable("auth", f"the server refused the key for {target.username}") \
            from None
    except (OSError, ssh.Error) as exc:
        raise Unreachable("tcp", f"cannot connect to {target.host}:{target.port}: "
                          f"{getattr(exc, 'strerror', None) or exc}") from None


async def _close_after(conn: Any, jump: Any) -> None:
    await conn.wait_closed()
    jump.close()


async def _test(target: Target, timeout: float, swarm: bool = False) -> Result:
    start = time.perf_counter()
    try:
        conn = await _connect(target, timeout)
    except Unreachable as exc:
        return Result([Check("ssh", "failed", exc.message, _ms(start), exc.failure)])
    async with conn:
        host_key = conn.get_server_host_key()
        line = host_key.export_public_key("openssh").decode().split()[:2] if host_key else []
        fingerprint = host_key.get_fingerprint("sha256") if host_key else None
        checks = [Check("ssh", "passed", f"connected as {target.username}", _ms(start),
                        metadata={"hostKeyFingerprint": fingerprint or ""})]
        checks.append(await _docker(conn))
        checks.append(await _edge(conn))
        nodes: dict[str, str] = {}
        if swarm and checks[1].status == "passed":
            checks += await _swarm(conn)
            if checks[-1].name == "ports":  # the swarm is ready to be looked into
                check, nodes = await _node_keys(conn, timeout)
                checks.append(check)
    return Result(checks, " ".join(line) or None, fingerprint, nodes)


async def _docker(conn: Any) -> Check:
    start = time.perf_counter()
    done = await conn.run("docker version --format '{{.Server.Version}}'", check=False)
    said = f"{done.stderr or ''}{done.stdout or ''}".strip()
    if done.exit_status == 0:
        return Check("docker", "passed", f"Docker {said}", _ms(start),
                     metadata={"serverVersion": said})
    if done.exit_status == 127 or "not found" in said:
        return Check("docker", "failed", "Docker is not installed", _ms(start), "docker-missing")
    if "permission denied" in said.lower():
        return Check("docker", "failed", "the user may not use Docker (add it to the docker "
                     "group)", _ms(start), "permission")
    return Check("docker", "failed", f"Docker does not answer: {said[-300:]}", _ms(start),
                 "docker-unavailable")


# Between the nodes of a swarm (nothing here can see them from outside the cluster).
SWARM_PORTS = "2377/tcp (managers), 7946/tcp and udp, 4789/udp (overlay networks)"


async def _swarm(conn: Any) -> list[Check]:
    """A Swarm manager's readiness: the swarm active with control available here (and the
    managers' quorum), its nodes ready and active, the overlay network driver."""
    start = time.perf_counter()
    done = await conn.run("docker info --format '{{json .Swarm}}|{{json .Plugins.Network}}'",
                          check=False)
    info, _, drivers = (done.stdout or "").strip().partition("|")
    try:
        state, networks = json.loads(info or "{}"), json.loads(drivers or "[]")
    except ValueError:
        state, networks = {}, []
    checks = []
    if state.get("LocalNodeState") != "active":
        return [Check("swarm", "failed", "Swarm is not active on this engine (docker swarm "
                      "init, or join it to a swarm as a manager)", _ms(start), "swarm-inactive")]
    if not state.get("ControlAvailable"):
        return [Check("swarm", "failed", "this node is a worker: register a manager of the "
                      "swarm", _ms(start), "not-a-manager")]
    managers, nodes = int(state.get("Managers") or 0), int(state.get("Nodes") or 0)
    quorum = {"managers": str(managers), "nodes": str(nodes)}
    if managers % 2 == 0:
        checks.append(Check("swarm", "warning", f"{managers} managers tolerate no more "
                            f"failures than {managers - 1}: run an odd number", _ms(start),
                            metadata=quorum))
    else:
        checks.append(Check("swarm", "passed", f"swarm active: {managers} manager(s), "
                            f"{nodes} node(s); it survives {(managers - 1) // 2} managers "
                            "lost", _ms(start), metadata=quorum))
    start = time.perf_counter()
    listed = await conn.run("docker node ls --format '{{json .}}'", check=False)
    rows = [json.loads(row) for row in (listed.stdout or "").splitlines() if row.strip()]
    ready = [r for r in rows if r.get("Status") == "Ready"]
    active = [r for r in ready if r.get("Availability") == "Active"]
    counts = {"ready": str(len(ready)), "active": str(len(active)), "total": str(len(rows))}
    checks.append(Check("nodes", "passed" if rows and len(active) == len(rows) else "warning",
                        f"{len(ready)} of {len(rows)} node(s) ready, {len(active)} taking "
                        "tasks", _ms(start), metadata=counts))
    checks.append(Check("overlay", "passed" if "overlay" in networks else "failed",
                        "the overlay network driver is there" if "overlay" in networks
                        else "no overlay network driver", 0,
                        None if "overlay" in networks else "overlay-missing"))
    checks.append(Check("ports", "skipped", f"open between the nodes: {SWARM_PORTS}"))
    return checks


async def _node_keys(conn: Any, timeout: float) -> tuple[Check, dict[str, str]]:
    """The host keys the swarm's other nodes present, asked through the manager (where
    images are copied to them from): pinned with the manager's at registration."""
    start = time.perf_counter()
    listed = await conn.run("docker node inspect --format '{{.Status.Addr}}' "
                            "$(docker node ls -q --filter role=worker) "
                            "$(docker node ls -q --filter role=manager) 2>/dev/null; "
                            "docker info --format 'self {{.Swarm.NodeAddr}}'", check=False)
    lines = (listed.stdout or "").split()
    own = lines[lines.index("self") + 1] if "self" in lines else ""
    addresses = sorted({a for a in lines if a not in ("self", own)})
    keys, seen, missing = {}, {}, []
    for address in addresses:
        try:
            key = await asyncio.wait_for(_asyncssh().get_server_host_key(
                address, 22, tunnel=conn), timeout)
        except (OSError, asyncio.TimeoutError, _asyncssh().Error):
            missing.append(address)
            continue
        keys[address] = " ".join(key.export_public_key("openssh").decode().split()[:2])
        seen[address] = key.get_fingerprint("sha256")
    if missing:
        return Check("node-keys", "warning", f"no SSH answer from node(s) {', '.join(missing)} "
                     "through the manager: images cannot be copied there", _ms(start),
                     "node-unreachable", seen), keys
    return Check("node-keys", "passed", f"{len(keys)} other node(s) present their host keys "
                 "(pinned with the manager's)", _ms(start), metadata=seen), keys


async def _edge(conn: Any) -> Check:
    start = time.perf_counter()
    done = await conn.run("command -v caddy", check=False)
    if done.exit_status == 0:
        return Check("edge-proxy", "passed", "Caddy is installed", _ms(start))
    return Check("edge-proxy", "skipped", "no Caddy yet: bootstrapping the server's edge proxy "
                 "installs it", _ms(start))


class Tunnel:
    """One long-lived SSH connection to a server, on an event loop of its own thread, through
    which local clients reach the server's sockets: its Docker engine's, and the ports it
    publishes on its loopback. Local listeners are launchbay's own (a unix socket in a
    private directory, loopback ports), each connection to one opening a channel: a dropped
    SSH connection is made again on the next use, against the same pinned host key, without
    the clients knowing (their requests in flight fail and are retried by their callers).
    """

    MAX_PORTS = 256  # forwarded ports kept listening; the least recently used are closed

    def __init__(self, target: Target, timeout: float = 10, keepalive: float = 15):
        self.target, self.timeout, self.keepalive = target, timeout, keepalive
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                         name=f"launchbay-ssh-{target.host}")
        self._thread.start()
        self._conn: Any = None
        self._connecting: asyncio.Lock | None = None
        self._dir = tempfile.mkdtemp(prefix="launchbay-ssh-")  # 0700: the process's own
        self._socket: str | None = None
        self._ports: OrderedDict[tuple[str, int], tuple[int, asyncio.AbstractServer]] = \
            OrderedDict()
        self._kept: dict[tuple[str, int], tuple[int, asyncio.AbstractServer]] = {}
        self._servers: list[asyncio.AbstractServer] = []
        self._closed = False

    def _call(self, coro: Any, timeout: float | None = None) -> Any:
        if self._closed:  # its loop is gone: nothing would ever answer
            coro.close()
            raise Unreachable("closed", "the connection to this server was closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(
            timeout or self.timeout + 5)

    async def _connection(self) -> Any:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._conn is None:
                if self.target.pinned_host_key is None:  # never any key but the pinned one
                    raise Unreachable("host-key-mismatch", "no host key is pinned for this "
                                      "server: pin the one it presents")
                conn = await _connect(self.target, self.timeout, self.keepalive)
                self._conn = conn
                self._loop.create_task(self._forget_when_closed(conn))
            return self._conn

    async def _forget_when_closed(self, conn: Any) -> None:
        await conn.wait_closed()
        if self._conn is conn:
            self._conn = None

    def ensure(self) -> None:
        """Connects unless connected; Unreachable (with the kind of failure) otherwise."""
        self._call(self._connection())

    def drop(self) -> None:
        """Closes the SSH connection (the next use makes another): what a network cut does."""
        async def close() -> None:
            if self._conn is not None:
                self._conn.close()
        self._call(close())

    def run(self, command: str, stdin: bytes | None = None, timeout: float = 300) -> \
            tuple[int, str]:
        """Runs a command on the server: (exit status, its output, stderr after stdout)."""
        async def run() -> tuple[int, str]:
            conn = await self._connection()
            done = await conn.run(command, input=stdin, check=False, encoding=None)
            out = (done.stdout or b"") + (done.stderr or b"")
            return int(done.exit_status or 0), out.decode(errors="replace")
        return self._call(asyncio.wait_for(run(), timeout), timeout + 5)

    def unix_socket(self, remote_path: str = "/var/run/docker.sock") -> str:
        """A local unix socket that reaches `remote_path` on the server (one, kept)."""
        if self._socket is None:
            path = os.path.join(self._dir, "docker.sock")

            async def listen() -> None:
                self._servers.append(await asyncio.start_unix_server(
                    lambda r, w: self._relay(r, w, lambda c: c.open_unix_connection(
                        remote_path)), path))
            self._call(listen())
            self._socket = path
        return self._socket

    def port(self, remote_port: int, remote_host: str = "127.0.0.1", keep: bool = False) -> int:
        """A local loopback port that reaches `remote_host:remote_port` as the server sees it
        (its own loopback by default: where it publishes containers' ports). Only the
        `MAX_PORTS` most recently asked for stay open, but those to `keep`."""
        async def listen() -> int:
            key = (remote_host, remote_port)
            kept = self._kept if keep else self._ports
            if key in kept:
                if not keep:
                    self._ports.move_to_end(key)
                return kept[key][0]
            server = await asyncio.start_server(
                lambda r, w: self._relay(r, w, lambda c: c.open_connection(
                    remote_host, remote_port)), "127.0.0.1", 0)
            local = server.sockets[0].getsockname()[1]
            kept[key] = (local, server)
            while len(self._ports) > self.MAX_PORTS:
                self._ports.popitem(last=False)[1][1].close()
            return int(local)
        return int(self._call(listen()))

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     open_channel: Callable[[Any], Awaitable[tuple[Any, Any]]]) -> None:
        try:
            far_reader, far_writer = await open_channel(await self._connection())
        except (Unreachable, OSError, _asyncssh().Error):
            writer.close()
            return
        await asyncio.gather(_pump(reader, far_writer), _pump(far_reader, writer))
        writer.close()
        far_writer.close()

    def close(self) -> None:
        if self._closed:
            return

        async def close() -> None:
            for server in self._servers + [s for _, s in [*self._ports.values(),
                                                          *self._kept.values()]]:
                server.close()
            if self._conn is not None:
                self._conn.close()
                await self._conn.wait_closed()
        try:
            self._call(close(), 10)
        finally:
            self._closed = True
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            shutil.rmtree(self._dir, ignore_errors=True)


async def _pump(reader: Any, writer: Any) -> None:
    """Copies until the end of `reader`, then half-closes `writer` (Docker's attach and
    hijacked streams half-close their input and keep reading)."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        else:
            writer.close()
    except (OSError, _asyncssh().Error):
        writer.close()
