"""Routing: the edge proxy's configuration, computed from the store and loaded into Caddy.

Every resource whose current release answers on a port gets a route from its generated
hostname, `{resource}-{environment}-{project}.{base domain}`, to that port; every domain
binding a route that serves the same release or redirects to its canonical binding. TLS
bindings are served on the HTTPS port with an imported certificate, Caddy's internal CA or
ACME; their plain-HTTP requests are redirected. The whole configuration is loaded at once and
carries a content hash as its `@id`, so a quick look tells whether Caddy still has it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import or_, select
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from launchbay.crypto import SecretBox
from launchbay.drivers import dns_lookup, tls_certificates
from launchbay.drivers.edge_proxy import Edge, EdgeError, RemoteCaddy
from launchbay.engine.cluster_edge import ClusterCaddy
from launchbay.engine.plan import ReleasePlan
from launchbay.engine.runtime import SERVICE, RuntimeFailure
from launchbay.engine.targets import Targets
from launchbay.engine.worker import Job, Retry
from launchbay.settings import Settings
from launchbay.slugs import slugify
from launchbay.store.models import (
    AccessPolicy,
    Certificate,
    Deployment,
    DomainBinding,
    Environment,
    LifecycleStatus,
    OperatorWork,
    Project,
    Resource,
    Server,
    new_id,
    utcnow,
)
from launchbay.store.profiles import AccessProfile, RoutePayload

log = logging.getLogger("launchbay.routing")
SERVER, TLS_SERVER = "launchbay", "launchbay-tls"
# Every configuration change restarts Caddy's servers: requests in flight on the old ones get
# this long to finish (Caddy's default waits forever, pinning retired upstreams). Idle
# keep-alive connections are closed at once; see docs/architecture.md, "Edge proxy reloads".
GRACE_PERIOD = "30s"


DEFAULT_TEMPLATE = "{resource}-{environment}-{project}.{baseDomain}"


def access_policy(db: DbSession, server_id: str) -> tuple[str, str]:
    """(mode, hostname template) for a server's resources: its own policy, else the system's,
    else generated hostnames on with the default template."""
    found = {p.scope_kind: p for p in db.scalars(select(AccessPolicy).where(or_(
        (AccessPolicy.scope_kind == "deployment-target") & (AccessPolicy.server_id == server_id),
        (AccessPolicy.scope_kind == "system") & AccessPolicy.server_id.is_(None))))}
    policy = found.get("deployment-target") or found.get("system")
    return (policy.mode, policy.template) if policy else ("enabled", DEFAULT_TEMPLATE)


def generated_host(db: DbSession, settings: Settings, resource: Resource,
                   env: Environment | None = None, project: Project | None = None,
                   policy: tuple[str, str] | None = None) -> str | None:
    """The resource's generated hostname, or None when its access profile or the policy (its
    server's `access_policy`, unless given) turn generated access off."""
    env = env or db.get_one(Environment, resource.environment_id)
    project = project or db.get_one(Project, resource.project_id)
    return hostname(settings, resource.slug, resource.access_profile, env.name, project.slug,
                    policy or access_policy(db, resource.server_id))


def hostname(settings: Settings, slug: str, access_profile: dict[str, Any], env_name: str,
             project_slug: str, policy: tuple[str, str]) -> str | None:
    """`generated_host` from what it reads (a sweep of every resource reads columns)."""
    mode, template = policy
    if mode == "disabled" or AccessProfile.model_validate(
            access_profile).generated_access_mode == "disabled":
        return None
    # An app named like its project (what `launchbay deploy ./folder` makes) is named once:
    # `shop-production.localhost`, not `shop-production-shop.localhost`.
    host = template.format(resource=slug, environment=slugify(env_name),
                           project="" if project_slug == slug else project_slug,
                           baseDomain=settings.base_domain)
    return re.sub(r"-+(?=\.)|(?<=\.)-+|^-+", "", re.sub(r"-{2,}", "-", host))


REMOTE_PORTS = {"edge_bind": "", "edge_http_port": 80, "edge_https_port": 443}


