"""The CLI's HTTP client: credentials on disk, errors turned into one readable line."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import typer

from launchbay.cli.output import err


def credentials_path() -> Path:
    folder = os.environ.get("LAUNCHBAY_CLI_CONFIG") or typer.get_app_dir("launchbay")
    return Path(folder) / "credentials.json"


def save_credentials(url: str, token: str) -> Path:
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"url": url.rstrip("/"), "token": token}, f)
    os.chmod(path, 0o600)
    return path


def load_credentials() -> dict[str, str]:
    """`LAUNCHBAY_URL`/`LAUNCHBAY_TOKEN` win over the file written by `launchbay login`."""
    saved: dict[str, str] = {}
    path = credentials_path()
    if path.exists():
        saved = json.loads(path.read_text())
    url = os.environ.get("LAUNCHBAY_URL") or saved.get("url") or "http://127.0.0.1:8420"
    token = os.environ.get("LAUNCHBAY_TOKEN") or saved.get("token") or ""
    return {"url": url.rstrip("/"), "token": token}


class Client:
    def __init__(self, url: str | None = None, token: str | None = None):
        creds = load_credentials()
        self.url = (url or creds["url"]).rstrip("/")
        token = creds["token"] if token is None else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=f"{self.url}/api", headers=headers, timeout=30)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None,
             params: dict[str, Any] | None = None) -> Any:
        try:
            response = self.http.request(method, path, json=body, params=params)
        except httpx.HTTPError as exc:
            err.print(f"[red]error:[/] cannot reach {self.url}: {exc}")
            raise typer.Exit(2) from None
        if response.status_code >= 400:
            self._fail(response)
        return response.json() if response.content else None

    def _fail(self, response: httpx.Response) -> None:
        """Prints the API's error as one line and exits 1."""
        try:
            problem = response.json()
        except ValueError:
            problem = {"error": response.text or response.reason_phrase}
        message = problem.get("error", "request failed")
        details = problem.get("details")
        if isinstance(details, list):
            message += ": " + "; ".join(f"{d.get('field')}: {d.get('message')}" for d in details)
        if response.status_code == 401 and not response.request.url.path.endswith("/auth/login"):
            message += " (run `launchbay login`)"  # not to someone who just did
        code = problem.get("code", "")
        err.print(f"[red]error:[/] {message} [dim]({response.status_code} {code})[/]")
        raise typer.Exit(1)

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.call("POST", path, body or {})

    def upload(self, path: str, content: bytes, media_type: str) -> Any:
        try:
            response = self.http.post(path, content=content,
                                      headers={"Content-Type": media_type}, timeout=300)
        except httpx.HTTPError as exc:
            err.print(f"[red]error:[/] cannot reach {self.url}: {exc}")
            raise typer.Exit(2) from None
        if response.status_code >= 400:
            self._fail(response)
        return response.json()

    def delete(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.call("DELETE", path, body or {})

    def stream(self, path: str, **params: Any) -> Iterator[dict[str, Any]]:
        """The messages of a Server-Sent Events endpoint, as they come."""
        try:
            with self.http.stream("GET", path, params=params, timeout=None) as response:
                if response.status_code >= 400:
                    response.read()
                    self._fail(response)
                yield from iter_sse(response.iter_lines())
        except httpx.HTTPError as exc:
            err.print(f"[red]error:[/] lost the stream from {self.url}: {exc}")
            raise typer.Exit(2) from None


def iter_sse(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """Parses an event stream into {id, event, data} messages (data decoded as JSON);
    comment lines (heartbeats) are skipped."""
    message: dict[str, Any] = {}
    for line in lines:
        if not line:
            if message:
                yield message
                message = {}
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            message[field] = json.loads(value) if field == "data" else value
    if message:
        yield message


def project_id(client: Client, ref: str) -> str:
    """A project given by id, slug or name."""
    if ref.startswith("prj_"):
        return ref
    for p in client.get("/projects", limit=500)["items"]:
        if ref in (p["slug"], p["name"]):
            return p["id"]
    err.print(f"[red]error:[/] no project {ref!r}")
    raise typer.Exit(1)


def environment_id(client: Client, ref: str) -> str:
    """An environment given by id or as PROJECT/ENVIRONMENT."""
    if ref.startswith("env_"):
        return ref
    project, _, name = ref.rpartition("/")
    if project:
        for e in client.get("/environments", projectId=project_id(client, project),
                            limit=500)["items"]:
            if e["name"] == name:
                return e["id"]
    err.print(f"[red]error:[/] no environment {ref!r} (use an id or PROJECT/ENVIRONMENT)")
    raise typer.Exit(1)
