"""Custom domains: a binding serves a resource at a domain (and path prefix), or redirects to
another binding. The edge proxy routes bindings as soon as their resource has a release;
DNS ownership is observed and reported, and certificates follow the binding's TLS mode."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import field_validator
from sqlalchemy import select

from launchbay.operations.catalog import Context, operation
from launchbay.operations.edge.certificate_views import certificate_out
from launchbay.operations.errors import Conflict, Invalid, NotFound
from launchbay.operations.resources import current_route, get_resource
from launchbay.operations.schemas import Field, Id, IdOut, Schema, Timestamp
from launchbay.store.models import Certificate, DomainBinding, OperatorWork, new_id
from launchbay.store.profiles import RoutePayload, stored

TlsMode = Literal["auto", "internal", "manual", "disabled"]
RedirectStatus = Literal[301, 302, 307, 308]
LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def check_domain(value: str) -> str:
    domain = value.strip().lower().rstrip(".")
    labels = domain.split(".")
    if len(domain) > 253 or len(labels) < 2 or not all(LABEL.match(label) for label in labels):
        raise ValueError("must be a domain name such as app.example.com")
    return domain


def check_prefix(value: str) -> str:
    if not value.startswith("/") or "//" in value or " " in value:
        raise ValueError("must be a path such as / or /api")
    return value.rstrip("/") or "/"


class DnsObservation(Schema):
    status: str = "pending"
    expected_targets: list[str] = Field(default_factory=list)
    observed_targets: list[str] = Field(default_factory=list)
    checked_at: str | None = None
    message: str | None = None


class BindingOut(Schema):
    id: str
    project_id: str
    environment_id: str
    resource_id: str | None  # None: a route added by hand, to `upstream`
    upstream: str | None
    server_id: str
    destination_id: str
    domain_name: str
    path_prefix: str
    proxy_kind: str
    tls_mode: str
    redirect_to: str | None
    redirect_status: int | None
    certificate_policy: str
    status: str
    dns_observation: DnsObservation
    verification_attempt_count: int
    created_at: Timestamp


def binding_out(ctx: Context, b: DomainBinding) -> BindingOut:
    return BindingOut(
        id=b.id, project_id=b.project_id, environment_id=b.environment_id,
        resource_id=b.resource_id, upstream=b.upstream, server_id=b.server_id,
        destination_id=b.server_id, domain_name=b.domain_name, path_prefix=b.path_prefix,
        proxy_kind="caddy" if ctx.settings.edge_enabled else "none", tls_mode=b.tls_mode,
        redirect_to=b.redirect_to, redirect_status=b.redirect_status,
        certificate_policy=b.tls_mode, status=b.status,
        dns_observation=DnsObservation(**b.dns_observation) if b.dns_observation
        else DnsObservation(), verification_attempt_count=b.verification_attempt_count,
        created_at=b.created_at)


def get_binding(ctx: Context, binding_id: str) -> DomainBinding:
    b = ctx.db.get(DomainBinding, binding_id)
    if b is None or b.organization_id != ctx.org_id:
        raise NotFound("domain binding not found", code="domain_binding_not_found")
    return b


def realize(ctx: Context, b: DomainBinding, reason: str) -> None:
    """Queues the edge proxy's update (and a DNS observation) for this binding."""
    ctx.enqueue("route-realization", f"domain-bindings.{reason}", project_id=b.project_id,
                resource_id=b.resource_id, server_id=b.server_id,
                payload=stored(RoutePayload(domain_binding_id=b.id)))


class BindingFilter(Schema):
    project_id: Id | None = None
    environment_id: Id | None = None
    resource_id: Id | None = None
    limit: int = Field(100, gt=0, le=500)


class BindingList(Schema):
    items: list[BindingOut]


