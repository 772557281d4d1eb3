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
