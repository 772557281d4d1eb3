"""Routing: the edge proxy's configuration, computed from the store and loaded into Caddy.

Every resource whose current release answers on a port gets a route from its generated
hostname, `{resource}-{environment}-{project}.{base domain}`, to that port. The whole
configuration is loaded at once and carries a content hash as its `@id`, so a quick look
tells whether Caddy still has it (after Caddy or launchbay restarted, say).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from launchbay.edge_proxy import Caddy, EdgeError
from launchbay.settings import Settings
from launchbay.slugs import slugify
from launchbay.store.models import Deployment, Environment, Project, Resource

log = logging.getLogger("launchbay.routing")
SERVER = "launchbay"


def generated_host(resource: Resource, env: Environment, project: Project, base: str) -> str:
    return f"{resource.slug}-{slugify(env.name)}-{project.slug}.{base}"


def public_url(settings: Settings, host: str) -> str:
    port = settings.edge_http_port
    return f"http://{host}{'' if port == 80 else f':{port}'}/"


@dataclass
class Route:
    id: str
    resource_id: str
    hosts: list[str]
    path_prefix: str
    upstream: str | None  # host:port; None with a redirect
    redirect: tuple[str, int] | None = None  # (location, status)

    def caddy(self) -> dict[str, Any]:
        match: dict[str, Any] = {"host": self.hosts}
        if self.path_prefix != "/":
            prefix = self.path_prefix.rstrip("/")
            match["path"] = [prefix, f"{prefix}/*"]
        if self.redirect:
            location, status = self.redirect
            handle = {"handler": "static_response", "status_code": status,
                      "headers": {"Location": [location + "{http.request.uri}"]}}
        else:
            # Retry a refused connection briefly, so a request never fails at the instant a
            # release is replaced.
            handle = {"handler": "reverse_proxy", "upstreams": [{"dial": self.upstream}],
                      "load_balancing": {"try_duration": "5s", "try_interval": "100ms"}}
        return {"@id": self.id, "match": [match], "handle": [handle], "terminal": True}


def routes(db: DbSession, settings: Settings, resource_id: str | None = None) -> list[Route]:
    """The routes the store says the edge should serve (all, or one resource's), most
    specific first."""
    query = (select(Resource, Environment, Project, Deployment)
             .join(Environment, Resource.environment_id == Environment.id)
             .join(Project, Resource.project_id == Project.id)
             .join(Deployment, Resource.current_deployment_id == Deployment.id)
             .where(Deployment.host_port.is_not(None)))
    if resource_id:
        query = query.where(Resource.id == resource_id)
    found = []
    for resource, env, project, current in db.execute(query).all():
        if resource.access_profile.get("generatedAccessMode") == "disabled":
            continue
        found.append(Route(
            id=f"lb-res-{resource.id}", resource_id=resource.id,
            hosts=[generated_host(resource, env, project, settings.base_domain)],
            path_prefix=resource.access_profile.get("pathPrefix", "/"),
            upstream=f"127.0.0.1:{current.host_port}"))
    return sorted(found, key=lambda r: (-len(r.path_prefix), r.id))


def render(found: list[Route], settings: Settings) -> dict[str, Any]:
    listen = f"{settings.edge_bind}:{settings.edge_http_port}"
    server: dict[str, Any] = {
        "listen": [listen],
        "routes": [r.caddy() for r in found] + [{"handle": [{
            "handler": "static_response", "status_code": 404,
            "body": "no app is served at this address\n"}]}],
        "automatic_https": {"disable": True},
    }
    digest = hashlib.sha256(json.dumps(server, sort_keys=True).encode()).hexdigest()[:16]
    server["@id"] = f"{SERVER}-{digest}"
    return {"apps": {"http": {"servers": {SERVER: server}}}}


class EdgeProxy:
    """Keeps Caddy serving what the store says, whatever restarts."""

    def __init__(self, sessions: sessionmaker, settings: Settings, caddy: Caddy):
        self.sessions, self.settings, self.caddy = sessions, settings, caddy
        self._lock = threading.Lock()
        self._applied: str | None = None

    def apply(self) -> None:
        """Loads the desired configuration unless Caddy already has exactly it."""
        with self._lock, self.sessions() as db:
            config = render(routes(db, self.settings), self.settings)
            config_id = config["apps"]["http"]["servers"][SERVER]["@id"]
            if config_id == self._applied and self.caddy.has(config_id):
                return
            self.caddy.load(config)
            self._applied = config_id

    def watch(self) -> None:
        """Starts Caddy if it is down and re-applies the routes if it lost them."""
        try:
            if self.caddy.start():
                self._applied = None
            self.apply()
        except EdgeError as exc:
            log.warning("edge proxy: %s", exc)

    def stop(self) -> None:
        self.caddy.stop()
