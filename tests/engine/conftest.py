"""Fixtures of the tests that deploy to the real Docker engine. Every test here is an
end-to-end test, marked `slow` (`make test-fast` leaves them out)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from launchbay.settings import Settings

import images
from docker_support import remove_runtime
from git_support import Repository
from remote_support import server_of_its_own
from support import ADMIN_EMAIL, ADMIN_PASSWORD, Api, free_port, login, spawn

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test here is slow. Each runs on SQLite, the default store; on PostgreSQL too
    only if it is about the store (`both_stores`): the operations are tested on both stores
    by the fast tests, and an end-to-end test is the same on either otherwise."""
    mine = [item for item in items if HERE in Path(item.fspath).parents]
    dropped = [item for item in mine if not item.get_closest_marker("both_stores") and
               getattr(item, "callspec", None) is not None and
               item.callspec.params.get("database_url") == "postgresql"]
    for item in mine:
        item.add_marker(pytest.mark.slow)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in dropped]


@pytest.fixture(scope="session", autouse=True)
def test_images() -> None:
    images.ensure_all()


@pytest.fixture(scope="module")
def mock_dns() -> Iterator[str]:
    """pebble-challtestsrv's DNS on loopback: every name resolves to 127.0.0.1."""
    proc = spawn(["pebble-challtestsrv", "-dns01", f"127.0.0.1:{(port := free_port())}",
                  "-http01", "", "-https01", "", "-tlsalpn01", "",
                  "-management", f"127.0.0.1:{free_port()}", "-defaultIPv4", "127.0.0.1",
                  "-defaultIPv6", ""])
    time.sleep(0.5)
    yield f"127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def remote() -> Iterator[dict[str, Any]]:
    """A server reached over SSH (a network namespace of this machine), for one test."""
    yield from server_of_its_own()


@pytest.fixture
def settings(tmp_path, database_url) -> Settings:
    """Databases run the tests' images (a test builds the ones it uses: `images.ensure_app`);
    backup destinations may be on loopback (the `s3` fixture)."""
    return Settings(data_dir=tmp_path / "data", database_url=database_url, workers=2,
                    edge_enabled=False, shipped_templates=False,
                    worker_poll_seconds=0.1, work_lease_seconds=5, reconcile_seconds=2,
                    database_images={"postgres": images.POSTGRES, "mysql": images.MARIADB,
                                     "redis": images.REDIS},
                    volume_tool_image="lbtest/busybox:v1",
                    backup_allowed_networks=["127.0.0.0/8"])


@pytest.fixture
def cli(api, server, tmp_path, monkeypatch):
    """`launchbay ARGS...` as the first admin against `server`; its output (`ok`: whether it
    must succeed)."""
    from typer.testing import CliRunner

    from launchbay.cli.main import app

    monkeypatch.setenv("LAUNCHBAY_CLI_CONFIG", str(tmp_path / "cli"))
    monkeypatch.setenv("LAUNCHBAY_URL", server)
    monkeypatch.setenv("LAUNCHBAY_TOKEN", api.token)
    runner = CliRunner()

    def run(*args: str, ok: bool = True) -> str:
        result = runner.invoke(app, list(args))
        assert (result.exit_code == 0) == ok, (args, result.exit_code, result.output)
        return result.output

    return run


@pytest.fixture(scope="module")
def s3() -> Iterator[str]:
    """An S3-compatible server on loopback (moto's), with the bucket `backups`."""
    from minio import Minio

    port = free_port()
    proc = spawn([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p",
                  str(port)])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline and proc.poll() is None, "moto did not start"
            time.sleep(0.2)
    Minio(f"127.0.0.1:{port}", access_key="test", secret_key="test-secret", secure=False,
          region="us-east-1").make_bucket("backups")
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def api(server, cp) -> Iterator[Api]:
    """The first admin over real HTTP, against a control plane whose engine runs."""
    http = httpx.Client(base_url=server, timeout=30)
    http.post("/api/bootstrap/auth/first-admin",
              json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    admin = login(http, ADMIN_EMAIL, ADMIN_PASSWORD)
    admin.server_id = admin.get("/servers")["items"][0]["id"]  # type: ignore[attr-defined]
    yield admin
    cp.workers.stop()  # nothing starts containers (a warm pool filling) while they go
    remove_runtime(admin.server_id)  # type: ignore[attr-defined]
    http.close()


@pytest.fixture
def repository(tmp_path):
    """A git repository served on loopback (`git daemon`)."""
    r = Repository(tmp_path / "git")
    yield r
    r.close()
