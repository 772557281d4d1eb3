"""A git repository served on loopback by `git daemon`, for the tests of push to deploy and
of previews."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from support import free_port

ZERO = "0" * 40


class Repository:
    """A working copy whose commits are pushed to a bare repository `git daemon` serves."""

    def __init__(self, root: Path):
        self.work, served = root / "work", root / "served"
        served.mkdir(parents=True)
        subprocess.run(["git", "init", "-q", "--bare", str(served / "app.git")], check=True)
        subprocess.run(["git", "init", "-q", "-b", "main", str(self.work)], check=True)
        self.git("remote", "add", "origin", str(served / "app.git"))
        port = free_port()
        self.daemon = subprocess.Popen(
            ["git", "daemon", "--reuseaddr", f"--base-path={served}", "--export-all",
             f"--port={port}", "--listen=127.0.0.1", str(served)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"git://127.0.0.1:{port}/app.git"
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "git daemon did not start"
                time.sleep(0.1)

    def git(self, *args: str) -> str:
        return subprocess.run(["git", "-C", str(self.work), "-c", "user.email=t@example.com",
                               "-c", "user.name=t", *args], check=True, capture_output=True,
                              text=True).stdout.strip()

    def push(self, files: dict[str, str], branch: str = "main") -> tuple[str, str]:
        """Commits `files` on `branch` and pushes it: (the ref's commit before, after)."""
        try:
            before = self.git("rev-parse", f"origin/{branch}")
        except subprocess.CalledProcessError:
            before = ZERO
        self.git("checkout", "-q", "-B", branch)
        for name, content in files.items():
            (self.work / name).parent.mkdir(parents=True, exist_ok=True)
            (self.work / name).write_text(content)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", "change")
        self.git("push", "-q", "origin", branch)
        return before, self.git("rev-parse", "HEAD")

    def close(self) -> None:
        self.daemon.terminate()
        self.daemon.wait(10)
