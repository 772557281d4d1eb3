"""Build and deploy from source: seconds from a new commit to the new code serving, for the
Python fixture (auto-detected, Dockerfile generated), cold (nothing of the app cached) and warm
(a one-line change: the dependency layer is reused).

Last line: `build_deploy: cold_s=... warm_s=...`
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import docker
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "engine")]
from test_builds import APP, repo  # noqa: E402  (the same fixture as the tests)

from launchbay.cli.main import app as cli  # noqa: E402, F401  (the package must be importable)

import images  # noqa: E402  (the tests' locally built images)


def serving(url: str, text: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).text == text:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise TimeoutError(url)


def main() -> None:
    base = images.ensure_python_base()
    data = tempfile.mkdtemp(prefix="lb-bench-")
    port = 18000 + os.getpid() % 1000
    env = {**os.environ, "LAUNCHBAY_DATA_DIR": data, "LAUNCHBAY_LISTEN": f"127.0.0.1:{port}",
           "LAUNCHBAY_EDGE_ENABLED": "false",
           "LAUNCHBAY_BUILD_BASE_IMAGES": f'{{"python": "{base}"}}'}
    env.pop("LAUNCHBAY_DATABASE_URL", None)
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
                assert time.monotonic() < deadline
                time.sleep(0.1)
        api.post("/bootstrap/auth/first-admin",
                 json={"email": "bench@example.com", "password": "bench-password"})
        api.headers["Authorization"] = "Bearer " + api.post("/auth/login", json={
            "email": "bench@example.com", "password": "bench-password"}).json()["token"]
        api.cookies.clear()
        server_id = api.get("/servers").json()["items"][0]["id"]
        source = Path(tempfile.mkdtemp(prefix="lb-bench-src-")) / "app"
        # A requirements file nobody has built: the dependency layer is built cold.
        repo(source, {"requirements.txt": f"# {uuid.uuid4()}\n", "app.py": APP})
        project = api.post("/projects", json={"name": "bench"}).json()["id"]
        environment = api.post("/environments", json={"projectId": project,
                                                      "name": "production"}).json()["id"]
        resource = api.post("/resources", json={
            "projectId": project, "environmentId": environment, "name": "web",
            "source": {"kind": "git", "locator": str(source), "gitRef": "main"},
            "networkProfile": {"internalPort": 8000}}).json()["id"]

        def push_and_serve(text: str) -> float:
            repo(source, {"app.py": APP.replace("hello from python", text)})
            start = time.monotonic()
            deployment = api.post("/deployments", json={
                "projectId": project, "environmentId": environment,
                "resourceId": resource}).json()["id"]
            while True:
                shown = api.get(f"/deployments/{deployment}").json()["deployment"]
                assert shown["status"] not in ("failed", "canceled"), shown["errorMessage"]
                if shown["status"] == "succeeded":
                    break
                time.sleep(0.05)
            serving(shown["url"], text + "\n")
            return time.monotonic() - start

        cold = push_and_serve("cold release")
        warm = push_and_serve("warm release")
    finally:
        serve.terminate()
        serve.wait(20)
        if server_id:
            client = docker.from_env()
            for c in client.api.containers(all=True, filters={
                    "label": [f"launchbay.server={server_id}"]}):
                client.api.remove_container(c["Id"], force=True)
            for n in client.api.networks(filters={"label": [f"launchbay.server={server_id}"]}):
                client.api.remove_network(n["Id"])
    print(f"build_deploy: cold_s={cold:.2f} warm_s={warm:.2f}")


if __name__ == "__main__":
    main()
