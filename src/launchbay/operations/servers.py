"""Servers: deployment targets. The local Docker engine is registered on first start and
shared by every organization; capacity is read from the machine and the engine."""

from __future__ import annotations

import os
import shutil
import socket
from typing import Any, Literal, get_args

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session as DbSession

from launchbay.drivers import host_facts
from launchbay.drivers.ssh_transport import Unreachable
from launchbay.engine.runtime import RuntimeFailure
from launchbay.operations.catalog import Context, Role, operation, role_at_least
from launchbay.operations.errors import Forbidden, NotFound
from launchbay.operations.schemas import CountOut, Field, Id, Schema, Timestamp
from launchbay.store.models import (
    Deployment,
    LifecycleStatus,
    Organization,
    Resource,
    Server,
    new_id,
    utcnow,
)

LOCAL = "local-docker"


def ensure_local_server(db: DbSession) -> Server:
    """The shared server for the local engine, created on first start."""
    server = db.scalar(select(Server).where(Server.provider_key == LOCAL,
                                            Server.organization_id.is_(None)))
    if server is None:
        server = Server(id=new_id("srv"), name="local", host=socket.gethostname(), port=0,
                        provider_key=LOCAL, docker_url=None)
        db.add(server)
        db.commit()
    return server


def _visible(ctx: Context):
    """The shared server and the organization's own, but those deleted (kept for history)."""
    return or_(Server.organization_id.is_(None), Server.organization_id == ctx.org_id) & (
        Server.lifecycle_status != LifecycleStatus.DELETED)


def get_server(ctx: Context, server_id: str) -> Server:
    server = ctx.db.scalar(select(Server).where(Server.id == server_id, _visible(ctx)))
    if server is None:
        raise NotFound("server not found", code="server_not_found")
    return server


def default_server(ctx: Context) -> Server:
    """Where a resource goes when it names no server: the organization's own first, among
    those launchbay can deploy to (the local engine: servers over SSH do not run yet)."""
    server = ctx.db.scalar(select(Server).where(
        _visible(ctx), Server.lifecycle_status == LifecycleStatus.ACTIVE,
        Server.provider_key == LOCAL)
                           .order_by(Server.organization_id.is_(None), Server.created_at))
    if server is None:
        raise NotFound("no server is registered", code="server_not_found")
    return server


class EdgeProxy(Schema):
    kind: str = "none"
    status: str = "pending"
    last_attempt_at: Timestamp | None = None
    last_succeeded_at: Timestamp | None = None
    last_error_code: str | None = None
    last_error_message: str | None = None


class ServerSummary(Schema):
    id: str
    name: str
    host: str
    port: int
    provider_key: str
    target_kind: str


class ServerOut(ServerSummary):
    lifecycle_status: str
    deactivated_at: Timestamp | None = None
    deactivation_reason: str | None = None
    edge_proxy: EdgeProxy
    credential: dict[str, Any] | None = None
    # The last connectivity test's (or the background probe's) verdict, for servers over SSH.
    connectivity_status: str | None = None
    connectivity_checked_at: Timestamp | None = None
    public_address: str | None = None  # where its apps' domains should point
    created_at: Timestamp


def edge_proxy(s: Server) -> EdgeProxy:
    return EdgeProxy(kind=s.edge_proxy_kind, status=s.edge_proxy_status,
                     last_attempt_at=s.edge_proxy_checked_at,
                     last_succeeded_at=s.edge_proxy_ready_at,
                     last_error_code="edge-proxy" if s.edge_proxy_error else None,
                     last_error_message=s.edge_proxy_error)


def _out(s: Server) -> ServerOut:
    return ServerOut(id=s.id, name=s.name, host=s.host, port=s.port, provider_key=s.provider_key,
                     target_kind=s.target_kind, lifecycle_status=s.lifecycle_status,
                     edge_proxy=edge_proxy(s),
                     deactivated_at=s.deactivated_at,
                     deactivation_reason=s.deactivation_reason,
                     credential={"kind": "ssh-private-key", "credentialId": s.credential_id,
                                 "username": s.ssh_username, "publicKeyConfigured": True,
                                 "privateKeyConfigured": True,
                                 "hostKeyFingerprint": s.host_key_fingerprint}
                     if s.credential_id else {"kind": "local-docker-socket"},
                     connectivity_status=s.connectivity_status,
                     connectivity_checked_at=s.connectivity_checked_at,
                     public_address=(s.public_address or s.host) if s.credential_id else None,
                     created_at=s.created_at)