@operation("domain-bindings.list")
def list_bindings(ctx: Context, data: BindingFilter) -> BindingList:
    """Custom domain bindings by domain."""
    query = select(DomainBinding).where(DomainBinding.organization_id == ctx.org_id)
    for column, value in ((DomainBinding.project_id, data.project_id),
                          (DomainBinding.environment_id, data.environment_id),
                          (DomainBinding.resource_id, data.resource_id)):
        if value:
            query = query.where(column == value)
    rows = ctx.db.scalars(query.order_by(DomainBinding.domain_name, DomainBinding.path_prefix)
                          .limit(data.limit))
    return BindingList(items=[binding_out(ctx, b) for b in rows])


class BindingCreate(Schema):
    project_id: Id
    environment_id: Id
    resource_id: Id
    server_id: Id | None = None
    destination_id: Id | None = None
    domain_name: str = Field(min_length=3, max_length=253)
    path_prefix: str = Field("/", max_length=500)
    proxy_kind: str | None = None
    tls_mode: TlsMode = "auto"
    redirect_to: Id | None = None
    redirect_status: RedirectStatus | None = None

    _domain = field_validator("domain_name")(classmethod(lambda cls, v: check_domain(v)))
    _prefix = field_validator("path_prefix")(classmethod(lambda cls, v: check_prefix(v)))


def _redirect_target(ctx: Context, binding_id: str | None, resource_id: str | None,
                     target_id: str | None) -> str | None:
    if target_id is None:
        return None
    target = get_binding(ctx, target_id)
    if target.id == binding_id or target.redirect_to is not None or target.upstream:
        raise Conflict("redirect to a binding that serves the resource",
                       code="redirect_target_invalid")
    if target.resource_id != resource_id:
        raise Conflict("a binding redirects only to another binding of its resource",
                       code="redirect_target_invalid")
    return target.id


def bind(ctx: Context, domain: str, *, project_id: str, environment_id: str, server_id: str,
         tls_mode: str, resource_id: str | None = None, upstream: str | None = None,
         path_prefix: str = "/", redirect_to: str | None = None,
         redirect_status: int | None = None) -> DomainBinding:
    """A new binding of `domain` to a resource (or a raw upstream), with its managed
    certificate; the edge proxy's update is queued. 409 when the domain is taken."""
    if ctx.db.scalar(select(DomainBinding.id).where(DomainBinding.domain_name == domain,
                                                    DomainBinding.path_prefix == path_prefix)):
        raise Conflict(f"{domain}{path_prefix if path_prefix != '/' else ''} is already bound",
                       code="domain_taken")
    b = DomainBinding(id=new_id("dom"), organization_id=ctx.org_id, project_id=project_id,
                      environment_id=environment_id, resource_id=resource_id,
                      server_id=server_id, upstream=upstream, domain_name=domain,
                      path_prefix=path_prefix, tls_mode=tls_mode, redirect_to=redirect_to,
                      redirect_status=(redirect_status or 301) if redirect_to else None)
    ctx.db.add(b)
    ctx.db.flush()  # the certificate refers to it
    if b.tls_mode in ("auto", "internal"):
        ctx.db.add(Certificate(
            id=new_id("crt"), organization_id=ctx.org_id, domain_binding_id=b.id,
            domain_name=b.domain_name, status="pending", source="managed",
            provider_key="acme" if b.tls_mode == "auto" else "caddy-internal"))
        ctx.db.flush()
    realize(ctx, b, "create")
    return b


@operation("domain-bindings.create", role="developer", audit="domain-binding.created")
def create_binding(ctx: Context, data: BindingCreate) -> IdOut:
    """Binds a domain (and path prefix) to a resource; the edge proxy serves it, or redirects
    it to another binding of the resource."""
    r = get_resource(ctx, data.resource_id, mutable=True)
    if (r.project_id, r.environment_id) != (data.project_id, data.environment_id):
        raise Invalid("the resource does not belong to that project and environment",
                      code="context_mismatch")
    b = bind(ctx, data.domain_name, project_id=r.project_id, environment_id=r.environment_id,
             server_id=r.server_id, resource_id=r.id, path_prefix=data.path_prefix,
             tls_mode=data.tls_mode,
             redirect_to=_redirect_target(ctx, None, r.id, data.redirect_to),
             redirect_status=data.redirect_status)
    ctx.audit(b.id, domainName=b.domain_name, resourceId=r.id, tlsMode=b.tls_mode)
    return IdOut(id=b.id)


