"""Helpers for tests that deploy to the real Docker engine."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from typing import Any

import docker
import httpx

from launchbay.settings import Settings

from support import Api, free_port

TERMINAL = {"succeeded", "failed", "canceled", "rolled-back"}


def set_image(api: Api, resource: str, image: str) -> None:
    name, _, tag = image.partition(":")
    api.post(f"/resources/{resource}/source",
             {"source": {"kind": "docker-image", "imageName": name, "imageTag": tag}})


def deploy(api: Api, ids: dict[str, str]) -> str:
    return api.post("/deployments", {"projectId": ids["project"], "environmentId": ids["env"],
                                     "resourceId": ids["resource"]})["id"]


def wait(api: Api, deployment: str, statuses: set[str] = TERMINAL,
         timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        d = api.get(f"/deployments/{deployment}")["deployment"]
        if d["status"] in statuses:
            return d
        assert time.monotonic() < deadline, f"{deployment} stuck in {d['status']}"
        time.sleep(0.1)


def deployed(api: Api, ids: dict[str, str], timeout: float = 60) -> dict[str, Any]:
    d = wait(api, deploy(api, ids), timeout=timeout)
    assert d["status"] == "succeeded", (d["errorCode"], d["errorMessage"], [
        e["message"] for e in api.get(f"/deployments/{d['id']}/logs")["logs"]][-8:])
    return d


def body(url: str, within: float = 5) -> str:
    """The 200 answer of `url`, allowing a just-started process a moment to listen."""
    deadline = time.monotonic() + within
    while True:
        try:
            response = httpx.get(url, timeout=5)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, f"{url} does not answer"
            time.sleep(0.05)
    assert response.status_code == 200, response.status_code
    return response.text


def containers(**labels: str) -> list[Any]:
    filters = ["launchbay.managed=true"] + [f"{k}={v}" for k, v in labels.items()]
    return docker.from_env().containers.list(all=True, filters={"label": filters},
                                             ignore_removed=True)  # (removed meanwhile)


def remove_runtime(server_id: str) -> None:
    """Everything a test's control plane made in Docker: containers, then networks."""
    client = docker.from_env()
    label = {"label": [f"launchbay.server={server_id}"]}
    for entry in client.api.containers(all=True, filters=label):
        try:
            client.api.remove_container(entry["Id"], force=True)
        except docker.errors.NotFound:  # the engine retired it meanwhile
            pass
    for network in client.api.networks(filters=label):
        try:
            client.api.remove_network(network["Id"])
        except docker.errors.NotFound:
            pass


def with_edge(tmp_path, database_url: str, **extra) -> Settings:
    """A control plane with its own Caddy on loopback (on free ports unless `extra` says)."""
    values = {"data_dir": tmp_path / "data", "database_url": database_url, "workers": 2,
              "worker_poll_seconds": 0.1, "work_lease_seconds": 10, "reconcile_seconds": 2,
              "edge_enabled": True, "edge_bind": "127.0.0.1", "edge_http_port": free_port(),
              "edge_admin": f"127.0.0.1:{free_port()}", "edge_drain_seconds": 0.5,
              "shipped_templates": False, **extra}
    return Settings(**values)


def edge_settings(tmp_path, database_url: str, mock_dns: str, http_port: int,
                  **extra) -> Settings:
    """`with_edge`, domains resolved by the mock DNS and served without TLS: what the
    compatible faces' end-to-end tests run on (their own template catalog, unless they ask
    for the shipped templates)."""
    return with_edge(tmp_path, database_url, edge_http_port=http_port,
                     edge_domain_tls="disabled", dns_resolver=mock_dns,
                     edge_public_addresses=["127.0.0.1"], **extra)


def host_of(api: Api, resource: str) -> str:
    """The hostname the edge generated for `resource`."""
    route = api.get(f"/resources/{resource}", params={"includeAccessSummary": "true"})[
        "accessSummary"]["latestGeneratedAccessRoute"]
    return route["hostname"]