@operation("servers.count")
def count_servers(ctx: Context, _: Schema) -> CountOut:
    """How many servers the organization can deploy to."""
    return CountOut(count=ctx.db.scalar(select(func.count()).select_from(Server).where(
        _visible(ctx))) or 0)


class ServerList(Schema):
    items: list[ServerOut]


class ListIn(Schema):
    limit: int = Field(100, gt=0, le=500)


@operation("servers.list")
def list_servers(ctx: Context, data: ListIn) -> ServerList:
    """The servers the organization can deploy to."""
    rows = ctx.db.scalars(select(Server).where(_visible(ctx)).order_by(Server.created_at)
                          .limit(data.limit))
    return ServerList(items=[_out(s) for s in rows])


class ServerRef(Schema):
    server_id: Id


class StatusCount(Schema):
    status: str
    count: int


class Rollups(Schema):
    resources: dict[str, Any]
    deployments: dict[str, Any]


class ServerShow(Schema):
    schema_version: str = "servers.show/v1"
    server: ServerOut
    rollups: Rollups


@operation("servers.show")
def show_server(ctx: Context, data: ServerRef) -> ServerShow:
    """One server with what the organization runs on it."""
    server = get_server(ctx, data.server_id)
    mine = (Resource.server_id == server.id, Resource.organization_id == ctx.org_id)
    resource_ids = list(ctx.db.scalars(select(Resource.id).where(*mine)))
    deployed = list(ctx.db.scalars(select(Resource.id).where(
        *mine, Resource.current_deployment_id.is_not(None))))
    counts = ctx.db.execute(select(Deployment.status, func.count()).where(
        Deployment.server_id == server.id, Deployment.organization_id == ctx.org_id)
        .group_by(Deployment.status)).all()
    latest = ctx.db.scalar(select(Deployment).where(
        Deployment.server_id == server.id, Deployment.organization_id == ctx.org_id)
        .order_by(Deployment.created_at.desc()).limit(1))
    return ServerShow(server=_out(server), rollups=Rollups(
        resources={"total": len(resource_ids), "deployedResourceIds": deployed},
        deployments={"total": sum(c for _, c in counts),
                     "statusCounts": [{"status": s, "count": c} for s, c in counts],
                     "latestDeploymentId": latest.id if latest else None,
                     "latestDeploymentStatus": latest.status if latest else None}))


class Capacity(Schema):
    schema_version: str = "servers.capacity.inspect/v1"
    server: dict[str, Any]
    inspected_at: Timestamp
    disk: list[dict[str, Any]]
    inodes: list[dict[str, Any]]
    docker: dict[str, Any]
    memory: dict[str, Any]
    cpu: dict[str, Any]
    launchbay_containers: list[dict[str, Any]]
    warnings: list[dict[str, Any]]
    partial: bool


def _local_facts(ctx: Context) -> dict[str, Any]:
    """The control plane's machine, as `host_facts.remote` reads another."""
    disks, inodes = [], []
    for path in ("/var/lib/docker", str(ctx.settings.data_dir)):
        if os.path.exists(path):
            usage, stat = shutil.disk_usage(path), os.statvfs(path)
            disks.append((path, usage.total, usage.used, usage.free))
            inodes.append((path, stat.f_files, stat.f_files - stat.f_ffree, stat.f_ffree))
    return {"cores": os.cpu_count(), "load": os.getloadavg(), "memory": host_facts.memory(),
            "disks": disks, "inodes": inodes}


