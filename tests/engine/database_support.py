"""What the database tests share: a client of the S3-compatible server the `s3` fixture
runs, and waiting for the API."""

from __future__ import annotations

import time
from typing import Any

from docker_support import body
from support import Api


def bucket(url: str) -> Any:
    from minio import Minio

    return Minio(url.removeprefix("http://"), access_key="test", secret_key="test-secret",
                 secure=False, region="us-east-1")


def server_container(db_id: str) -> Any:
    """The database's own container (not one of its one-off tool containers)."""
    import docker

    (found,) = [c for c in docker.from_env().containers.list(
        all=True, filters={"label": f"launchbay.database={db_id}"}, ignore_removed=True)
        if "launchbay.run" not in c.labels]
    return found


def until(api: Api, path: str, done: Any, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        shown = api.get(path)
        if done(shown):
            return shown
        assert time.monotonic() < deadline, shown
        time.sleep(0.3)


def rows(url: str) -> str:
    """The rows the test app (`images.ensure_app`) reads from its database."""
    return body(f"{url}/cgi-bin/read").strip()
