"""The edge proxy as Dployr sees it: its status, a restart, and routes added by hand.

A route added by hand is a domain binding with a raw upstream URL instead of a resource,
kept in the organization's `services` environment; the edge proxy serves it like any other
binding. Upstreams on this machine's loopback could reach other organizations' ports, so only
the instance's operators (admins of its first organization) may add those, and nobody may
point a route at Caddy's admin API.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from pydantic import field_validator
from sqlalchemy import select

from launchbay.drivers.edge_proxy import EdgeError
from launchbay.engine.routing import routes, upstream_dial
from launchbay.operations.catalog import Context, operation
from launchbay.operations.compat.blueprints import services_environment
from launchbay.operations.edge.domains import bind, check_domain, realize
from launchbay.operations.errors import Conflict, Forbidden, NotFound, Unavailable
from launchbay.operations.schemas import Empty, Field, Schema, Timestamp
from launchbay.operations.servers import default_server, require_instance_operator
from launchbay.store.models import DomainBinding


def check_upstream(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL such as http://localhost:3000")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError("must be a scheme, host and port only (no path, query or user)")
    try:
        parts.port  # noqa: B018 (validates the port)
    except ValueError as exc:
        raise ValueError("has an invalid port") from exc
    return f"{parts.scheme}://{parts.netloc}"


class ProxyState(Schema):
    status: str  # running | stopped | disabled
    routes: int


def proxy_state(ctx: Context) -> ProxyState:
    """Whether Caddy answers, and how many routes it serves for the organization."""
    status = "disabled" if ctx.edge is None else (
        "running" if ctx.edge.caddy.alive() else "stopped")
    count = sum(1 for r in routes(ctx.db, ctx.settings) if r.organization_id == ctx.org_id)
    return ProxyState(status=status, routes=count)


@operation("proxy.status", role="developer")
def proxy_status(ctx: Context, _: Empty) -> ProxyState:
    """Whether the edge proxy runs, and how many of the organization's routes it serves."""
    return proxy_state(ctx)


class Message(Schema):
    message: str


@operation("proxy.restart", role="admin", audit="proxy.restarted")
def restart_proxy(ctx: Context, _: Empty) -> Message:
    """Restarts the edge proxy (every organization's traffic pauses for a moment: operators
    only) and loads its routes again."""
    require_instance_operator(ctx, "the shared edge proxy")
    if ctx.edge is None:
        raise Conflict("this control plane runs no edge proxy", code="edge_proxy_disabled")
    try:
        ctx.edge.restart()
    except EdgeError as exc:
        raise Unavailable(f"the edge proxy did not restart: {exc}",
                          code="edge_proxy_failed") from exc
    ctx.audit(None)
    return Message(message="Proxy restarted successfully")


class HandRoute(Schema):
    domain: str = Field(min_length=3, max_length=253)
    upstream: str = Field(min_length=8, max_length=500)

    _domain = field_validator("domain")(classmethod(lambda cls, v: check_domain(v)))
    _upstream = field_validator("upstream")(classmethod(lambda cls, v: check_upstream(v)))


class HandRouteOut(Schema):
    id: str
    domain: str
    upstream: str
    tls_mode: str
    status: str
    created_at: Timestamp


def _on_this_machine(host: str) -> bool:
    """Whether `host` is (or resolves to) a loopback, unspecified or link-local address."""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return host == "localhost"
    for text in addresses:
        ip = ipaddress.ip_address(str(text).split("%")[0])
        if ip.is_loopback or ip.is_unspecified or ip.is_link_local:
            return True
    return False


def _check_reach(ctx: Context, upstream: str) -> None:
    dial, _ = upstream_dial(upstream)
    host, _, port = dial.rpartition(":")
    if not _on_this_machine(host.strip("[]")):
        return
    admin_port = ctx.settings.edge_admin.rpartition(":")[2]
    if port == admin_port:
        raise Forbidden("a route cannot point at the edge proxy's admin API",
                        code="upstream_forbidden")
    require_instance_operator(ctx, "a route to this machine's own addresses")


@operation("proxy.routes.add", role="admin", audit="proxy.route-added")
def add_route(ctx: Context, data: HandRoute) -> HandRouteOut:
    """Serves a domain from a raw upstream URL through the edge proxy."""
    _check_reach(ctx, data.upstream)
    env = services_environment(ctx)
    b = bind(ctx, data.domain, project_id=env.project_id, environment_id=env.id,
             server_id=default_server(ctx).id, upstream=data.upstream,
             tls_mode=ctx.settings.edge_domain_tls)
    ctx.audit(b.id, domain=b.domain_name, upstream=b.upstream)
    return _out(b)


def _out(b: DomainBinding) -> HandRouteOut:
    return HandRouteOut(id=b.id, domain=b.domain_name, upstream=b.upstream or "",
                        tls_mode=b.tls_mode, status=b.status, created_at=b.created_at)


class HandRouteRef(Schema):
    domain: str = Field(min_length=1, max_length=253)


@operation("proxy.routes.remove", role="admin", audit="proxy.route-removed")
def remove_route(ctx: Context, data: HandRouteRef) -> HandRouteOut:
    """Stops serving a domain that was routed by hand."""
    b = ctx.db.scalar(select(DomainBinding).where(
        DomainBinding.organization_id == ctx.org_id, DomainBinding.upstream.is_not(None),
        DomainBinding.domain_name == data.domain.strip().lower().rstrip(".")))
    if b is None:
        raise NotFound("no route was added by hand for that domain", code="route_not_found")
    out = _out(b)
    ctx.db.delete(b)
    realize(ctx, b, "delete")
    ctx.audit(b.id, domain=b.domain_name)
    return out


class HandRouteList(Schema):
    items: list[HandRouteOut]


@operation("proxy.routes.list")
def list_routes(ctx: Context, _: Empty) -> HandRouteList:
    """The routes added by hand, by domain."""
    rows = ctx.db.scalars(select(DomainBinding).where(
        DomainBinding.organization_id == ctx.org_id, DomainBinding.upstream.is_not(None))
        .order_by(DomainBinding.domain_name))
    return HandRouteList(items=[_out(b) for b in rows])
