"""S3-compatible object storage, through MinIO's client (imported on first use: the idle
server does not need it). Credentials live in memory only, never on a command line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


class StorageError(Exception):
    """The object store refused or could not be reached."""


@dataclass(frozen=True)
class Bucket:
    endpoint: str  # http(s)://host[:port]
    name: str
    access_key: str
    secret_key: str
    region: str | None = None

    def _client(self) -> Any:
        from minio import Minio

        url = urlsplit(self.endpoint)
        return Minio(url.netloc, access_key=self.access_key, secret_key=self.secret_key,
                     secure=url.scheme == "https", region=self.region)

    def put(self, key: str, path: Path, sha256: str) -> int:
        """Uploads the file at `path` as `key` (its sha256 in the object's metadata); the
        size the store reports for it."""
        from minio.error import MinioException

        try:
            client = self._client()
            client.fput_object(self.name, key, str(path), metadata={"sha256": sha256})
            return int(client.stat_object(self.name, key).size or 0)
        except (MinioException, OSError, ValueError) as exc:
            raise StorageError(str(exc)) from None

    def get(self, key: str, path: Path) -> None:
        from minio.error import MinioException

        try:
            self._client().fget_object(self.name, key, str(path))
        except (MinioException, OSError, ValueError) as exc:
            raise StorageError(str(exc)) from None

    def remove(self, key: str) -> None:
        from minio.error import MinioException

        try:
            self._client().remove_object(self.name, key)
        except (MinioException, OSError, ValueError) as exc:
            raise StorageError(str(exc)) from None
