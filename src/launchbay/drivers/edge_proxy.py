"""The edge proxy driver: Caddy, driven only through its admin API.

launchbay keeps the desired routes in its own store and always loads Caddy's whole
configuration at once (`POST /load`), so Caddy's state can be rebuilt at any time. When
launchbay manages the local Caddy, it starts `caddy run` with its own state directory (the
local CA and certificates live there) and starts it again if it stops.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx

log = logging.getLogger("launchbay.edge")


class EdgeError(Exception):
    """Caddy is unreachable, or refused a configuration (the message says why)."""


class Caddy:
    def __init__(self, admin: str, *, state_dir: Path | None = None, manage: bool = True,
                 binary: str = "caddy"):
        self.admin = admin
        self.state_dir = state_dir
        self.manage = manage
        self.binary = binary
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._http = httpx.Client(base_url=f"http://{admin}", timeout=10, trust_env=False)

    @property
    def available(self) -> bool:
        """Whether this machine can run the Caddy that launchbay manages."""
        return not self.manage or shutil.which(self.binary) is not None

    def admin_block(self) -> dict[str, Any]:
        """Part of every configuration: the admin endpoint stays where it is, and Caddy keeps no
        copy of its own (launchbay's store is the source of truth)."""
        return {"listen": self.admin, "config": {"persist": False}}

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
            deadline = time.monotonic() + 15
            while not self.alive():
                if self._process.poll() is not None or time.monotonic() > deadline:
                    raise EdgeError(f"Caddy did not start; see {self.state_dir / 'caddy.log'}")
                time.sleep(0.05)
            log.info("started Caddy (admin %s, pid %s)", self.admin, self._process.pid)
            return True

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
