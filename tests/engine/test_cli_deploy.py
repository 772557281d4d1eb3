"""The CLI's app commands against a real server and Docker engine, and `launchbay worker`."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import httpx

from launchbay.cli.apps import split_image

from docker_support import body, containers, eventually, remove_runtime, wait
from support import ADMIN_EMAIL, ADMIN_PASSWORD, free_port, login, make_app


def test_split_image():
    assert split_image("nginx") == {"kind": "docker-image", "imageName": "nginx",
                                    "imageTag": "latest"}
    assert split_image("registry:5000/team/app:1.2")["imageName"] == "registry:5000/team/app"
    assert split_image("registry:5000/team/app")["imageTag"] == "latest"
    assert split_image("app@sha256:" + "a" * 64)["imageDigest"] == "sha256:" + "a" * 64


def test_apps_deploy_logs_rollback_ps(cli, api):
    cli("projects", "create", "shop")
    cli("envs", "create", "shop", "production", "--kind", "production")
    created = json.loads(cli("apps", "create", "web", "--project", "shop", "--env", "production",
                             "--port", "8080", "--json"))
    out = cli("deploy", "web", "--image", "lbtest/hello:v1")
    assert "deployed" in out and "now serving" in out
    url = json.loads(cli("apps", "show", "web", "--json"))["accessSummary"][
        "latestGeneratedAccessRoute"]["url"]
    assert body(url) == "hello v1\n"
    out = cli("deploy", "shop/production/web", "--image", "lbtest/hello:v2", "--quiet")
    v2_url = out.strip().split(": ")[-1]
    assert body(v2_url) == "hello v2\n"

    api.post(f"/resources/{created['id']}/health-policy", {"healthCheck": {
        "intervalSeconds": 1, "timeoutSeconds": 1, "retries": 1, "startPeriodSeconds": 0,
        "http": {"path": "/missing"}}})
    failed = cli("deploy", "web", "--image", "lbtest/hello:v3", ok=False)
    assert "deployment failed" in failed and "HTTP 404" in failed
    assert body(v2_url) == "hello v2\n"  # the failed release never took over
    # ...nor did its image: the app is still configured as what serves it, and says both.
    def configured() -> str:
        return json.loads(cli("apps", "show", "web", "--json"))["source"]["imageTag"]
    assert configured() == "v2"
    shown = cli("apps", "show", "web")
    assert "lbtest/hello:v2" in shown and "serving; last deploy failed" in shown
    assert "HTTP 404" in shown  # the last failure, beside the serving release
    listed = cli("apps", "list")  # by project and environment name, on one line each
    assert any("web" in line and "shop" in line and "production" in line and
               "serving; last deploy failed" in line for line in listed.splitlines()), listed
    assert "lbtest/hello:nosuchtag" in cli("deploy", "web", "--image", "lbtest/hello:nosuchtag",
                                           "--quiet", ok=False)
    followed = cli("deploy", "web", "--image", "lbtest/hello:nosuchtag", ok=False)
    assert followed.count("is not available") == 1, followed  # said once, in its phase
    assert "deployment failed (see above)" in followed
    assert any("is not available" in line and "LAUNCHBAY_SHARED_IMAGES" in line
               for line in followed.splitlines()), followed  # one line, not cut at 80 columns
    assert configured() == "v2"

    printed = cli("logs", "web", "--tail", "5")
    assert "response:200" in printed
    assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", line)
               for line in printed.splitlines()), printed  # when each line was written
    assert not re.match(r"\d{4}-", cli("logs", "web", "--tail", "1", "--no-timestamps"))
    api.post(f"/resources/{created['id']}/health-policy/reset")
    out = cli("rollback", "web")
    rolled_url = out.strip().split(": ")[-1]
    assert body(rolled_url) == "hello v1\n"
    assert configured() == "v1"  # what serves is what a plain deploy deploys again
    rows = json.loads(cli("ps", "--json"))
    assert rows[0]["app"] == "web" and rows[0]["url"] == rolled_url
    assert "no app 'ghost'" in cli("deploy", "ghost", ok=False)


def test_apps_stop_start_restart_and_deletes_with_typed_confirmation(cli, api):
    cli("projects", "create", "shop")
    cli("envs", "create", "shop", "production", "--kind", "production")
    cli("envs", "create", "shop", "staging")
    cli("envs", "set", "shop/staging", "LOG_LEVEL=debug")
    for env in ("production", "staging"):
        cli("apps", "create", "web", "--project", "shop", "--env", env, "--port", "8080")
        cli("deploy", f"shop/{env}/web", "--image", "lbtest/hello:v1", "--quiet")
    web = "shop/production/web"
    (container,) = containers(**{"launchbay.resource": json.loads(
        cli("apps", "show", web, "--json"))["resource"]["id"]})

    assert "stopped web" in cli("apps", "stop", web)
    container.reload()
    assert container.status == "exited"
    assert "stopped" in cli("apps", "show", web) and "stopped" in cli("apps", "list")
    apps = json.loads(cli("system", "status", "--json"))["apps"]
    assert (apps["total"], apps["running"], apps["stopped"]) == (2, 1, 1)
    assert "started web" in cli("apps", "start", web)
    url = json.loads(cli("apps", "show", web, "--json"))["accessSummary"][
        "latestGeneratedAccessRoute"]["url"]
    assert body(url) == "hello v1\n"
    started_at = (container.reload(), container.attrs["State"]["StartedAt"])[1]
    assert "restarted web" in cli("apps", "restart", web)
    container.reload()
    assert container.attrs["State"]["StartedAt"] != started_at and container.status == "running"

    # A typed confirmation: a wrong name, or none without a terminal, deletes nothing.
    assert "nothing was deleted" in cli("apps", "delete", web, "--confirm", "wbe", ok=False)
    assert "--confirm" in cli("apps", "delete", web, ok=False)
    assert len(json.loads(cli("apps", "list", "--json"))) == 2
    out = cli("apps", "delete", web, "--confirm", "web")
    assert "deleted app web" in out
    eventually(lambda: not containers(**{"launchbay.resource": container.labels[
        "launchbay.resource"]}))

    # An environment goes with its apps and variables; then the project with the rest.
    out = cli("envs", "delete", "shop/staging", "--confirm", "staging")
    assert "1 variable(s)" in out and "(web)" in out and "deleted environment staging" in out
    envs = json.loads(cli("envs", "list", "--project", "shop", "--json"))
    assert [e["name"] for e in envs] == ["production"]
    assert json.loads(cli("apps", "list", "--json")) == []
    cli("apps", "create", "api", "--project", "shop", "--env", "production", "--port", "8080")
    assert "nothing was deleted" in cli("projects", "delete", "shop", "--confirm", "x", ok=False)
    assert "deleted project shop" in cli("projects", "delete", "shop", "--confirm", "shop")
    assert json.loads(cli("projects", "list", "--json")) == []
    assert json.loads(cli("apps", "list", "--json")) == []


def test_separate_worker_process_runs_deployments(tmp_path):
    """`serve` without workers plus a `launchbay worker` process on the same database."""
    port = free_port()
    env = {**os.environ, "LAUNCHBAY_DATA_DIR": str(tmp_path / "data"),
           "LAUNCHBAY_EDGE_ENABLED": "false",
           "LAUNCHBAY_LISTEN": f"127.0.0.1:{port}", "LAUNCHBAY_WORKER_POLL_SECONDS": "0.1"}
    env.pop("LAUNCHBAY_DATABASE_URL", None)
    exe = os.path.join(os.path.dirname(sys.executable), "launchbay")
    serve = subprocess.Popen([exe, "serve"], env={**env, "LAUNCHBAY_WORKERS": "0"},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = None
    server_id = None
    try:
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        deadline = time.monotonic() + 30
        while True:
            try:
                if http.get("/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.1)
        http.post("/api/bootstrap/auth/first-admin",
                  json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
        api = login(http, ADMIN_EMAIL, ADMIN_PASSWORD)
        server_id = api.get("/servers")["items"][0]["id"]
        ids = make_app(api, "lbtest/hello:v1")
        deployment = api.post("/deployments", {"projectId": ids["project"],
                                               "environmentId": ids["env"],
                                               "resourceId": ids["resource"]})["id"]
        time.sleep(1)
        assert api.get(f"/deployments/{deployment}")["deployment"]["status"] == "created"
        worker = subprocess.Popen([exe, "worker"], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        done = wait(api, deployment, timeout=60)
        assert done["status"] == "succeeded" and body(done["url"]) == "hello v1\n"
    finally:
        for proc in (serve, worker):
            if proc is not None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(20)
        if server_id:
            remove_runtime(server_id)