class BindingRef(Schema):
    domain_binding_id: Id


class DeleteSafety(Schema):
    domain_binding_id: str
    safe_to_delete: bool
    blockers: list[dict[str, Any]]
    warnings: list[dict[str, Any]]
    preserves_generated_access: bool = True
    preserves_deployment_snapshots: bool = True
    preserves_server_applied_route_audit: bool = True


def _safety(ctx: Context, b: DomainBinding) -> DeleteSafety:
    redirecting = list(ctx.db.scalars(select(DomainBinding.id).where(
        DomainBinding.redirect_to == b.id)))
    blockers = [{"kind": "redirect-target", "severity": "blocking",
                 "message": "other bindings redirect here; delete or re-route them first",
                 "relatedEntityType": "domain-binding", "relatedEntityId": rid, "count": 1}
                for rid in redirecting]
    certs = list(ctx.db.scalars(select(Certificate).where(
        Certificate.domain_binding_id == b.id, Certificate.status == "issued")))
    warnings = [{"kind": "active-certificate", "severity": "warning",
                 "message": "the certificate stays listed but is no longer served",
                 "relatedEntityType": "certificate", "relatedEntityId": c.id, "count": 1}
                for c in certs]
    return DeleteSafety(domain_binding_id=b.id, safe_to_delete=not blockers, blockers=blockers,
                        warnings=warnings)


class BindingShow(Schema):
    binding: BindingOut
    route_readiness: dict[str, Any]
    generated_access_fallback: dict[str, Any] | None
    proxy_readiness: str
    certificates: list[dict[str, Any]]
    delete_safety: DeleteSafety


@operation("domain-bindings.show")
def show_binding(ctx: Context, data: BindingRef) -> BindingShow:
    """A binding with its route, proxy, DNS and certificate readiness."""
    b = get_binding(ctx, data.domain_binding_id)
    r = get_resource(ctx, b.resource_id) if b.resource_id else None
    behavior = "redirect" if b.redirect_to else "serve"
    fallback = current_route(ctx, r) if r else None
    serving = r.current_deployment_id if r else b.upstream
    ready = b.status == "active" and (behavior == "redirect" or serving)
    return BindingShow(
        binding=binding_out(ctx, b),
        route_readiness={
            "status": "ready" if ready else "not-ready", "routeBehavior": behavior,
            "selectedRoute": {"schemaVersion": "route-intent-status/v1", "routeId": b.id,
                              "source": "durable-domain",
                              "intent": {"host": b.domain_name, "pathPrefix": b.path_prefix,
                                         "protocol": "http" if b.tls_mode == "disabled"
                                         else "https", "routeBehavior": behavior,
                                         "redirectTo": b.redirect_to,
                                         "redirectStatus": b.redirect_status},
                              "context": {"resourceId": b.resource_id,
                                          "deploymentId": r.current_deployment_id if r else None,
                                          "upstream": b.upstream, "serverId": b.server_id},
                              "domainVerification": DnsObservation.model_validate(
                                  b.dns_observation or {}).status,
                              "blockingReason": None if ready else (
                                  "runtime_not_ready" if not serving
                                  else "proxy_not_applied")}},
        generated_access_fallback=fallback.model_dump(by_alias=True, mode="json")
        if fallback else None,
        proxy_readiness="ready" if b.status == "active" else "pending",
        certificates=[certificate_out(c).model_dump(by_alias=True, mode="json")
                      for c in ctx.db.scalars(select(Certificate).where(
                          Certificate.domain_binding_id == b.id))],
        delete_safety=_safety(ctx, b))