def public_url(settings: Settings, host: str, tls: bool = False, remote: bool = False) -> str:
    """The URL of `host` at an edge: the control plane's (on its configured ports), or that
    of a server reached over SSH (`remote`: on 80 and 443)."""
    ports = REMOTE_PORTS if remote else {"edge_http_port": settings.edge_http_port,
                                         "edge_https_port": settings.edge_https_port}
    port, default = (ports["edge_https_port"], 443) if tls else (ports["edge_http_port"], 80)
    return f"{'https' if tls else 'http'}://{host}{'' if port == default else f':{port}'}"


_REMOTE: dict[str, bool] = {}  # never changes for a server: the local one has no credential


def on_remote_server(db: DbSession, server_id: str | None) -> bool:
    """Whether the server is reached over SSH (its routes are served by its own edge). Read
    once per server and process: a list of many rows asks it of each."""
    if not server_id:
        return False
    if server_id not in _REMOTE:
        credential = db.execute(select(Server.credential_id).where(
            Server.id == server_id)).first()
        if credential is None:
            return False
        _REMOTE[server_id] = credential[0] is not None
    return _REMOTE[server_id]


@dataclass
class Route:
    id: str
    organization_id: str
    resource_id: str | None  # None: a route added by hand, to a raw upstream
    hosts: list[str]
    path_prefix: str
    upstream: str | None  # host:port of the current release (or of a hand route's upstream)
    redirect: tuple[str, int] | None = None  # (location without the path, status)
    tls: str = "disabled"  # disabled | auto | internal | manual
    upstream_tls: bool = False  # an https:// upstream

    def caddy(self, https_port: int | None = None) -> dict[str, Any]:
        """This route in Caddy's JSON; with `https_port`, as the plain-HTTP route of a TLS host,
        which redirects to HTTPS on that port."""
        match: dict[str, Any] = {"host": self.hosts}
        if self.path_prefix != "/":
            prefix = self.path_prefix.rstrip("/")
            match["path"] = [prefix, f"{prefix}/*"]
        if https_port is not None:
            port = "" if https_port == 443 else f":{https_port}"
            handle = _redirect("https://{http.request.host}" + port, 308)
        elif self.redirect:
            handle = _redirect(*self.redirect)
        elif self.upstream is None:
            handle = {"handler": "static_response", "status_code": 503,
                      "body": "this app is not running (stopped, or not deployed yet)\n"}
        else:
            # Retry a refused connection briefly, so a request never fails at the instant a
            # release is replaced.
            handle = {"handler": "reverse_proxy", "upstreams": [{"dial": self.upstream}],
                      "load_balancing": {"try_duration": "5s", "try_interval": "100ms"}}
            if self.upstream_tls:
                handle["transport"] = {"protocol": "http", "tls": {}}
        return {"@id": self.id + ("-to-https" if https_port is not None else ""),
                "match": [match], "handle": [handle], "terminal": True}


def _redirect(location: str, status: int) -> dict[str, Any]:
    return {"handler": "static_response", "status_code": status,
            "headers": {"Location": [location + "{http.request.uri}"]}}


def _served_by(server_id: str | None) -> Any:
    """The servers an edge serves: one reached over SSH, or (None) the control plane's own."""
    return Server.id == server_id if server_id else Server.credential_id.is_(None)


def routes(db: DbSession, settings: Settings, resource_id: str | None = None,
           server_id: str | None = None) -> list[Route]:
    """The routes the store says an edge should serve (all, or one resource's), most
    specific first: the local edge's, or those of the server `server_id`."""
    query = (select(Resource, Environment, Project)
             .join(Environment, Resource.environment_id == Environment.id)
             .join(Project, Resource.project_id == Project.id)
             .join(Server, Resource.server_id == Server.id)
             .where(Server.edge_proxy_kind == "caddy"))
    if resource_id:
        query = query.where(Resource.id == resource_id)
    else:
        query = query.where(_served_by(server_id))
    found = []
    for resource, env, project in db.execute(query).all():
        current = db.get(Deployment, resource.current_deployment_id) \
            if resource.current_deployment_id else None
        upstream = _upstream(current)
        # A stopped release keeps its hostname, answered 503 until it is started again.
        host = generated_host(db, settings, resource, env, project) if current else None
        if host:
            found.append(Route(
                id=f"lb-res-{resource.id}", organization_id=resource.organization_id,
                resource_id=resource.id, hosts=[host],
                path_prefix=AccessProfile.model_validate(resource.access_profile).path_prefix,
                upstream=upstream,
                tls=settings.edge_generated_tls))
        for b in db.scalars(select(DomainBinding).where(DomainBinding.resource_id == resource.id)):
            redirect = None
            target = db.get(DomainBinding, b.redirect_to) if b.redirect_to else None
            if target is not None:
                tls = target.tls_mode != "disabled"
                redirect = (public_url(settings, target.domain_name, tls,
                                       on_remote_server(db, resource.server_id)),
                            b.redirect_status or 301)
            found.append(Route(id=f"lb-dom-{b.id}", organization_id=b.organization_id,
                               resource_id=resource.id,
                               hosts=[b.domain_name], path_prefix=b.path_prefix,
                               upstream=upstream, redirect=redirect, tls=b.tls_mode))
    if resource_id is None:
        found += hand_routes(db, server_id)
    return sorted(found, key=lambda r: (-len(r.path_prefix), r.id))


