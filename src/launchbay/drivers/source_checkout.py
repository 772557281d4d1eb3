"""Getting source code: a shallow git checkout of a branch, tag or commit, or an uploaded
archive (tar.gz or zip) unpacked without letting any path escape its folder.

A repository URL comes from a user, who must not reach the server's disk or its internal
services through it: only remote schemes are fetched (a folder of the server only where an
operator allows it), nothing in the URL or ref can be read by git as an option, the host's
addresses are checked against a `GitPolicy` and git is held to those addresses, and HTTP
redirects are not followed."""

from __future__ import annotations

import base64
import ipaddress
import os
import re
import shlex
import shutil
import socket
import subprocess
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

SHA = re.compile(r"^[0-9a-f]{7,40}$")
# A branch or tag name git cannot take for an option or a revision expression.
SAFE_REF = re.compile(r"^[A-Za-z0-9_.][^\s~^:?*\[\\]*$")
# Where a repository may be: these schemes (with their default ports), `user@host:path`, or
# (an operator's choice) a folder of the server.
SCHEMES = {"https": 443, "http": 80, "ssh": 22, "git": 9418}
SCP_LIKE = re.compile(r"^(?:(?P<user>[A-Za-z0-9._~][A-Za-z0-9._~-]*)@)?"
                      r"(?P<host>[A-Za-z0-9][A-Za-z0-9.-]*|\[[0-9A-Fa-f:.]+\]):(?!:)")


class CheckoutError(Exception):
    """The repository or ref cannot be fetched; the message says why (git's own words when
    git refused)."""


@dataclass(frozen=True)
class Remote:
    """Where a repository is: a URL (`scheme`, `host`, `port`) or a folder (`scheme` local)."""

    url: str
    scheme: str
    host: str | None = None
    port: int | None = None
    host_at: tuple[int, int] = (0, 0)  # where the host is written in `url`


@dataclass(frozen=True)
class GitPolicy:
    """Where repositories may be fetched from: remote hosts whose every address is public (or
    in `allowed_networks`, and never in `denied_networks`), and folders of the server only
    under `local_folders`. Loopback, private, link-local and other non-public networks are
    refused by default: a repository URL must not reach the server's own services."""

    local_folders: tuple[str, ...] = ()
    allowed_networks: tuple[str, ...] = ()
    denied_networks: tuple[str, ...] = ()

    def admits_address(self, address: str) -> bool:
        ip = ipaddress.ip_address(address)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        if any(ip in ipaddress.ip_network(n, strict=False) for n in self.denied_networks):
            return False
        if any(ip in ipaddress.ip_network(n, strict=False) for n in self.allowed_networks):
            return True
        return ip.is_global

    def admits_folder(self, path: str) -> bool:
        real = os.path.realpath(path)
        return any(real == os.path.realpath(f) or real.startswith(os.path.realpath(f) + os.sep)
                   for f in self.local_folders)


def parse_remote(url: str) -> Remote:
    """The repository `url` names, refused (CheckoutError) unless it is a remote URL of an
    allowed scheme or an absolute path; nothing in it can be taken for a git option."""
    if not url or url.startswith("-") or any(c.isspace() or ord(c) < 32 for c in url):
        raise CheckoutError("a repository URL cannot start with '-' or contain spaces")
    if url.startswith("/"):
        return Remote(url, "local")
    if "://" in url:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in SCHEMES:
            raise CheckoutError(f"{scheme}:// repositories are not fetched: use https://, "
                                "ssh:// or git://")
        try:
            port = parts.port
        except ValueError:
            raise CheckoutError(f"{url} has an invalid port") from None
        host = parts.hostname
        if not host or host.startswith("-") or (parts.username or "").startswith("-"):
            raise CheckoutError(f"{url} names no valid host")
        start = url.index("://") + 3 + parts.netloc.rfind("@") + 1
        written = parts.netloc.rpartition("@")[2]
        end = start + (written.index("]") + 1 if written.startswith("[") else
                       len(written.partition(":")[0]))
        return Remote(url, scheme, host, port or SCHEMES[scheme], (start, end))
    found = SCP_LIKE.match(url)
    if found is None:
        raise CheckoutError(f"{url} is not a repository URL: use https://host/path, "
                            "ssh://host/path or user@host:path")
    return Remote(url, "ssh", found["host"].strip("[]"), 22, found.span("host"))