@operation("domain-bindings.delete-check")
def check_binding_delete(ctx: Context, data: BindingRef) -> DeleteSafety:
    """Whether the binding can be deleted, and what that keeps."""
    return _safety(ctx, get_binding(ctx, data.domain_binding_id))


class BindingConfirmation(Schema):
    domain_binding_id: Id


class BindingDelete(BindingRef):
    confirmation: BindingConfirmation


@operation("domain-bindings.delete", role="developer", audit="domain-binding.deleted")
def delete_binding(ctx: Context, data: BindingDelete) -> IdOut:
    """Stops serving a domain (the resource's generated URL stays); needs the id as
    confirmation."""
    b = get_binding(ctx, data.domain_binding_id)
    if data.confirmation.domain_binding_id != b.id:
        raise Invalid("confirmation.domainBindingId does not match", code="confirmation_mismatch")
    safety = _safety(ctx, b)
    if not safety.safe_to_delete:
        raise Conflict("other bindings redirect to this one", code="domain_binding_in_use",
                       details={"blockers": safety.blockers})
    ctx.db.delete(b)
    realize(ctx, b, "delete")
    ctx.audit(b.id, domainName=b.domain_name)
    return IdOut(id=b.id)


class RouteIn(BindingRef):
    route_behavior: Literal["serve", "redirect"] = "serve"
    redirect_to: Id | None = None
    redirect_status: RedirectStatus = 301


@operation("domain-bindings.route", role="developer", audit="domain-binding.routed")
def route_binding(ctx: Context, data: RouteIn) -> IdOut:
    """Makes a binding serve its resource, or redirect (301/302/307/308) to a canonical binding."""
    b = get_binding(ctx, data.domain_binding_id)
    if data.route_behavior == "redirect":
        if not data.redirect_to:
            raise Invalid("Validation failed", details=[
                {"field": "redirectTo", "message": "required to redirect"}])
        if ctx.db.scalar(select(DomainBinding.id).where(DomainBinding.redirect_to == b.id)):
            raise Conflict("other bindings redirect to this one; it must keep serving",
                           code="redirect_chain")
        b.redirect_to = _redirect_target(ctx, b.id, b.resource_id, data.redirect_to)
        b.redirect_status = data.redirect_status
    else:
        b.redirect_to = b.redirect_status = None
    b.status = "requested"
    realize(ctx, b, "route")
    ctx.audit(b.id, behavior=data.route_behavior, redirectTo=b.redirect_to)
    return IdOut(id=b.id)


class VerificationOut(Schema):
    id: str
    verification_attempt_id: str


def _verify(ctx: Context, data: BindingRef, reason: str) -> VerificationOut:
    b = get_binding(ctx, data.domain_binding_id)
    realize(ctx, b, reason)
    ctx.db.flush()
    attempt = ctx.db.scalars(select(OperatorWork.id).where(
        OperatorWork.operation_key == f"domain-bindings.{reason}")
        .order_by(OperatorWork.created_at.desc())).first()
    ctx.audit(b.id)
    return VerificationOut(id=b.id, verification_attempt_id=attempt or "")


@operation("domain-bindings.confirm-ownership", role="developer",
           audit="domain-binding.ownership-check-requested")
def confirm_ownership(ctx: Context, data: BindingRef) -> VerificationOut:
    """Checks now that the domain's DNS points at this server."""
    return _verify(ctx, data, "confirm-ownership")


@operation("domain-bindings.retry-verification", role="developer",
           audit="domain-binding.verification-retried")
def retry_verification(ctx: Context, data: BindingRef) -> VerificationOut:
    """Observes the domain's DNS again (after you changed its records)."""
    return _verify(ctx, data, "retry-verification")
