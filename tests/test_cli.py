"""The CLI against a real server over HTTP."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys

import httpx
import pytest
from typer.testing import CliRunner

from launchbay.cli.main import app

from support import ADMIN_EMAIL, ADMIN_PASSWORD, free_port, login, wait_until_up


@pytest.fixture
def cli(server, tmp_path, monkeypatch):
    monkeypatch.setenv("LAUNCHBAY_CLI_CONFIG", str(tmp_path / "cli"))
    monkeypatch.setenv("LAUNCHBAY_URL", server)
    monkeypatch.delenv("LAUNCHBAY_TOKEN", raising=False)
    httpx.post(f"{server}/api/bootstrap/auth/first-admin",
               json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    runner = CliRunner()

    def run(*args: str, ok: bool = True) -> str:
        result = runner.invoke(app, list(args))
        if ok:
            assert result.exit_code == 0, (args, result.output)
        else:
            assert result.exit_code != 0, (args, result.output)
        return result.output

    run.server = server  # type: ignore[attr-defined]
    run.config = tmp_path / "cli"  # type: ignore[attr-defined]
    return run


def test_login_projects_and_environments(cli):
    out = cli("login", "--url", cli.server, "--email", ADMIN_EMAIL, "--password", ADMIN_PASSWORD)
    assert "logged in as admin@example.com" in out
    creds = cli.config / "credentials.json"
    assert stat.S_IMODE(os.stat(creds).st_mode) == 0o600
    assert json.loads(creds.read_text())["token"].startswith("lbs_")

    cli("projects", "create", "Web Shop")
    projects = json.loads(cli("projects", "list", "--json"))
    assert [p["slug"] for p in projects] == ["web-shop"]
    assert "Web Shop" in cli("projects", "list")  # the table for people

    cli("envs", "create", "web-shop", "production", "--kind", "production")
    cli("envs", "set", "web-shop/production", "DATABASE_URL=postgres://db", "--secret")
    cli("envs", "set", "web-shop/production", "LOG_LEVEL=debug")
    shown = json.loads(cli("envs", "show", "web-shop/production", "--json"))
    values = {v["key"]: v["value"] for v in shown["maskedVariables"]}
    assert values == {"DATABASE_URL": "****", "LOG_LEVEL": "debug"}
    assert "postgres://db" not in cli("envs", "show", "web-shop/production")

    cli("envs", "clone", "web-shop/production", "staging")
    diff = json.loads(cli("envs", "diff", "web-shop/production", "web-shop/staging", "--json"))
    assert {d["change"] for d in diff} == {"unchanged"}
    envs = json.loads(cli("envs", "list", "--project", "web-shop", "--json"))
    assert sorted(e["name"] for e in envs) == ["production", "staging"]

    cli("projects", "archive", "web-shop")
    failed = cli("envs", "create", "web-shop", "qa", ok=False)
    assert "archived" in failed
    cli("projects", "restore", "web-shop")

    cli("logout")
    assert not creds.exists()


def test_cli_errors_are_one_readable_line(cli):
    out = cli("projects", "list", ok=False)
    assert "authentication required" in out and "launchbay login" in out
    bad = cli("login", "--url", cli.server, "--email", ADMIN_EMAIL, "--password", "nope", ok=False)
    assert "invalid email or password" in bad
    cli("login", "--url", cli.server, "--email", ADMIN_EMAIL, "--password", ADMIN_PASSWORD)
    assert "no project 'ghost'" in cli("projects", "show", "ghost", ok=False)
    assert "expected KEY=VALUE" in cli("envs", "set", "env_x", "NOVALUE", ok=False)


def test_serve_and_db_upgrade_as_processes(tmp_path):
    """`launchbay db upgrade` and `launchbay serve --listen --face` from a shell, with env
    settings."""
    env = {**os.environ, "LAUNCHBAY_DATA_DIR": str(tmp_path / "data"),
           "LAUNCHBAY_EDGE_ENABLED": "false"}
    env.pop("LAUNCHBAY_DATABASE_URL", None)
    exe = os.path.join(os.path.dirname(sys.executable), "launchbay")
    upgraded = subprocess.run([exe, "db", "upgrade"], env=env, capture_output=True, text=True,
                              timeout=60)
    assert upgraded.returncode == 0, upgraded.stderr
    assert (tmp_path / "data" / "launchbay.db").exists()
    port, shipyard, dploy = free_port(), free_port(), free_port()
    proc = subprocess.Popen([exe, "serve", "--listen", f"127.0.0.1:{port}", "--face",
                             f"shipyard={shipyard}", "--face", f"dploy={dploy}"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/health", proc)
        assert httpx.get(f"http://127.0.0.1:{port}/ready").json()["ready"] is True
        # The Shipyard face at the root of its own port.
        refused = httpx.get(f"http://127.0.0.1:{shipyard}/api/deployments")
        assert refused.status_code == 401 and refused.json() == {"error": "Unauthorized"}
        # The Dploy face at the root of its own, offering the templates launchbay ships.
        offered = httpx.get(f"http://127.0.0.1:{dploy}/api/environments/available").json()
        assert {t["name"] for t in offered} == {"webterm", "static-site"}
        refused = httpx.get(f"http://127.0.0.1:{dploy}/run/webterm")
        assert refused.status_code == 401 and refused.json() == {"error": "unauthorized"}
        key = tmp_path / "data" / "master.key"
        assert not key.exists() or stat.S_IMODE(os.stat(key).st_mode) == 0o600
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.slow
def test_make_run_answers_health(tmp_path):
    """The README's first command, as written, serves /health."""
    import signal
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    port = free_port()
    env = {**os.environ, "LAUNCHBAY_DATA_DIR": str(tmp_path), "LAUNCHBAY_EDGE_ENABLED": "false",
           "LAUNCHBAY_LISTEN":
           f"127.0.0.1:{port}"}
    proc = subprocess.Popen(["make", "-s", "run"], cwd=root, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # a first run installs the virtualenv
        wait_until_up(f"http://127.0.0.1:{port}/health", proc, within=300)
        assert httpx.get(f"http://127.0.0.1:{port}/health").json() == {"status": "ok"}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)