def _pinned(remote: Remote, policy: GitPolicy) -> tuple[str, list[tuple[str, str]], list[str]]:
    """The URL to fetch, git config and ssh options that make git connect only to the
    addresses checked here (a name resolved again later could point elsewhere)."""
    if remote.scheme == "local":
        if not policy.admits_folder(remote.url):
            raise CheckoutError(f"{remote.url} is a folder of the server, which is not "
                                "fetched (an operator can allow folders with "
                                "LAUNCHBAY_GIT_LOCAL_FOLDERS)")
        return remote.url, [], []
    assert remote.host is not None and remote.port is not None
    try:
        addresses = sorted({str(info[4][0]) for info in socket.getaddrinfo(
            remote.host, remote.port, type=socket.SOCK_STREAM)})
    except OSError as exc:
        raise CheckoutError(f"cannot resolve {remote.host}: {exc}") from exc
    refused = [a for a in addresses if not policy.admits_address(a)]
    if refused:
        raise CheckoutError(f"{remote.host} is at {refused[0]}, which is not a public address; "
                            "repositories are not fetched from the server's own or private "
                            "networks (an operator can allow networks with "
                            "LAUNCHBAY_GIT_ALLOWED_NETWORKS)")
    if remote.scheme in ("http", "https"):
        pinned = ",".join(f"[{a}]" if ":" in a else a for a in addresses)
        return remote.url, [("http.curloptResolve", f"{remote.host}:{remote.port}:{pinned}"),
                            ("http.followRedirects", "false")], []
    # ssh and git: connect to the address itself; ssh checks the host key under its name.
    literal = f"[{addresses[0]}]" if ":" in addresses[0] else addresses[0]
    start, end = remote.host_at
    url = remote.url[:start] + literal + remote.url[end:]
    return url, [], ["-o", f"HostKeyAlias={remote.host}"] if remote.scheme == "ssh" else []


def _git(*args: str, cwd: Path | None = None, timeout: int = 300,
         env: dict[str, str] | None = None) -> str:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", **(env or {})}
    result = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)
    if result.returncode != 0:
        raise CheckoutError((result.stderr or result.stdout).strip()[-2000:])
    return result.stdout.strip()


def checkout(url: str, ref: str | None, dest: Path, credential: str | None = None,
             policy: GitPolicy = GitPolicy()) -> str:
    """Clones `url` at `ref` (branch, tag or commit; default branch if None) into `dest`,
    shallowly, if `policy` allows where it is; returns the commit SHA. `credential` is a
    deploy key (a private key in OpenSSH/PEM form) or an access token (`user:token`, or a
    token alone)."""
    if ref is not None and (not ref or ref.startswith("-")):
        raise CheckoutError(f"{ref!r} is not a branch, tag or commit")
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    with _fetching(url, credential, policy) as (fetched, env):
        if ref and SHA.match(ref):
            _git("init", "-q", cwd=dest)
            _git("remote", "add", "origin", "--", fetched, cwd=dest)
            _git("fetch", "-q", "--depth", "1", "--", "origin", ref, cwd=dest, env=env)
            _git("checkout", "-q", "FETCH_HEAD", cwd=dest)
        else:
            _git("clone", "-q", "--depth", "1", *([f"--branch={ref}"] if ref else []), "--",
                 fetched, str(dest), env=env)
    return _git("rev-parse", "HEAD", cwd=dest)