def _upstream(current: Deployment | None) -> str | None:
    """Where a release answers: its port on the server's loopback, or a swarm service by
    its name on the overlay network (Swarm's DNS holds its healthy tasks)."""
    if current is None:
        return None
    if current.container_id and current.container_id.startswith(SERVICE):
        port = ReleasePlan.model_validate(current.plan).internal_port
        return f"{current.container_name}:{port}" if port else None
    return f"127.0.0.1:{current.host_port}" if current.host_port else None


def upstream_dial(url: str) -> tuple[str, bool]:
    """(host:port to dial, whether over TLS) of a hand route's upstream URL."""
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    return f"{parts.hostname}:{parts.port or (443 if secure else 80)}", secure


def hand_routes(db: DbSession, server_id: str | None = None) -> list[Route]:
    """Routes added by hand: domain bindings that proxy to a raw upstream."""
    rows = db.scalars(select(DomainBinding).join(Server, DomainBinding.server_id == Server.id)
                      .where(DomainBinding.upstream.is_not(None),
                             Server.edge_proxy_kind == "caddy", _served_by(server_id)))
    return [Route(id=f"lb-dom-{b.id}", organization_id=b.organization_id, resource_id=None,
                  hosts=[b.domain_name],
                  path_prefix=b.path_prefix, upstream=dial, tls=b.tls_mode, upstream_tls=secure)
            for b in rows for dial, secure in [upstream_dial(b.upstream or "")]]


def render(found: list[Route], settings: Settings,
           certificates: list[dict[str, Any]]) -> dict[str, Any]:
    """Caddy's configuration for `found` routes, with `certificates` ({certificate, key, tags})
    for `manual` TLS."""
    not_found = {"handle": [{"handler": "static_response", "status_code": 404,
                             "body": "no app is served at this address\n"}]}
    tls_routes = [r for r in found if r.tls != "disabled"]
    servers: dict[str, Any] = {SERVER: {
        "listen": [f"{settings.edge_bind}:{settings.edge_http_port}"],
        "routes": [r.caddy(settings.edge_https_port if r.tls != "disabled" else None)
                   for r in found] + [not_found],
        "automatic_https": {"disable": True},
    }}
    apps: dict[str, Any] = {"http": {"http_port": settings.edge_http_port,
                                     "https_port": settings.edge_https_port,
                                     "grace_period": GRACE_PERIOD, "servers": servers}}
    if tls_routes:
        servers[TLS_SERVER] = {
            "listen": [f"{settings.edge_bind}:{settings.edge_https_port}"],
            "routes": [r.caddy() for r in tls_routes] + [not_found],
            "tls_connection_policies": [{}], "automatic_https": {"disable": True}}
        policies = []
        internal = sorted({h for r in tls_routes if r.tls == "internal" for h in r.hosts})
        if internal:
            policies.append({"subjects": internal, "issuers": [{"module": "internal"}]})
        acme = sorted({h for r in tls_routes if r.tls == "auto" for h in r.hosts})
        if acme:
            issuer: dict[str, Any] = {"module": "acme", "ca": settings.acme_directory}
            if settings.acme_email:
                issuer["email"] = settings.acme_email
            if settings.acme_trusted_roots:
                issuer["trusted_roots_pem_files"] = [settings.acme_trusted_roots]
            policies.append({"subjects": acme, "issuers": [issuer]})
        apps["tls"] = {"automation": {"policies": policies},
                       "certificates": {"automate": internal + acme, "load_pem": certificates}}
        if internal:  # never touch the host's trust stores
            apps["pki"] = {"certificate_authorities": {"local": {"install_trust": False}}}
    digest = hashlib.sha256(json.dumps(apps, sort_keys=True).encode()).hexdigest()[:16]
    servers[SERVER]["@id"] = f"{SERVER}-{digest}"
    return {"apps": apps}


