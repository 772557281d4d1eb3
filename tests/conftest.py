"""Fixtures: a control plane on SQLite and on PostgreSQL (a copy of a database migrated once
per run), and API clients acting as users."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from launchbay.control_plane import ControlPlane
from launchbay.http.app import create_app
from launchbay.settings import Settings
from launchbay.store.db import make_engine
from launchbay.store.migrate import upgrade

from support import ADMIN_EMAIL, ADMIN_PASSWORD, Api, free_port, login

POSTGRES_URL = os.environ.get("LAUNCHBAY_TEST_POSTGRES_URL")
# What the operator of a test machine allows: the images the tests build locally (no registry
# is reachable), repositories in the tests' own folders and on loopback, GitHub's API on
# loopback (its stand-in, tests/github_standin.py), and servers in the network namespaces
# ../shared/fixtures/remote_server.py makes. Tests of the defaults pass their own settings.
os.environ.setdefault("LAUNCHBAY_SHARED_IMAGES", '["lbtest/*"]')
os.environ.setdefault("LAUNCHBAY_GIT_LOCAL_FOLDERS", '["/tmp"]')
os.environ.setdefault("LAUNCHBAY_GIT_ALLOWED_NETWORKS", '["127.0.0.0/8"]')
os.environ.setdefault("LAUNCHBAY_INTEGRATION_ALLOWED_NETWORKS", '["127.0.0.0/8"]')
os.environ.setdefault("LAUNCHBAY_SERVER_ALLOWED_NETWORKS", '["10.251.0.0/16"]')
# Each test's Caddy goes with its control plane (an install's outlives it).
os.environ.setdefault("LAUNCHBAY_EDGE_STOP_ON_EXIT", "true")


def _postgres(name: str, template: str | None = None) -> str:
    """A new PostgreSQL database (a copy of `template`, if given); its URL."""
    if not POSTGRES_URL:
        if os.environ.get("CI"):
            pytest.fail("LAUNCHBAY_TEST_POSTGRES_URL is not set; run the suite with `make test`")
        pytest.skip("no PostgreSQL configured; `make test` starts one")
    server = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'
                          + (f' TEMPLATE "{template}"' if template else "")))
    server.dispose()
    return f"{POSTGRES_URL.rsplit('/', 1)[0]}/{name}"


def _drop_postgres(url: str) -> None:
    server = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")  # type: ignore[arg-type]
    with server.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))
    server.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """A fresh, empty database on each backend (for the tests of the migrations)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    url = _postgres(f"lb_test_{uuid.uuid4().hex[:12]}")
    yield url
    _drop_postgres(url)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database (for tests that run control planes on one)."""
    url = _postgres(f"lb_test_{uuid.uuid4().hex[:12]}")
    yield url
    _drop_postgres(url)


@pytest.fixture(scope="session")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One database per backend migrated once for the whole run; each test gets a copy."""
    templates: dict[str, str] = {}
    folder = tmp_path_factory.mktemp("migrated")
    upgrade(engine := make_engine(f"sqlite:///{folder / 'launchbay.db'}"))
    engine.dispose()
    templates["sqlite"] = str(folder / "launchbay.db")
    yield templates
    if "postgresql" in templates:
        _drop_postgres(templates["postgresql"])


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Any,
                 migrated: dict[str, str]) -> Iterator[str]:
    """A fresh database on each backend, already at the newest migration."""
    if request.param == "sqlite":
        shutil.copyfile(migrated["sqlite"], tmp_path / "launchbay.db")
        yield f"sqlite:///{tmp_path / 'launchbay.db'}"
        return
    if "postgresql" not in migrated:  # made on first use: a run may not need PostgreSQL
        template = _postgres(f"lb_template_{uuid.uuid4().hex[:8]}")
        upgrade(engine := make_engine(template))
        engine.dispose()
        migrated["postgresql"] = template
    url = _postgres(f"lb_test_{uuid.uuid4().hex[:12]}",
                    template=migrated["postgresql"].rsplit("/", 1)[1])
    yield url
    _drop_postgres(url)


@pytest.fixture
def settings(tmp_path: Any, database_url: str) -> Settings:
    # Tests write their own catalog: the shipped templates are tested in test_templates.py.
    return Settings(data_dir=tmp_path / "data", database_url=database_url, edge_enabled=False,
                    login_max_failures=3, login_lockout_seconds=30, shipped_templates=False)


@pytest.fixture
def cp(settings: Settings) -> Iterator[ControlPlane]:
    control_plane = ControlPlane(settings)
    yield control_plane
    control_plane.close()


@pytest.fixture
def client(cp: ControlPlane) -> TestClient:
    return TestClient(create_app(control_plane=cp))


@pytest.fixture
def admin(client: TestClient) -> Api:
    """The first admin, owner of organization `Default`, logged in."""
    created = client.post("/api/bootstrap/auth/first-admin",
                          json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert created.status_code == 201, created.text
    api = login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    api.org_id = created.json()["organizationId"]  # type: ignore[attr-defined]
    api.user_id = created.json()["userId"]  # type: ignore[attr-defined]
    return api


@pytest.fixture
def server_port() -> int:
    """The port of `server` (a module that must know it beforehand overrides this)."""
    return free_port()


@pytest.fixture
def server(cp: ControlPlane, server_port: int) -> Iterator[str]:
    """The control plane served by uvicorn on a loopback port, for clients that need real HTTP."""
    import threading
    import time

    import uvicorn

    port = server_port
    config = uvicorn.Config(create_app(control_plane=cp), host="127.0.0.1", port=port,
                            log_level="warning")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    uv.should_exit = True
    thread.join(10)