def changed_paths(url: str, ref: str, tag: bool, before: str | None, after: str, work: Path,
                  credential: str | None = None, policy: GitPolicy = GitPolicy()
                  ) -> list[str] | None:
    """The files a push of `ref` changed: `before..after` as the repository has them (every
    file of `after` for a new ref); None when that cannot be known (`before` is not in the
    history fetched: it was rewritten). Only trees are fetched where the server allows."""
    if not SAFE_REF.match(ref) or not SHA.match(after) or (before and not SHA.match(before)):
        raise CheckoutError(f"{ref!r} at {after!r} is not a ref and commit")
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    _git("init", "-q", "--bare", cwd=work)
    with _fetching(url, credential, policy) as (fetched, env):
        _git("fetch", "-q", "--filter=blob:none", "--", fetched,
             f"+refs/{'tags' if tag else 'heads'}/{ref}:refs/launchbay/pushed", cwd=work, env=env)
    if before is None:
        return _git("ls-tree", "-r", "--name-only", after, cwd=work).splitlines()
    try:
        return _git("diff", "--name-only", before, after, cwd=work).splitlines()
    except CheckoutError:
        return None


@contextmanager
def _fetching(url: str, credential: str | None, policy: GitPolicy
              ) -> Iterator[tuple[str, dict[str, str]]]:
    """(the URL to fetch, git's environment) for `url` if `policy` allows where it is: pinned
    to the addresses checked, with the credential and nothing that could run a program."""
    remote = parse_remote(url)
    fetched, config, ssh_options = _pinned(remote, policy)
    protocols = "file" if remote.scheme == "local" else "https:http:ssh:git"
    with _authenticated(credential) as auth:
        env = _with_config({**auth, "GIT_ALLOW_PROTOCOL": protocols,
                            "GIT_PROTOCOL_FROM_USER": "0"}, config)
        if remote.scheme == "ssh":
            env["GIT_SSH_COMMAND"] = shlex.join(
                [*shlex.split(auth.get("GIT_SSH_COMMAND", "ssh -o BatchMode=yes -o "
                                                         "StrictHostKeyChecking=accept-new")),
                 *ssh_options])
        yield fetched, env


def _with_config(env: dict[str, str], pairs: list[tuple[str, str]]) -> dict[str, str]:
    """`env` with more git config entries (after those it already carries)."""
    count = int(env.get("GIT_CONFIG_COUNT", "0"))
    for i, (key, value) in enumerate(pairs, start=count):
        env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"] = key, value
    if pairs:
        env["GIT_CONFIG_COUNT"] = str(count + len(pairs))
    return env


@contextmanager
def _authenticated(credential: str | None) -> Iterator[dict[str, str]]:
    """Git's environment for a credential. Passed through the environment, never the command
    line (which every local user can read) nor the repository's config (which is kept)."""
    if not credential:
        yield {}
        return
    if credential.lstrip().startswith("-----BEGIN"):
        with tempfile.TemporaryDirectory(prefix="launchbay-git-") as folder:
            key = Path(folder) / "deploy_key"
            key.touch(mode=0o600)
            key.write_text(credential.strip() + "\n")
            # The host's key is trusted on first use and remembered in the service user's
            # known_hosts, like a first `git clone` by hand; a changed key is refused.
            yield {"GIT_SSH_COMMAND": shlex.join([
                "ssh", "-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=accept-new"])}
        return
    user, _, token = credential.strip().rpartition(":")
    basic = base64.b64encode(f"{user or 'x-access-token'}:{token}".encode()).decode()
    yield {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
           "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}"}


def archive_kind(data: bytes) -> str | None:
    """`tar.gz` or `zip` from the first bytes, or None."""
    if data[:2] == b"\x1f\x8b":
        return "tar.gz"
    if data[:4] == b"PK\x03\x04":
        return "zip"
    return None


def unpack(archive: Path, dest: Path) -> str:
    """Unpacks an uploaded archive into `dest`; returns its content hash (the archive's name)."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    root = dest.resolve()
    try:
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as z:
                for name in z.namelist():
                    if root not in [(root / name).resolve(), *(root / name).resolve().parents]:
                        raise CheckoutError(f"the archive has a path outside its folder: {name}")
                z.extractall(root)
        else:
            with tarfile.open(archive, "r:gz") as t:
                t.extractall(root, filter="data")  # refuses absolute paths, .. and devices
    except (tarfile.TarError, zipfile.BadZipFile) as exc:
        raise CheckoutError(f"the archive cannot be unpacked: {exc}") from exc
    return archive.name.split(".", 1)[0]
