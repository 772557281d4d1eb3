"""The machine launchbay runs on, as an operator sees it: status, what it is (CPU, memory,
storage), a doctor that checks and repairs the control plane's dependencies, installation,
and registration with a base control plane through signed claims.

Everything that touches the shared machine (doctor, install, signing claims) is for operators:
admins of the instance's first organization.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from sqlalchemy import func, select, text

from launchbay import __version__
from launchbay.drivers import claims, host_facts
from launchbay.drivers.edge_proxy import EdgeError
from launchbay.operations.catalog import Context, operation
from launchbay.operations.compat.blueprints import Plain, services_environment, services_query
from launchbay.operations.compat.proxy import ProxyState, proxy_state
from launchbay.operations.edge.domains import bind, check_domain
from launchbay.operations.errors import Conflict, Invalid
from launchbay.operations.schemas import Empty, Schema, Timestamp
from launchbay.operations.servers import (
    LOCAL,
    default_server,
    operators_organization,
    require_instance_operator,
)
from launchbay.store.migrate import is_current, upgrade
from launchbay.store.models import (
    Deployment,
    DomainBinding,
    InstanceRegistration,
    Resource,
    Server,
    new_id,
    utcnow,
)

STARTED = time.monotonic()
SCRIPTS = Path(__file__).resolve().parents[2] / "system_scripts"  # launchbay/system_scripts
LOW_DISK_BYTES = 1 << 30  # below this much free space in the data dir, the doctor cleans up


def go_duration(seconds: float) -> str:
    """72h30m15s, 30m15s, 15s: how Dployr (a Go program) writes an uptime."""
    s = int(seconds)
    hours, minutes, secs = s // 3600, s % 3600 // 60, s % 60
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def _local_engine_reachable(ctx: Context) -> bool:
    server = ctx.db.scalar(select(Server).where(Server.provider_key == LOCAL,
                                                Server.organization_id.is_(None)))
    return server is not None and ctx.targets is not None and \
        ctx.runtime.of(server.id).ping()


class ServiceCounts(Plain):
    total: int
    running: int
    stopped: int


class SystemStatus(Plain):
    status: Literal["healthy", "degraded", "unhealthy"]
    uptime: str
    services: ServiceCounts
    proxy: ProxyState


@operation("system.status")
def system_status(ctx: Context, _: Empty) -> SystemStatus:
    """Healthy when the Docker engine answers, the edge proxy runs and every service runs;
    degraded when the proxy or a service is down; unhealthy without the engine."""
    ids = services_query(ctx).with_only_columns(Resource.id)
    total = ctx.db.scalar(select(func.count()).select_from(ids.subquery())) or 0
    running = ctx.db.scalar(select(func.count()).select_from(Resource).join(
        Deployment, Deployment.id == Resource.current_deployment_id).where(
        Resource.id.in_(ids), Deployment.container_id.is_not(None))) or 0
    proxy = proxy_state(ctx)
    status: Literal["healthy", "degraded", "unhealthy"] = "healthy"
    if not _local_engine_reachable(ctx):
        status = "unhealthy"
    elif proxy.status == "stopped" or running < total:
        status = "degraded"
    return SystemStatus(status=status, uptime=go_duration(time.monotonic() - STARTED),
                        services=ServiceCounts(total=total, running=running,
                                               stopped=total - running), proxy=proxy)


@functools.cache
def build() -> dict[str, str]:
    """The running version and, when launchbay runs from a git checkout, its commit."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", "-C", str(SCRIPTS.parent), *args], text=True,
                                  capture_output=True, timeout=5).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    return {"version": f"v{__version__}", "commit": git("rev-parse", "--short", "HEAD"),
            "build_date": git("log", "-1", "--format=%cI"),
            "go_version": f"python{sys.version.split()[0]}"}


class SystemInfo(Plain):
    build: dict[str, str]
    hardware: dict[str, Any]
    storage: dict[str, list[dict[str, Any]]]


