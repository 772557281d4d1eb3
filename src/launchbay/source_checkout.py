"""Getting source code: a shallow git checkout of a branch, tag or commit, or an uploaded
archive (tar.gz or zip) unpacked without letting any path escape its folder."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

SHA = re.compile(r"^[0-9a-f]{7,40}$")


class CheckoutError(Exception):
    """The repository or ref cannot be fetched; the message is git's own."""


def _git(*args: str, cwd: Path | None = None, timeout: int = 300) -> str:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    result = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)
    if result.returncode != 0:
        raise CheckoutError((result.stderr or result.stdout).strip()[-2000:])
    return result.stdout.strip()


def checkout(url: str, ref: str | None, dest: Path) -> str:
    """Clones `url` at `ref` (branch, tag or commit; default branch if None) into `dest`,
    shallowly; returns the commit SHA."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    if ref and SHA.match(ref):
        _git("init", "-q", cwd=dest)
        _git("remote", "add", "origin", url, cwd=dest)
        _git("fetch", "-q", "--depth", "1", "origin", ref, cwd=dest)
        _git("checkout", "-q", "FETCH_HEAD", cwd=dest)
    else:
        _git("clone", "-q", "--depth", "1", *(["--branch", ref] if ref else []), url, str(dest))
    return _git("rev-parse", "HEAD", cwd=dest)


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
