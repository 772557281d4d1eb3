"""Getting source code: a shallow git checkout of a branch, tag or commit, or an uploaded
archive (tar.gz or zip) unpacked without letting any path escape its folder."""

from __future__ import annotations

import base64
import os
import re
import shlex
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SHA = re.compile(r"^[0-9a-f]{7,40}$")


class CheckoutError(Exception):
    """The repository or ref cannot be fetched; the message is git's own."""


def _git(*args: str, cwd: Path | None = None, timeout: int = 300,
         env: dict[str, str] | None = None) -> str:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", **(env or {})}
    result = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)
    if result.returncode != 0:
        raise CheckoutError((result.stderr or result.stdout).strip()[-2000:])
    return result.stdout.strip()


def checkout(url: str, ref: str | None, dest: Path, credential: str | None = None) -> str:
    """Clones `url` at `ref` (branch, tag or commit; default branch if None) into `dest`,
    shallowly; returns the commit SHA. `credential` is a deploy key (a private key in
    OpenSSH/PEM form) or an access token (`user:token`, or a token alone)."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    with _authenticated(credential) as env:
        if ref and SHA.match(ref):
            _git("init", "-q", cwd=dest)
            _git("remote", "add", "origin", url, cwd=dest)
            _git("fetch", "-q", "--depth", "1", "origin", ref, cwd=dest, env=env)
            _git("checkout", "-q", "FETCH_HEAD", cwd=dest)
        else:
            _git("clone", "-q", "--depth", "1", *(["--branch", ref] if ref else []), url,
                 str(dest), env=env)
    return _git("rev-parse", "HEAD", cwd=dest)


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