@operation("system.info", role="admin")
def system_info(ctx: Context, _: Empty) -> SystemInfo:
    """What this machine is: launchbay's build, CPU, memory, filesystems and disks."""
    m, mem = host_facts.machine(), host_facts.memory()
    h = host_facts.human
    return SystemInfo(
        build=build(),
        hardware={"os": m.os, "arch": m.arch, "cpu_count": m.cpu_count, "hostname": m.hostname,
                  "kernel": m.kernel, "mem_total": h(mem["total"]), "mem_used": h(mem["used"]),
                  "mem_free": h(mem["free"]), "swap_total": h(mem["swapTotal"]),
                  "swap_used": h(mem["swapUsed"])},
        storage={"partitions": [{"filesystem": p.filesystem, "size": h(p.size),
                                 "used": h(p.used), "available": h(p.available),
                                 "use_percent": f"{p.use_percent}%", "mountpoint": p.mountpoint}
                                for p in host_facts.partitions()],
                 "devices": [{"name": d.name, "size": h(d.size), "type": d.type,
                              "mountpoints": d.mountpoints} for d in host_facts.devices()]})


class DoctorResult(Plain):
    status: Literal["ok", "error"]
    output: str
    error: str | None = None


def _script(name: str, *args: str) -> tuple[bool, str]:
    """Runs one of the packaged scripts that install and start a dependency (the ones
    `make run` uses)."""
    try:
        done = subprocess.run(["bash", str(SCRIPTS / name), *args], capture_output=True,
                              text=True, timeout=900)
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"{name}: {exc}"
    return done.returncode == 0, (done.stdout + done.stderr).strip()


def _doctor(ctx: Context) -> DoctorResult:
    out: list[str] = []
    problems: list[str] = []
    # The store, and its schema.
    engine = ctx.db.get_bind()
    ctx.db.execute(text("SELECT 1"))
    if is_current(engine):  # type: ignore[arg-type]  # a session bound to an Engine
        out.append("database: reachable, migrations current")
    else:
        ctx.db.commit()  # no lock of ours in the way of the migration
        upgrade(engine)  # type: ignore[arg-type]  # a session bound to an Engine
        out.append("database: migrations were pending: applied them")
    # The Docker engine.
    if _local_engine_reachable(ctx):
        out.append("docker: engine reachable")
    else:
        started, said = _script("ensure-docker.sh")
        out.append(f"docker: engine unreachable: ran ensure-docker.sh\n{said}")
        if not started:
            problems.append("the Docker engine is unreachable and could not be started")
    # The edge proxy.
    if ctx.edge is None:
        out.append("edge proxy: disabled in settings")
    else:
        try:
            repaired = ctx.edge.repair()
            out += [f"edge proxy: {line}" for line in repaired] or \
                ["edge proxy: Caddy running with its routes"]
        except EdgeError as exc:
            problems.append(f"the edge proxy is down: {exc}")
            out.append(f"edge proxy: could not start Caddy: {exc}")
    # Disk space where launchbay keeps its data.
    data_dir = ctx.settings.data_dir
    free = shutil.disk_usage(data_dir if data_dir.exists() else "/").free
    if free < LOW_DISK_BYTES and ctx.targets is not None:
        server = default_server(ctx)
        engine_ = ctx.runtime.of(server.id)
        freed = engine_.prune_build_cache() + sum(
            size for ref, size in engine_.dangling_images() if engine_.remove_image(ref))
        out.append(f"disk: only {host_facts.human(free)} free: freed {host_facts.human(freed)}"
                   " of build cache and unused images")
        free += freed
        if free < LOW_DISK_BYTES:
            problems.append(f"only {host_facts.human(free)} of disk space is free")
    else:
        out.append(f"disk: {host_facts.human(free)} free")
    return DoctorResult(status="error" if problems else "ok", output="\n".join(out),
                        error="; ".join(problems) or None)


@operation("system.doctor", role="admin", audit="system.doctor-ran")
def run_doctor(ctx: Context, _: Empty) -> DoctorResult:
    """Checks the database and its migrations, the Docker engine, the edge proxy and disk
    space, and repairs what it can (migrates, starts the engine and Caddy, frees disk)."""
    require_instance_operator(ctx, "the machine")
    ctx.end_reads()  # starting Docker or Caddy takes a while
    result = _doctor(ctx)
    ctx.audit(None, status=result.status, error=result.error)
    return result