def via_url(url: str, edge_port: int) -> httpx.Response:
    """A public URL of the edge, sent to Caddy on loopback (the name resolves nowhere else)."""
    parts = httpx.URL(url)
    return httpx.get(f"http://127.0.0.1:{edge_port}{parts.raw_path.decode()}",
                     headers={"Host": parts.host}, timeout=5)


def eventually(check, within: float = 30):  # type: ignore[no-untyped-def]
    """`check()`'s first truthy result, tried every 0.1 s for `within` seconds; a request
    that fails meanwhile (a proxy reloading, a container starting) is just tried again."""
    deadline = time.monotonic() + within
    while True:
        try:
            if result := check():
                return result
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.1)


def tags_of(engine: Any, repository: str) -> list[str]:
    """The tags `repository:*` that exist on the engine."""
    return [t for t in engine.built_tags() if t.startswith(f"{repository}:")]


def serve(tmp_path: Any, port: int, **settings: str) -> subprocess.Popen:
    """`launchbay serve` of its own (edge off, short leases), data in `tmp_path/data`, ready;
    `settings`: more LAUNCHBAY_* variables. For tests that kill it and start it again."""
    env = {k: v for k, v in os.environ.items() if k != "LAUNCHBAY_DATABASE_URL"}
    env.update({"LAUNCHBAY_DATA_DIR": str(tmp_path / "data"), "LAUNCHBAY_EDGE_ENABLED": "false",
                "LAUNCHBAY_LISTEN": f"127.0.0.1:{port}", "LAUNCHBAY_WORK_LEASE_SECONDS": "3",
                "LAUNCHBAY_WORKER_POLL_SECONDS": "0.1", "LAUNCHBAY_RECONCILE_SECONDS": "1",
                **settings})
    exe = os.path.join(os.path.dirname(sys.executable), "launchbay")
    proc = subprocess.Popen([exe, "serve"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready").status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline and proc.poll() is None, "serve did not start"
        time.sleep(0.1)


def first_admin(port: int, bootstrap: bool = True) -> Api:
    """The first admin of a `serve` of a test's own, signed in (`bootstrap`: made first)."""
    from support import ADMIN_EMAIL, ADMIN_PASSWORD, login

    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    if bootstrap:
        http.post("/api/bootstrap/auth/first-admin",
                  json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    return login(http, ADMIN_EMAIL, ADMIN_PASSWORD)


def listed(client: Any, all: bool = True, label: str | None = None) -> list[Any]:
    """The engine's containers (with `label`), those removed while listed left out."""
    return client.containers.list(all=all, filters={"label": [label]} if label else {},
                                  ignore_removed=True)


def browser_get(client: httpx.Client, url: str, host: str) -> httpx.Response:
    """GET as a browser does: a kept-alive connection closed by a proxy reload before any
    response byte is retried once on a new connection (RFC 9112 §9.3.1; see
    docs/architecture.md, "Edge proxy reloads"). Anything else is a failure."""
    try:
        return client.get(url, headers={"Host": host})
    except (httpx.ReadError, httpx.RemoteProtocolError):
        return client.get(url, headers={"Host": host})


class Traffic:
    """Bounded constant traffic to an edge, sent as a browser sends it: `rate` GETs a second
    to `urls` in turn (with the Host `host`) while in the `with` block, for `seconds` at the
    most. `seen`: (status, body) of each, status 0 for a request that failed."""

    def __init__(self, urls: list[str], host: str, rate: float = 20, seconds: float = 60):
        self.urls, self.host, self.rate, self.seconds = urls, host, rate, seconds
        self.seen: list[tuple[int, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._send)

    def _send(self) -> None:
        client = httpx.Client(timeout=5)
        started = time.monotonic()
        for n in range(int(self.rate * self.seconds)):
            if self._stop.is_set() or time.monotonic() - started > self.seconds:
                break
            try:
                r = browser_get(client, self.urls[n % len(self.urls)], self.host)
                self.seen.append((r.status_code, r.text))
            except httpx.HTTPError as exc:
                self.seen.append((0, repr(exc)))
            time.sleep(max(0.0, started + (n + 1) / self.rate - time.monotonic()))

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(self.seconds)

    @property
    def failures(self) -> list[tuple[int, str]]:
        return [s for s in self.seen if s[0] != 200]
