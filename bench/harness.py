"""What the benchmarks share: a `launchbay serve` on loopback with its first admin logged in,
an app to deploy, and the cleanup of what it ran in Docker."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "engine")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Running:
    api: httpx.Client  # /api, as the first admin
    server_id: str
    pid: int

    def create_app(self, name: str, **resource: Any) -> dict[str, str]:
        project = self.api.post("/projects", json={"name": f"{name}-bench"}).json()["id"]
        env = self.api.post("/environments", json={"projectId": project,
                                                   "name": "production"}).json()["id"]
        resource_id = self.api.post("/resources", json={
            "projectId": project, "environmentId": env, "name": name, **resource}).json()["id"]
        return {"projectId": project, "environmentId": env, "resourceId": resource_id}

    def deploy(self, app: dict[str, str]) -> str:
        return self.api.post("/deployments", json=app).json()["id"]

    def succeeded(self, deployment: str) -> dict[str, Any]:
        while True:
            shown = self.api.get(f"/deployments/{deployment}").json()["deployment"]
            if shown["status"] == "succeeded":
                return shown
            assert shown["status"] not in ("failed", "canceled"), shown["errorMessage"]
            time.sleep(0.02)


@contextmanager
def launchbay(**settings: str) -> Iterator[Running]:
    """`launchbay serve` with `LAUNCHBAY_*` settings (given without the prefix)."""
    port = free_port()
    # The benchmarks' images are built locally (no registry): the operator shares them.
    env = {k: v for k, v in os.environ.items() if k != "LAUNCHBAY_DATABASE_URL"}
    env.update({"LAUNCHBAY_DATA_DIR": tempfile.mkdtemp(prefix="lb-bench-"),
                "LAUNCHBAY_LISTEN": f"127.0.0.1:{port}", "LAUNCHBAY_SHARED_IMAGES": '["lbtest/*"]',
                "LAUNCHBAY_EDGE_STOP_ON_EXIT": "true",
                **{f"LAUNCHBAY_{k.upper()}": v for k, v in settings.items()}})
    exe = os.path.join(os.path.dirname(sys.executable), "launchbay")
    serve = subprocess.Popen([exe, "serve"], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    server_id = None
    try:
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}/api", timeout=30)
        deadline = time.monotonic() + 60
        while True:
            try:
                api.get("/bootstrap/auth/status")
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and serve.poll() is None, "serve died"
                time.sleep(0.1)
        api.post("/bootstrap/auth/first-admin",
                 json={"email": "bench@example.com", "password": "bench-password"})
        api.headers["Authorization"] = "Bearer " + api.post("/auth/login", json={
            "email": "bench@example.com", "password": "bench-password"}).json()["token"]
        api.cookies.clear()
        server_id = api.get("/servers").json()["items"][0]["id"]
        yield Running(api, server_id, serve.pid)
    finally:
        serve.terminate()
        serve.wait(20)
        if server_id:
            client = docker.from_env()
            label = {"label": [f"launchbay.server={server_id}"]}
            for c in client.api.containers(all=True, filters=label):
                client.api.remove_container(c["Id"], force=True)
            for n in client.api.networks(filters=label):
                client.api.remove_network(n["Id"])