def test_system_and_proxy_commands(cli):
    cli("login", "--url", cli.server, "--email", ADMIN_EMAIL, "--password", ADMIN_PASSWORD)
    info = json.loads(cli("system", "info", "--json"))
    assert info["hardware"]["cpu_count"] == os.cpu_count()
    assert "FILESYSTEM" in cli("system", "info")
    assert "database: reachable, migrations current" in cli("system", "doctor")
    assert json.loads(cli("system", "status", "--json"))["proxy"]["status"] == "disabled"
    assert "routing app.example.com" in cli("proxy", "add", "app.example.com",
                                            "http://10.1.2.3:8080")
    assert "http://10.1.2.3:8080" in cli("proxy", "routes")
    cli("proxy", "remove", "app.example.com")
    assert json.loads(cli("proxy", "routes", "--json")) == []
    assert "no route was added by hand" in cli("proxy", "remove", "app.example.com", ok=False)


def test_ephemeral_environment_commands(cli):
    cli("login", "--url", cli.server, "--email", ADMIN_EMAIL, "--password", ADMIN_PASSWORD)
    admin = login(httpx.Client(base_url=cli.server), ADMIN_EMAIL, ADMIN_PASSWORD)
    admin.post("/templates", {"name": "lab", "description": "A lab", "ttl": 3600,
                              "maxExtends": 1, "blueprint": {"image": "lbtest/hello:v1"},
                              "parameters": [{"name": "size", "required": True}]})
    assert "A lab" in cli("instances", "templates")
    assert "missing required parameter size" in cli("instances", "run", "lab", "--no-wait",
                                                    ok=False)
    started = json.loads(cli("instances", "run", "lab", "-p", "size=L", "--no-wait", "--json"))
    assert started["status"] == "pending"
    listed = cli("instances", "list")
    assert started["uuid"] in listed and "1 of 5 allowed" in listed
    assert "lab now expires at" in cli("instances", "extend", "lab")
    assert "maximum extensions reached" in cli("instances", "extend", "lab", ok=False)
    assert "deleted your lab environment" in cli("instances", "delete", "lab", "--yes")
    # Being torn down, or already gone (its teardown may finish before this list)
    left = json.loads(cli("instances", "list", "--json"))["environments"]
    assert [e["status"] for e in left] in ([], ["Deleting"])


def test_login_without_a_terminal_reads_the_password_from_standard_input(cli, tmp_path):
    """As a script runs it: no terminal, so no getpass warning and abort; the password comes
    on standard input, and without one the error says how to give it."""
    exe = os.path.join(os.path.dirname(sys.executable), "launchbay")
    env = {**os.environ, "LAUNCHBAY_CLI_CONFIG": str(tmp_path / "piped")}
    env.pop("LAUNCHBAY_PASSWORD", None)
    args = [exe, "login", "--url", cli.server, "--email", ADMIN_EMAIL]
    piped = subprocess.run(args, input=ADMIN_PASSWORD + "\n", capture_output=True, text=True,
                           env=env, timeout=60)
    assert piped.returncode == 0, piped.stderr
    assert "logged in as admin@example.com" in piped.stdout
    assert "GetPassWarning" not in piped.stderr
    nothing = subprocess.run(args, input="", capture_output=True, text=True, env=env,
                             timeout=60)
    assert nothing.returncode == 2
    assert "--password" in nothing.stderr and "LAUNCHBAY_PASSWORD" in nothing.stderr


def test_errors_say_what_happened(cli):
    """A wrong password is not told to log in; a folder that does not exist is not an app."""
    wrong = cli("login", "--url", cli.server, "--email", ADMIN_EMAIL, "--password", "nope-nope",
                ok=False)
    assert "401" in wrong and "run `launchbay login`" not in wrong
    cli("login", "--url", cli.server, "--email", ADMIN_EMAIL, "--password", ADMIN_PASSWORD)
    missing = cli("deploy", "./nosuchdir", ok=False)
    assert "no folder './nosuchdir'" in missing and "no app" not in missing


@pytest.mark.parametrize("command", [[], ["deploy"], ["envs", "set"], ["apps", "delete"],
                                     ["instances", "run"]])
def test_help_names_values_by_what_they_are_and_keeps_sentences_whole(command):
    shown = subprocess.run([sys.executable, "-m", "launchbay", *command, "--help"],
                           capture_output=True, text=True, check=True,
                           env={**os.environ, "COLUMNS": "200"}).stdout
    assert not re.search(r"<(str|bool|int|float)>", shown), shown
    if not command:
        assert "follow it live; exits non-zero if the deployment fails." in shown
    if command == ["instances", "run"]:
        assert re.search(r"--param\s+-p\s+NAME=VALUE", shown) and "--no-wait" in shown