@operation("servers.capacity")
def server_capacity(ctx: Context, data: ServerRef) -> Capacity:
    """Disk, memory, CPU and Docker usage of a server (read over SSH for a server reached
    that way), and launchbay's containers on it."""
    server = get_server(ctx, data.server_id)
    warnings, partial = [], False
    docker_usage: dict[str, Any] = {}
    containers: list[dict[str, Any]] = []
    ctx.end_reads()  # the server answers in its own time
    facts: dict[str, Any] = {"cores": None, "load": (0.0, 0.0, 0.0), "disks": [],
                             "inodes": [], "memory": {"total": 0, "available": 0, "used": 0}}
    try:
        facts = _local_facts(ctx) if server.credential_id is None else host_facts.remote(
            ctx.runtime.tunnel(server.id).run(host_facts.REMOTE_PROBE, timeout=30)[1])
    except (Unreachable, OSError, TimeoutError) as exc:
        partial = True
        warnings.append({"code": "server-unreachable", "message": str(exc)[:300],
                         "resource": "server"})
    disk = [{"path": path, "mount": path, "size": total, "used": used, "available": free,
             "usePercent": round(100 * used / max(total, 1), 1)}
            for path, total, used, free in facts["disks"]]
    inodes = [{"path": path, "mount": path, "used": used, "free": free,
               "usePercent": round(100 * used / max(total, 1), 1)}
              for path, total, used, free in facts["inodes"]]
    warnings += [{"code": "full-disk", "message": f"{d['path']} is {d['usePercent']}% full",
                  "path": d["path"], "resource": "disk"} for d in disk if d["usePercent"] >= 90]
    memory = facts["memory"]
    load = facts["load"]
    try:
        engine = ctx.runtime.of(server.id)
        df = engine.disk_usage()
        docker_usage = {
            "imagesSize": sum(i.get("Size", 0) for i in df.get("Images") or []),
            "reclaimableImagesSize": sum(i.get("Size", 0) for i in df.get("Images") or []
                                         if not i.get("Containers")),
            "buildCacheSize": sum(b.get("Size", 0) for b in df.get("BuildCache") or []),
            "containersSize": sum(c.get("SizeRw", 0) or 0 for c in df.get("Containers") or []),
            "volumesSize": sum((v.get("UsageData") or {}).get("Size", 0) or 0
                               for v in df.get("Volumes") or []),
        }
        containers = [{"id": c.id[:12], "name": c.name, "running": c.status == "running",
                       "status": c.status, "deploymentId": c.labels.get("launchbay.deployment"),
                       "resourceId": c.labels.get("launchbay.resource"),
                       "projectId": c.labels.get("launchbay.project"),
                       "environmentId": c.labels.get("launchbay.environment"),
                       "serverId": server.id}
                      for c in engine.containers(**{"launchbay.organization": ctx.org_id})]
    except (RuntimeFailure, OSError) as exc:
        partial = True
        warnings.append({"code": "docker-unreachable", "message": str(exc)[:300],
                         "resource": "docker"})
    return Capacity(
        server={"id": server.id, "name": server.name, "host": server.host, "port": server.port,
                "providerKey": server.provider_key, "targetKind": server.target_kind},
        inspected_at=utcnow(), disk=disk, inodes=inodes, docker=docker_usage,
        memory={"total": memory["total"], "available": memory["available"],
                "used": memory["used"],
                "usePercent": round(100 * memory["used"] / max(memory["total"], 1), 1)},
        cpu={"logicalCores": facts["cores"], "loadAverage1m": load[0],
             "loadAverage5m": load[1], "loadAverage15m": load[2]},
        launchbay_containers=containers, warnings=warnings, partial=partial)


class EdgeProxyConfigure(ServerRef):
    proxy_kind: Literal["caddy", "none"]


class EdgeProxyConfigured(Schema):
    id: str
    edge_proxy: EdgeProxy


def operators_organization(db: DbSession) -> str | None:
    """The instance's first organization (created at bootstrap): its members run the machine."""
    return db.scalar(select(Organization.id).order_by(Organization.created_at).limit(1))


def require_instance_operator(ctx: Context, what: str, role: Role = "admin") -> None:
    """What every organization shares (the machine, its edge proxy, shared servers) is changed
    only by members of the instance's first organization with `role`."""
    if ctx.org_id != operators_organization(ctx.db) or not role_at_least(ctx.role or "viewer",
                                                                          role):
        raise Forbidden(f"{what} is changed by an {role} of the instance's first organization",
                        code=f"instance_{role}_required")


def _server_admin(ctx: Context, server_id: str) -> Server:
    """A server the caller may reconfigure: its organization's, or (the instance owner only)
    the shared one."""
    server = get_server(ctx, server_id)
    if server.organization_id is None:
        require_instance_operator(ctx, "the shared server", "owner")
    return server


