"""SSH to servers (asyncssh): a connectivity test that says what works and, when something
does not, which kind of failure it is. The server's host key is pinned: a test against a
pinned key refuses any other (`host-key-mismatch`), never trusting a key on each use.

Each test runs on an event loop of its own in the calling thread (operations run in worker
threads): one connection, its checks, closed.
"""

from __future__ import annotations

import asyncio
import socket
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

from cryptography.utils import CryptographyDeprecationWarning

with warnings.catch_warnings():  # asyncssh still names DSA, which cryptography deprecates
    warnings.simplefilter("ignore", CryptographyDeprecationWarning)
    import asyncssh


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    username: str
    private_key: str = field(repr=False)  # OpenSSH form, unencrypted (as the store unseals it)
    pinned_host_key: str | None = None  # `ssh-ed25519 AAAA...`; None: the draft test


@dataclass
class Check:
    name: str  # ssh | docker | edge-proxy
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

    @property
    def status(self) -> str:
        """healthy (all passed), degraded (reached, something less), unreachable."""
        by = {c.name: c for c in self.checks}
        if by["ssh"].status != "passed":
            return "unreachable"
        return "healthy" if all(c.status in ("passed", "skipped") for c in self.checks) \
            else "degraded"


def test(target: Target, timeout: float = 10) -> Result:
    """Connects (with the pinned host key when there is one) and checks the server: SSH, its
    Docker engine (present, and usable by the user), its edge proxy (Caddy)."""
    return asyncio.run(_test(target, timeout))


def _ms(start: float) -> int:
    return int((time.perf_counter() - start) * 1000)


async def _test(target: Target, timeout: float) -> Result:
    start = time.perf_counter()
    presented: dict[str, Any] = {}

    def pinned() -> Any:
        if target.pinned_host_key is None:
            return None  # the draft: accept, and show the key to be pinned
        return ([asyncssh.import_public_key(target.pinned_host_key)], [], [])

    try:
        key = asyncssh.import_private_key(target.private_key)
        conn = await asyncio.wait_for(asyncssh.connect(
            target.host, port=target.port, username=target.username, client_keys=[key],
            known_hosts=pinned(), agent_path=None, config=None, connect_timeout=timeout,
            preferred_auth="publickey"), timeout + 1)
    except socket.gaierror as exc:
        return Result([Check("ssh", "failed", f"{target.host} does not resolve ({exc})",
                             _ms(start), "dns")])
    except (asyncio.TimeoutError, TimeoutError):
        return Result([Check("ssh", "failed", f"no answer from {target.host}:{target.port} "
                             f"within {timeout:g} s", _ms(start), "timeout")])
    except asyncssh.HostKeyNotVerifiable:
        return Result([Check("ssh", "failed", "the server's host key is not the one pinned: "
                             "it may have been reinstalled, or the connection intercepted; "
                             "re-pin it only once you know why", _ms(start),
                             "host-key-mismatch")])
    except asyncssh.PermissionDenied:
        return Result([Check("ssh", "failed", f"the server refused the key for "
                             f"{target.username}", _ms(start), "auth")])
    except (OSError, asyncssh.Error) as exc:
        return Result([Check("ssh", "failed", f"cannot connect to {target.host}:{target.port}: "
                             f"{getattr(exc, 'strerror', None) or exc}", _ms(start), "tcp")])
    async with conn:
        host_key = conn.get_server_host_key()
        line = host_key.export_public_key("openssh").decode().split()[:2] if host_key else []
        presented["key"] = " ".join(line) or None
        fingerprint = host_key.get_fingerprint("sha256") if host_key else None
        checks = [Check("ssh", "passed", f"connected as {target.username}", _ms(start),
                        metadata={"hostKeyFingerprint": fingerprint or ""})]
        checks.append(await _docker(conn))
        checks.append(await _edge(conn))
    return Result(checks, presented["key"], fingerprint)


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


async def _edge(conn: Any) -> Check:
    start = time.perf_counter()
    done = await conn.run("command -v caddy", check=False)
    if done.exit_status == 0:
        return Check("edge-proxy", "passed", "Caddy is installed", _ms(start))
    return Check("edge-proxy", "skipped", "no Caddy yet: bootstrapping the server's edge proxy "
                 "installs it", _ms(start))