def imported_certificates(db: DbSession, secrets: SecretBox) -> list[dict[str, Any]]:
    rows = db.execute(select(Certificate).join(
        DomainBinding, Certificate.domain_binding_id == DomainBinding.id).where(
        Certificate.source == "imported", Certificate.status == "issued",
        DomainBinding.tls_mode == "manual")).scalars()
    return [{"certificate": c.certificate_pem, "key": secrets.decrypt(c.private_key or ""),
             "tags": [c.id]} for c in rows]


def note_certificate(db: DbSession, binding_id: str,
                     found: tls_certificates.CertificateFacts) -> None:
    """Records what Caddy serves for a binding's managed certificate; a new fingerprint is an
    issuance (or, after one, a renewal) in the certificate's attempts."""
    c = db.scalar(select(Certificate).where(Certificate.domain_binding_id == binding_id,
                                            Certificate.source == "managed"))
    if c is None or c.fingerprint == found.fingerprint:
        return
    renewed = c.fingerprint is not None
    c.status, c.issuer, c.fingerprint = "issued", found.issuer, found.fingerprint
    c.not_before, c.expires_at = found.not_before, found.expires_at
    c.key_algorithm, c.subject_alternative_names = found.key_algorithm, found.names
    c.issued_at = utcnow()
    c.attempts = [*(c.attempts or []), {
        "id": new_id("att"), "status": "issued", "reason": "renew" if renewed else "issue",
        "providerKey": c.provider_key, "requestedAt": utcnow().isoformat(),
        "issuedAt": utcnow().isoformat(), "expiresAt": found.expires_at.isoformat()}][-20:]


