"""The README's first-steps block, pasted whole into a shell as a new user would, on its own
port and data directory, with locally built images in place of the public nginx ones."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import httpx

import images
from docker_support import body, remove_runtime
from support import free_port, login

ROOT = Path(__file__).resolve().parents[2]


def first_steps() -> str:
    readme = (ROOT / "README.md").read_text()
    return re.search(r"```sh\n(make run > .*?)```", readme, re.S).group(1)


def test_the_readme_first_steps_work_pasted_whole(tmp_path):
    for tag in ("lbtest/readme:1.26", "lbtest/readme:1.27"):
        images.ensure(tag)
    port = free_port()
    block = (first_steps().replace("http://127.0.0.1:8420", f"http://127.0.0.1:{port}")
             .replace("nginx:1.2", "lbtest/readme:1.2")
             .replace("launchbay.log", str(tmp_path / "launchbay.log")))
    env = {**os.environ, "LAUNCHBAY_DATA_DIR": str(tmp_path / "data"),
           "LAUNCHBAY_LISTEN": f"127.0.0.1:{port}", "LAUNCHBAY_URL": f"http://127.0.0.1:{port}",
           "LAUNCHBAY_CLI_CONFIG": str(tmp_path / "cli"), "LAUNCHBAY_EDGE_ENABLED": "false",
           "LAUNCHBAY_BUILD_BASE_IMAGES": f'{{"python": "{images.ensure_python_base()}"}}'}
    shell = subprocess.Popen(["bash", "-e", "-c", block], cwd=ROOT, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             start_new_session=True)  # its `make run &` too
    try:
        printed, _ = shell.communicate(timeout=300)
        assert shell.returncode == 0, printed
        password = re.search(r"your password \(shown once\): (\S+)", printed).group(1)
        api = login(httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30),
                    "you@example.com", password)
        try:
            assert "logged in as you@example.com" in printed
            assert "DATABASE_URL" in printed and "postgres://db.internal" not in printed
            apps = {r["name"]: r for r in api.get("/resources")["items"]}
            assert set(apps) == {"web", "python-app"}, apps
            urls = {name: api.get(f"/resources/{r['id']}", params={
                "includeAccessSummary": "true"})["accessSummary"][
                "latestGeneratedAccessRoute"]["url"] for name, r in apps.items()}
            assert body(urls["web"]) == "nginx 1.26\n"  # rolled back to 1.26
            assert body(urls["python-app"]).startswith("hello from ")
            assert printed.count("deployed dep_") == 4, printed  # 2 deploys, a rollback, a build
            assert "created project python-app, environment production, app python-app" in printed
        finally:
            remove_runtime(api.get("/servers")["items"][0]["id"])
    finally:
        os.killpg(shell.pid, signal.SIGTERM)