class InstallIn(Plain):
    version: str | None = Field(None, max_length=100, pattern=r"^v?[0-9A-Za-z.+-]+$")


@operation("system.install", role="admin", audit="system.installed")
def install(ctx: Context, data: InstallIn) -> DoctorResult:
    """Installs and starts the Docker engine and Caddy where they are missing, installs
    another launchbay version from the configured upgrade source when asked, then runs the
    doctor."""
    require_instance_operator(ctx, "the machine")
    ctx.end_reads()  # pip and the install scripts may take minutes
    wanted = (data.version or "").removeprefix("v")
    out: list[str] = []
    if wanted and wanted != __version__:
        source = ctx.settings.upgrade_source
        if not source:
            ctx.audit(None, version=data.version, status="error")
            return DoctorResult(status="error", output="", error=(
                f"launchbay {__version__} is running and no upgrade source is configured "
                f"(LAUNCHBAY_UPGRADE_SOURCE), so version {data.version} cannot be installed"))
        where = ["--find-links", source, "--no-index"] if Path(source).is_dir() else \
            ["--index-url", source]
        done = subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                               f"launchbay=={wanted}", *where], capture_output=True, text=True,
                              timeout=900)
        out.append((done.stdout + done.stderr).strip())
        if done.returncode != 0:
            ctx.audit(None, version=data.version, status="error")
            return DoctorResult(status="error", output="\n".join(out),
                                error=f"launchbay {wanted} could not be installed")
        out.append(f"launchbay {wanted} installed: restart launchbay to run it")
    for script in ("ensure-docker.sh", "ensure-caddy.sh"):
        ok, said = _script(script)
        out.append(f"{script}: {said}")
        if not ok:
            ctx.audit(None, version=data.version, status="error")
            return DoctorResult(status="error", output="\n".join(out),
                                error=f"{script} failed")
    result = _doctor(ctx)
    ctx.audit(None, version=data.version, status=result.status)
    return DoctorResult(status=result.status, output="\n".join([*out, result.output]),
                        error=result.error)


# -- registration with a base control plane -----------------------------------------------------


def _verified(ctx: Context, token: str, purpose: str, issuer: str | None = None,
              audience: str | None = None) -> dict[str, Any]:
    s = ctx.settings
    if not (s.base_issuer and s.base_public_key):
        raise Conflict("this instance has no base configured (LAUNCHBAY_BASE_ISSUER and "
                       "LAUNCHBAY_BASE_PUBLIC_KEY)", code="base_not_configured")
    if issuer and issuer != s.base_issuer:
        raise Invalid(f"the expected issuer is {s.base_issuer}, not {issuer}",
                      code="claim_invalid")
    try:
        return claims.verify(token, s.base_public_key, issuer=s.base_issuer,
                             audience=audience or s.claims_audience, purpose=purpose)
    except claims.ClaimError as exc:
        raise Invalid(str(exc), code="claim_invalid") from None


def _registered(ctx: Context, payload: dict[str, Any], domain: str | None = None) -> None:
    row = ctx.db.scalar(select(InstanceRegistration)) or InstanceRegistration(id=new_id("reg"))
    row.instance_id, row.issuer = payload["sub"], payload["iss"]
    row.domain = domain or row.domain
    row.registered_at = utcnow()
    ctx.db.add(row)


class RegisterIn(Plain):
    claim: str = Field(min_length=1, max_length=8000)
    instance_id: str = Field(min_length=1, max_length=200)
    issuer: str | None = Field(None, max_length=500)
    audience: str | None = Field(None, max_length=500)


class Registered(Plain):
    message: str
    instance_id: str