class EdgeProxy:
    """Keeps a Caddy serving what the store says, whatever restarts: the control plane's own
    (`server_id` None), or that of a server reached over SSH. The local one also keeps the
    remote ones (`remote`) applied."""

    def __init__(self, sessions: sessionmaker, settings: Settings, caddy: Edge,
                 secrets: SecretBox, server_id: str | None = None,
                 remote: RemoteEdges | None = None):
        self.sessions, self.settings, self.caddy, self.secrets = sessions, settings, caddy, secrets
        self.server_id, self.remote = server_id, remote
        self._lock = threading.Lock()
        self._applied: str | None = None
        self._recorded: tuple[str, str | None] | None = None

    def apply(self, server_id: str | None = None) -> None:
        """Loads the desired configuration where Caddy does not have exactly it: into the edge
        serving `server_id` (after a release there: its failure raises, so nothing is retired
        while that edge still routes to it), or into every edge (the ready edges of servers
        over SSH keep their last routes while they cannot be reached)."""
        if server_id is not None and self.remote is not None:
            with self.sessions() as db:
                remote = on_remote_server(db, server_id)
            if remote:
                if self.remote.ready(server_id):
                    self.remote.of(server_id)._apply()
                return
        self._apply()
        if server_id is None and self.remote is not None:
            self.remote.apply()

    def _apply(self) -> None:
        with self._lock, self.sessions() as db:
            config = render(routes(db, self.settings, server_id=self.server_id),
                            self.settings, imported_certificates(db, self.secrets))
            config_id = config["apps"]["http"]["servers"][SERVER]["@id"]
            if config_id == self._applied and self.caddy.has(config_id):
                return
            self.caddy.load(config)
            self._applied = config_id

    def watch(self) -> None:
        """Starts Caddy if it is down and re-applies the routes if it lost them. Route changes
        apply themselves; this only notices Caddy losing what was loaded."""
        try:
            if self._applied is None or not self.caddy.has(self._applied):
                self.bootstrap()
        except EdgeError as exc:
            log.warning("edge proxy: %s", exc)

    def restart(self) -> None:
        """Stops Caddy and starts it again with the routes (one that launchbay does not manage
        only has its configuration loaded again)."""
        if self.settings.edge_manage:
            self.caddy.shutdown()
        self._applied = None
        self.bootstrap(record_always=True)

    def repair(self) -> list[str]:
        """What the doctor does for the edge: Caddy started if it is down, the routes loaded if
        it lost them. Returns what it found and did."""
        done = []
        if not self.caddy.alive():
            done.append("Caddy was not running: started it")
            self._applied = None
        elif self._applied is None or not self.caddy.has(self._applied):
            done.append("Caddy had lost its routes: loaded them")
        self.bootstrap()
        return done

    def bootstrap(self, record_always: bool = False) -> None:
        """Caddy running with the routes loaded, and the servers' edge status recorded (when it
        changes, or always)."""
        if record_always:
            self._recorded = None
        try:
            if self.caddy.start():
                self._applied = None
            self._apply()
        except EdgeError as exc:
            self._record("failed", str(exc))
            raise
        self._record("ready", None)

    def _record(self, status: str, error: str | None) -> None:
        if (status, error) == self._recorded:
            return
        now = utcnow()
        with self.sessions() as db:
            for server in db.scalars(select(Server).where(_served_by(self.server_id))):
                server.edge_proxy_status, server.edge_proxy_error = status, error
                server.edge_proxy_checked_at = now
                if status == "ready":
                    server.edge_proxy_ready_at = now
            db.commit()
        self._recorded = (status, error)

    def refresh_certificates(self) -> None:
        """Looks at what Caddy serves for every managed certificate, so that renewals (and
        expiry dates) show without anybody asking."""
        with self.sessions() as db:
            bindings = list(db.execute(select(DomainBinding.id, DomainBinding.domain_name).where(
                DomainBinding.tls_mode.in_(("auto", "internal")))).all())
        for binding_id, domain in bindings:
            found = self.served_certificate(domain)
            if found is not None and found.covers(domain):
                with self.sessions() as db:
                    note_certificate(db, binding_id, found)
                    db.commit()

    def served_certificate(self, domain: str) -> tls_certificates.CertificateFacts | None:
        """The certificate this edge serves for `domain` now (asked of it directly: a remote
        server's through its tunnel)."""
        host, port = self.caddy.reach(self.settings.edge_bind or "127.0.0.1",
                                      self.settings.edge_https_port)
        return tls_certificates.served(host, port, domain)

    def stop(self) -> None:
        """At the control plane's shutdown: Caddy keeps serving the apps, unless
        `edge_stop_on_exit` says to stop the one launchbay manages."""
        if self.settings.edge_stop_on_exit and self.settings.edge_manage:
            self.caddy.shutdown()
        self.caddy.release()


class RemoteEdges:
    """The edges of servers reached over SSH, each made when first needed: their Caddy listens
    on the server's HTTP and HTTPS ports, and its admin API only on the server's loopback,
    through the server's tunnel."""

    def __init__(self, sessions: sessionmaker, settings: Settings, secrets: SecretBox,
                 targets: Targets):
        self.sessions, self.secrets, self.targets = sessions, secrets, targets
        self.settings = settings.model_copy(update=REMOTE_PORTS)
        self._edges: dict[str, EdgeProxy] = {}
        self._lock = threading.Lock()

    def of(self, server_id: str) -> EdgeProxy:
        with self._lock:
            if server_id not in self._edges:
                with self.sessions() as db:
                    swarm = db.get_one(Server, server_id).provider_key == "docker-swarm"
                caddy: Edge = ClusterCaddy(self.targets, server_id,
                                           self.settings.swarm_edge_image) if swarm else \
                    RemoteCaddy(server_id, lambda: self.targets.tunnel(server_id))
                self._edges[server_id] = EdgeProxy(self.sessions, self.settings, caddy,
                                                   self.secrets, server_id)
            return self._edges[server_id]

    def _ready(self) -> Any:
        return select(Server.id).where(
            Server.credential_id.is_not(None), Server.edge_proxy_kind == "caddy",
            Server.edge_proxy_status == "ready", Server.lifecycle_status == LifecycleStatus.ACTIVE)

    def ready(self, server_id: str) -> bool:
        """Whether the server's edge was bootstrapped (it has routes to keep)."""
        with self.sessions() as db:
            return db.scalar(self._ready().where(Server.id == server_id)) is not None

    def apply(self) -> None:
        """The routes of every active server whose edge was bootstrapped, loaded where they
        changed; a server that cannot be reached keeps its edge's last routes."""
        with self.sessions() as db:
            ready = list(db.scalars(self._ready()))
        for server_id in ready:
            try:
                self.of(server_id)._apply()
            except (EdgeError, RuntimeFailure, OSError) as exc:
                log.warning("edge proxy of %s: %s", server_id, exc)


