"""Getting source code: a shallow git checkout of a branch, tag or commit."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
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
