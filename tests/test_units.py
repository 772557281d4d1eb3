"""Pure logic: settings, crypto, slugs, scopes, the catalog's declarations."""

from __future__ import annotations

import os
import stat

import pytest
from pydantic import ValidationError

from launchbay.crypto import SecretBox, hash_password, verify_password
from launchbay.http.native import ROUTES, UPLOADS, WEBHOOKS
from launchbay.http.streams import STREAMED
from launchbay.operations import CATALOG, Actor
from launchbay.operations.identity.tokens import check_scope
from launchbay.settings import Settings
from launchbay.slugs import slugify, unique_slug


def test_settings_from_env_and_toml(tmp_path, monkeypatch):
    toml = tmp_path / "launchbay.toml"
    toml.write_text('base_domain = "apps.example.com"\nlisten = "0.0.0.0:9000"\n')
    monkeypatch.setenv("LAUNCHBAY_CONFIG", str(toml))
    monkeypatch.setenv("LAUNCHBAY_LISTEN", "127.0.0.1:9100")
    import importlib

    import launchbay.settings as module

    importlib.reload(module)
    s = module.Settings(data_dir=tmp_path)
    assert s.base_domain == "apps.example.com"  # from the file
    assert (s.host, s.port) == ("127.0.0.1", 9100)  # the environment wins over the file
    assert s.resolved_database_url == f"sqlite:///{tmp_path / 'launchbay.db'}"
    monkeypatch.delenv("LAUNCHBAY_CONFIG")
    importlib.reload(module)


def test_listen_must_be_host_port():
    for bad in ["8420", "localhost", "host:99999", ":80"]:
        with pytest.raises(ValidationError):
            Settings(listen=bad)


def test_master_secret_is_generated_once_with_mode_0600(tmp_path):
    first = Settings(data_dir=tmp_path).secret_key
    path = tmp_path / "master.key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert Settings(data_dir=tmp_path).secret_key == first
    assert Settings(data_dir=tmp_path, master_secret="given").secret_key == b"given"


def test_secret_box_round_trip_and_wrong_key():
    box = SecretBox(b"one")
    sealed = box.encrypt("hunter2")
    assert "hunter2" not in sealed and box.decrypt(sealed) == "hunter2"
    assert box.encrypt("hunter2") != sealed  # random nonce
    with pytest.raises(ValueError):
        SecretBox(b"two").decrypt(sealed)


def test_password_hashing():
    hashed = hash_password("correct horse")
    assert hashed.startswith("$argon2")
    assert verify_password("correct horse", hashed)
    assert not verify_password("wrong", hashed)
    assert not verify_password("anything", None)


def test_slugs():
    assert slugify("Web Shop!") == "web-shop"
    assert slugify("Émile's  café") == "emiles-cafe"
    assert slugify("***") == "x"
    assert unique_slug("a", lambda s: s in {"a", "a-2"}) == "a-3"


def test_generated_hostnames_name_an_app_named_like_its_project_once(tmp_path):
    from launchbay.engine.routing import DEFAULT_TEMPLATE, generated_host
    from launchbay.store.models import Environment, Project, Resource

    settings = Settings(data_dir=tmp_path)
    env = Environment(name="Production")

    def host(resource: str, project: str, template: str = DEFAULT_TEMPLATE) -> str | None:
        return generated_host(None, settings, Resource(slug=resource, access_profile={}), env,  # type: ignore[arg-type]  # no store needed with env, project and policy given
                              Project(slug=project), policy=("enabled", template))

    assert host("web", "shop") == "web-production-shop.localhost"
    assert host("shop", "shop") == "shop-production.localhost"
    assert host("shop", "shop", "{project}-{resource}.{baseDomain}") == "shop.localhost"


def test_failed_probes_say_what_happened_in_words():
    import socket
    import threading

    from launchbay.engine.health import probe
    from launchbay.engine.plan import HealthSpec

    spec = HealthSpec(timeout_seconds=1)
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # bound, never listening: refused
        ok, seen = probe(f"http://127.0.0.1:{port}/", spec)
    assert not ok and seen.startswith("nothing accepts connections on the app's port")
    with socket.socket() as server:  # accepts, then hangs up without a word
        server.bind(("127.0.0.1", 0))
        server.listen()
        threading.Thread(target=lambda: server.accept()[0].close(), daemon=True).start()
        ok, seen = probe(f"http://127.0.0.1:{server.getsockname()[1]}/", spec)
    assert not ok and seen == "the app closed the connection without an HTTP answer"
    assert "Error" not in seen