class RouteRealization:
    """The handler of `route-realization` work: a binding's DNS is observed, the edge proxy
    updated, and for managed TLS the certificate Caddy serves recorded."""

    CERTIFICATE_WAIT = 60.0

    def __init__(self, sessions: sessionmaker, settings: Settings, edge: EdgeProxy | None):
        self.sessions, self.settings, self.edge = sessions, settings, edge

    def run(self, job: Job) -> str:
        binding_id = RoutePayload.model_validate(job.item.payload).domain_binding_id
        with self.sessions() as db:
            binding = db.get(DomainBinding, binding_id) if binding_id else None
            domain = binding.domain_name if binding else None
        edge = self.edge
        if domain:
            expected = self.settings.edge_public_addresses
            with self.sessions() as db:
                server = db.get(Server, binding.server_id) if binding else None
                if server is not None and server.credential_id is not None:
                    expected = [server.public_address or server.host]  # its own edge serves it
                    if edge is not None and edge.remote is not None:
                        edge = edge.remote.of(server.id)
            job.progress(phase="dns", step=f"observing the DNS of {domain}")
            observation = dns_lookup.observe(domain, expected, self.settings.dns_resolver)
            with self.sessions() as db:
                b = db.get(DomainBinding, binding_id)
                if b is not None:
                    b.dns_observation = observation
                    b.verification_attempt_count += 1
                    db.commit()
        if self.edge is None:
            return "succeeded"
        job.progress(phase="proxy", step="loading the edge proxy configuration")
        try:
            self.edge.apply()
        except EdgeError as exc:
            raise Retry("edge-proxy", str(exc)) from exc
        with self.sessions() as db:
            b = db.get(DomainBinding, binding_id) if binding_id else None
            if b is None:
                return "succeeded"
            b.status = "active"
            db.commit()
            managed = b.tls_mode in ("auto", "internal")
        if managed:
            self._record_certificate(job, edge, binding_id, domain)  # type: ignore[arg-type]  # a managed binding has a domain, an edge
        return "succeeded"

    def _record_certificate(self, job: Job, edge: EdgeProxy, binding_id: str,
                            domain: str) -> None:
        """Waits until the binding's edge serves a certificate for the domain, then records
        what it is."""
        deadline = time.monotonic() + self.CERTIFICATE_WAIT
        while True:
            job.progress(phase="certificate", step=f"waiting for a certificate for {domain}")
            found = edge.served_certificate(domain)
            if found is not None and found.covers(domain):
                break
            if time.monotonic() > deadline:
                raise Retry("certificate-pending",
                            f"no certificate for {domain} is served yet")
            time.sleep(0.5)
        with self.sessions() as db:
            note_certificate(db, binding_id, found)
            db.commit()

    def give_up(self, item: OperatorWork, code: str, message: str) -> None:
        binding_id = RoutePayload.model_validate(item.payload).domain_binding_id
        with self.sessions() as db:
            c = db.scalar(select(Certificate).where(Certificate.domain_binding_id == binding_id,
                                                    Certificate.source == "managed"))
            if c is not None and code == "certificate-pending":
                c.status = "failed"
                db.commit()


class ProxyBootstrap:
    """The handler of `proxy-bootstrap` work: the edge proxy started and its routes loaded."""

    def __init__(self, edge: EdgeProxy | None):
        self.edge = edge

    def run(self, job: Job) -> str:
        if self.edge is None:
            return "succeeded"  # no edge proxy on this control plane: nothing to start
        job.progress(phase="proxy", step="starting the edge proxy and loading its routes")
        edge = self.edge
        if job.item.server_id and self.edge.remote is not None:
            with self.edge.sessions() as db:
                server = db.get(Server, job.item.server_id)
                if server is not None and server.credential_id is not None:
                    edge = self.edge.remote.of(server.id)
        try:
            edge.bootstrap(record_always=True)
        except (EdgeError, RuntimeFailure, OSError) as exc:
            raise Retry("edge-proxy", str(exc)) from exc
        return "succeeded"

    def give_up(self, item: OperatorWork, code: str, message: str) -> None:
        pass