@operation("servers.edge-proxy.configure", role="admin", audit="server.edge-proxy-configured")
def configure_edge_proxy(ctx: Context, data: EdgeProxyConfigure) -> EdgeProxyConfigured:
    """Chooses the server's edge proxy: `caddy` routes its resources, `none` leaves them on
    their loopback ports only."""
    server = _server_admin(ctx, data.server_id)
    server.edge_proxy_kind = data.proxy_kind
    server.edge_proxy_status = "pending"
    ctx.enqueue("proxy-bootstrap", "servers.edge-proxy.configure", server_id=server.id)
    ctx.audit(server.id, proxyKind=data.proxy_kind)
    return EdgeProxyConfigured(id=server.id, edge_proxy=edge_proxy(server))


class Bootstrapped(Schema):
    server_id: str
    attempt_id: str


@operation("servers.edge-proxy.bootstrap", role="admin", audit="server.edge-proxy-bootstrapped")
def bootstrap_edge_proxy(ctx: Context, data: ServerRef) -> Bootstrapped:
    """(Re)starts the server's edge proxy and loads its routes; follow the returned work item."""
    server = _server_admin(ctx, data.server_id)
    work = ctx.enqueue("proxy-bootstrap", "servers.edge-proxy.bootstrap", server_id=server.id)
    ctx.db.flush()
    ctx.audit(server.id, workId=work.id)
    return Bootstrapped(server_id=server.id, attempt_id=work.id)


PruneCategory = Literal["stopped-containers", "dangling-images", "build-cache"]


class PruneIn(ServerRef):
    categories: list[PruneCategory] = Field(
        default_factory=lambda: list(get_args(PruneCategory)))
    dry_run: bool = True


class PruneOut(Schema):
    schema_version: str = "servers.capacity.prune/v1"
    server: dict[str, Any]
    categories: list[str]
    dry_run: bool
    pruned_at: Timestamp | None
    summary: dict[str, int]
    candidates: list[dict[str, Any]]
    warnings: list[dict[str, Any]] = Field(default_factory=list)


@operation("servers.capacity.prune", role="admin", audit="server.capacity-pruned")
def prune_capacity(ctx: Context, data: PruneIn) -> PruneOut:
    """Reclaims disk: launchbay's stopped containers (never a resource's current release),
    dangling images and build cache. A dry run unless `dryRun` is false; volumes are never
    touched."""
    server = _server_admin(ctx, data.server_id)
    engine = ctx.runtime.of(server.id)
    current = set(ctx.db.scalars(select(Deployment.container_id).join(
        Resource, Resource.current_deployment_id == Deployment.id).where(
        Deployment.container_id.is_not(None))))
    ctx.end_reads()  # removing images and build cache takes a while
    candidates: list[dict[str, Any]] = []
    reclaimed = 0
    if "stopped-containers" in data.categories:
        for c in engine.containers(**{"launchbay.server": server.id}):
            if c.status in ("exited", "created", "dead"):
                skipped = c.id in current
                candidates.append({"id": c.id[:12], "category": "stopped-containers",
                                   "target": c.name, "action": "skipped" if skipped else
                                   "matched" if data.dry_run else "pruned",
                                   "skippedReason": "active-runtime" if skipped else None})
                if not skipped and not data.dry_run:
                    engine.remove(c.id)
    if "dangling-images" in data.categories:
        for image_id, size in engine.dangling_images():
            pruned = not data.dry_run and engine.remove_image(image_id)
            reclaimed += size if pruned else 0
            candidates.append({"id": image_id[7:19], "category": "dangling-images",
                               "target": image_id, "size": size,
                               "action": "pruned" if pruned else "matched"})
    if "build-cache" in data.categories and not data.dry_run:
        freed = engine.prune_build_cache()
        reclaimed += freed
        candidates.append({"id": "build-cache", "category": "build-cache", "target": "builder",
                           "size": freed, "action": "pruned"})
    ctx.audit(server.id, dryRun=data.dry_run, candidates=len(candidates))
    matched = [c for c in candidates if c["action"] != "skipped"]
    return PruneOut(
        server={"id": server.id, "name": server.name}, categories=list(data.categories),
        dry_run=data.dry_run, pruned_at=None if data.dry_run else utcnow(),
        summary={"inspectedCount": len(candidates), "matchedCount": len(matched),
                 "prunedCount": sum(1 for c in candidates if c["action"] == "pruned"),
                 "skippedCount": len(candidates) - len(matched), "reclaimedBytes": reclaimed},
        candidates=candidates)