def test_health_probes_name_themselves_and_runtime_logs_leave_their_lines_out():
    import threading
    from datetime import datetime, timezone
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from launchbay.engine.health import PROBE_AGENT, probe
    from launchbay.engine.plan import HealthSpec
    from launchbay.engine.runtime import LogLine
    from launchbay.operations.resources import RuntimeTarget

    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers["User-Agent"])
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    with HTTPServer(("127.0.0.1", 0), Handler) as server:
        threading.Thread(target=server.handle_request, daemon=True).start()
        assert probe(f"http://127.0.0.1:{server.server_port}/", HealthSpec())[0]
    assert seen == [PROBE_AGENT]

    now = datetime.now(timezone.utc)
    lines = [LogLine("stdout", now, f'"GET / HTTP/1.1" 200 "-" "{PROBE_AGENT}"'),
             LogLine("stdout", now, '"GET /cart HTTP/1.1" 200 "-" "Mozilla/5.0"')]
    target = RuntimeTarget(resource_id="r", deployment_id="d", server_id="s",
                           container_id="c", service_name="web")
    assert [line.message for line in lines if target.shown(line)] == [lines[1].message]
    assert all(target.model_copy(update={"include_probes": True}).shown(line)
               for line in lines)


def test_scopes():
    assert check_scope("*") == "*"
    assert check_scope("projects:read")
    for bad in ["projects", "projects:delete", "rockets:read", "PROJECTS:read"]:
        with pytest.raises(ValueError):
            check_scope(bad)
    reader = Actor(user_id="u", organization_id="o", token_id="t",
                   scopes=frozenset({"projects:read", "environments:write"}))
    assert reader.scope_allows("projects", write=False)
    assert not reader.scope_allows("projects", write=True)
    assert reader.scope_allows("environments", write=False)  # write implies read
    assert Actor(user_id="u", organization_id="o").scope_allows("anything", write=True)


def test_catalog_declarations():
    routed = {key for _, _, key, _ in ROUTES + UPLOADS} | set(STREAMED) | (
        {"source-events.ingest"} if WEBHOOKS else set())
    assert routed == set(CATALOG), "every operation is reachable over the native API"
    for key, op in CATALOG.items():
        assert op.description and op.description != key, f"{key} needs a docstring"
        if op.scope == "organization":
            assert op.role in ("viewer", "developer", "admin", "owner")
        if op.mutates:
            assert "." in op.audit  # an event name like `project.created`
    assert not CATALOG["projects.list"].mutates and CATALOG["projects.create"].mutates


def test_the_code_passes_the_linter():
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    ruff = Path(sys.executable).parent / "ruff"
    result = subprocess.run([str(ruff), "check", "src", "tests", "bench"], cwd=root,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_the_code_passes_the_type_checker():
    """mypy with the project's config (pyproject.toml): every `type: ignore` must be needed."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    mypy = Path(sys.executable).parent / "mypy"
    result = subprocess.run([str(mypy)], cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_the_package_metadata_installs_without_deprecation_warnings():
    """`project.license` as a table makes setuptools warn on every install (PEP 639 wants
    an SPDX string)."""
    import tomllib
    from pathlib import Path

    meta = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert isinstance(meta["project"]["license"], str)
    assert "setuptools>=77" in meta["build-system"]["requires"]


def test_health_change_budget_bursts_then_refills():
    from datetime import timedelta

    from launchbay.engine.health_monitor import BURST, NOTHING_RECORDED, PER_HOUR, utcnow

    now, last, recorded = utcnow(), NOTHING_RECORDED, 0
    for n in range(BURST + 3):  # a change every time: only the burst is admitted at once
        if last.admits(f"s{n}", now):
            last, recorded = last.after(f"s{n}", now), recorded + 1
    assert recorded == BURST and not last.admits("other", now)
    assert not last.admits(last.state or "", now + timedelta(hours=5))  # no change, no row
    later = now + timedelta(hours=1 / PER_HOUR)
    assert last.admits("other", later)  # the budget refills
    assert not last.after("other", later).admits("again", later)


def test_health_rollups_merge_to_the_worse_minute():
    from launchbay.engine.health_monitor import merged

    assert merged("-hdu" + "-" * 56, "uh-n" + "-" * 56)[:4] == "uhdu"