@operation("system.register", scope="public", audit="system.registered")
def register(ctx: Context, data: RegisterIn) -> Registered:
    """Registers this instance with its base: the base's signed claim names the instance."""
    payload = _verified(ctx, data.claim, "register", data.issuer, data.audience)
    if payload["sub"] != data.instance_id:
        raise Invalid("the claim is for another instance", code="claim_invalid")
    _registered(ctx, payload)
    ctx.audit(None, instanceId=data.instance_id, issuer=payload["iss"])
    return Registered(message="Instance successfully registered", instance_id=data.instance_id)


class DomainIn(Plain):
    token: str = Field(min_length=1, max_length=8000)


class DomainOut(Plain):
    domain: str


@operation("system.domain", scope="public", audit="system.domain-assigned")
def assign_domain(ctx: Context, data: DomainIn) -> DomainOut:
    """Takes the domain the base assigned (in its signed claim) and serves this control plane
    there, through the edge proxy, as a route of the operators' organization."""
    payload = _verified(ctx, data.token, "domain")
    try:
        domain = check_domain(str(payload.get("domain", "")))
    except ValueError as exc:
        raise Invalid(f"the claim's domain {exc}", code="claim_invalid") from None
    _registered(ctx, payload, domain)
    ctx.organization_id = operators_organization(ctx.db)  # the route is theirs
    if ctx.organization_id and not ctx.db.scalar(select(DomainBinding.id).where(
            DomainBinding.domain_name == domain)):
        env = services_environment(ctx)
        host = ctx.settings.host if ctx.settings.host not in ("0.0.0.0", "::") else "127.0.0.1"
        bind(ctx, domain, project_id=env.project_id, environment_id=env.id,
             server_id=default_server(ctx).id, tls_mode=ctx.settings.edge_domain_tls,
             upstream=f"http://{host}:{ctx.settings.port}")
    ctx.audit(None, instanceId=payload["sub"], domain=domain)
    return DomainOut(domain=domain)


class ClaimIn(Schema):
    instance_id: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")
    purpose: Literal["register", "domain"] = "register"
    domain: str | None = Field(None, max_length=253)
    ttl_seconds: int = Field(3600, ge=60, le=7 * 86400)


class ClaimOut(Schema):
    claim: str
    issuer: str
    audience: str
    expires_at: Timestamp
    public_key: str


@operation("instance-claims.issue", role="admin", audit="instance-claim.issued")
def issue_claim(ctx: Context, data: ClaimIn) -> ClaimOut:
    """Signs a claim for an instance this control plane is the base of: its registration, or
    the domain it is given (a bare name becomes `{name}.{base domain}`)."""
    require_instance_operator(ctx, "signing instance claims")
    extra: dict[str, Any] = {}
    if data.purpose == "domain":
        if not data.domain:
            raise Invalid("Validation failed", details=[
                {"field": "domain", "message": "required for a domain claim"}])
        name = data.domain if "." in data.domain else f"{data.domain}.{ctx.settings.base_domain}"
        try:
            extra["domain"] = check_domain(name)
        except ValueError as exc:
            raise Invalid("Validation failed", details=[
                {"field": "domain", "message": str(exc)}]) from None
    key = claims.signing_key(ctx.settings.data_dir)
    token, expires = claims.issue(key, issuer=ctx.settings.claims_issuer,
                                  audience=ctx.settings.claims_audience,
                                  subject=data.instance_id, purpose=data.purpose,
                                  ttl=timedelta(seconds=data.ttl_seconds), **extra)
    ctx.audit(None, instanceId=data.instance_id, purpose=data.purpose, **extra)
    return ClaimOut(claim=token, issuer=ctx.settings.claims_issuer,
                    audience=ctx.settings.claims_audience, expires_at=expires,
                    public_key=claims.public_pem(key))


class Issuer(Schema):
    issuer: str
    audience: str
    public_key: str


@operation("instance-claims.issuer", scope="public")
def claims_issuer(ctx: Context, _: Empty) -> Issuer:
    """The issuer name and public key instances verify this base's claims with."""
    return Issuer(issuer=ctx.settings.claims_issuer, audience=ctx.settings.claims_audience,
                  public_key=claims.public_pem(claims.signing_key(ctx.settings.data_dir)))
