"""The Dployr-compatible face (seed 003, `dployr-openapi-1.1.1.yaml`): its paths, shapes,
status codes and error bodies, over launchbay's blueprint operations.

Mounted at `/compat/dployr` and servable at the root of its own listener. Any launchbay
session or API token is a Bearer token here (the log stream also takes it as `?token=`).
Deployment ids are ULIDs: the deployment's creation time and its launchbay id, reversibly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException

from launchbay.control_plane import ControlPlane
from launchbay.http.bodies import json_body
from launchbay.http.common import meta_of
from launchbay.http.streams import SSE_HEADERS, journal_pages
from launchbay.operations import Actor
from launchbay.operations.errors import NotFound, OperationError, Unauthenticated

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODES = {401: ("Unauthorized", "auth.unauthorized"),
         403: ("Insufficient permissions", "auth.forbidden"),
         404: ("Resource not found", "resource.not_found"),
         405: ("Method not allowed", "request.method_not_allowed"),
         500: ("Internal server error", "runtime.internal_server_error")}


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def ulid(launchbay_id: str, created_at: datetime) -> str:
    """A ULID carrying the creation time (ms) and the id's 64 random bits."""
    value = (int(_utc(created_at).timestamp() * 1000) << 80) | int(launchbay_id.split("_")[-1], 16)
    return "".join(CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def from_ulid(text: str, prefix: str) -> str | None:
    """The launchbay id a ULID of ours stands for (None if it is not one)."""
    if len(text) != 26 or any(c not in CROCKFORD for c in text.upper()):
        return None
    value = 0
    for c in text.upper():
        value = value * 32 + CROCKFORD.index(c)
    return f"{prefix}_{value & (2**64 - 1):016x}"


def _error(status: int, message: str | None = None, code: str | None = None,
           details: Any = None) -> JSONResponse:
    default, default_code = CODES.get(status, ("Bad request", "request.bad_request"))
    body: dict[str, Any] = {"error": message or default, "code": code or default_code}
    if details:
        body["details"] = details if isinstance(details, dict) else {"errors": details}
    return JSONResponse(body, status_code=status)


def documents_422(request: Request) -> bool:
    """Whether the contract gives this request's validation errors a 422 (the deploy request
    and service updates); the other paths answer 400."""
    path = request.url.path.rstrip("/")
    return (request.method == "POST" and path.endswith("/deployments")) or (
        request.method in ("PUT", "PATCH") and "/services/" in path)


def shaped(result: Any) -> JSONResponse:
    """An operation's result in the contract's shape: absent rather than null."""
    return JSONResponse(result.model_dump(mode="json", exclude_none=True))


def create(cp: ControlPlane) -> FastAPI:
    face = FastAPI(title="launchbay (Dployr face)", openapi_url=None, docs_url=None,
                   redoc_url=None)

    @face.exception_handler(OperationError)
    async def _operation_error(request: Request, exc: OperationError) -> JSONResponse:
        if exc.message == "Validation failed" and isinstance(exc.details, list):
            if documents_422(request):
                return JSONResponse({"error": "Validation failed", "details": exc.details},
                                    status_code=422)
            return _error(400, "Validation failed", "request.validation_failed", exc.details)
        if exc.status in CODES:
            return _error(exc.status, exc.message if exc.status != 401 else None)
        return _error(exc.status, exc.message, exc.code, exc.details)

    @face.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(400, "Validation failed", "request.validation_failed")

    @face.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code)

    @face.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        return _error(500)

    async def actor_of(request: Request, query_token: bool = False) -> Actor:
        header = request.headers.get("authorization", "")
        secret = header[7:].strip() if header[:7].lower() == "bearer " else None
        if not secret and query_token:
            secret = request.query_params.get("token")
        actor = await run_in_threadpool(cp.authenticate, secret, None,
                                        meta_of(request).ip_address) if secret else None
        if actor is None:
            raise Unauthenticated("Unauthorized")
        return actor

    async def run(request: Request, key: str, data: dict[str, Any],
                  query_token: bool = False) -> Any:
        actor = await actor_of(request, query_token)
        return await run_in_threadpool(cp.ops.run, key, actor, data, meta_of(request))

    def page(request: Request) -> dict[str, Any]:
        return {k: v for k, v in request.query_params.items() if k in ("limit", "offset")}

    def deployment(view: Any) -> dict[str, Any]:
        out = view.model_dump(mode="json", exclude_none=True)
        out["id"] = ulid(view.id, view.created_at)
        return out

    @face.get("/deployments")
    async def list_deployments(request: Request) -> JSONResponse:
        result = await run(request, "blueprints.deployments", page(request))
        return JSONResponse({"deployments": [deployment(d) for d in result.deployments],
                             "total": result.total})

    @face.post("/deployments")
    async def create_deployment(request: Request) -> JSONResponse:
        body = await json_body(request)
        done = await run(request, "blueprints.deploy", body)
        return JSONResponse({"success": True, "id": ulid(done.deployment_id, done.created_at),
                             "name": done.name,
                             "created_at": _utc(done.created_at).isoformat()
                             .replace("+00:00", "Z")},
                            status_code=201)

    @face.get("/services")
    async def list_services(request: Request) -> JSONResponse:
        return shaped(await run(request, "blueprints.services", page(request)))

    @face.get("/services/{serviceId}")
    async def show_service(request: Request, serviceId: str) -> JSONResponse:
        return shaped(await run(request, "blueprints.services.show", {"service_id": serviceId}))

    async def update(request: Request, service_id: str, replace: bool) -> JSONResponse:
        body = await json_body(request)
        return shaped(await run(request, "blueprints.services.update",
                                {**body, "service_id": service_id, "replace": replace}))

    @face.put("/services/{serviceId}")
    async def replace_service(request: Request, serviceId: str) -> JSONResponse:
        return await update(request, serviceId, replace=True)

    @face.patch("/services/{serviceId}")
    async def patch_service(request: Request, serviceId: str) -> JSONResponse:
        return await update(request, serviceId, replace=False)

    @face.delete("/services/{serviceId}")
    async def delete_service(request: Request, serviceId: str) -> Response:
        await run(request, "blueprints.services.delete", {"service_id": serviceId})
        return Response(status_code=204)

    @face.get("/proxy/status")
    async def proxy_status(request: Request) -> JSONResponse:
        state = await run(request, "proxy.status", {})
        return JSONResponse({"status": state.status})

    @face.post("/proxy/restart")
    async def proxy_restart(request: Request) -> JSONResponse:
        return shaped(await run(request, "proxy.restart", {}))

    @face.post("/proxy/add")
    async def proxy_add(request: Request) -> JSONResponse:
        await run(request, "proxy.routes.add", await json_body(request))
        return JSONResponse({"message": "Route added successfully"}, status_code=201)

    @face.delete("/proxy/remove")
    async def proxy_remove(request: Request) -> JSONResponse:
        """The route's domain comes as `?domain=` or in a JSON body (the contract names
        neither)."""
        domain = request.query_params.get("domain") or (await json_body(request)).get("domain")
        await run(request, "proxy.routes.remove", {"domain": domain or ""})
        return JSONResponse({"message": "Route removed successfully"})

    @face.get("/system/status")
    async def system_status(request: Request) -> JSONResponse:
        return shaped(await run(request, "system.status", {}))

    @face.get("/system/info")
    async def system_info(request: Request) -> JSONResponse:
        return shaped(await run(request, "system.info", {}))

    @face.post("/system/doctor")
    async def system_doctor(request: Request) -> JSONResponse:
        return shaped(await run(request, "system.doctor", {}))

    @face.post("/system/install")
    async def system_install(request: Request) -> JSONResponse:
        return shaped(await run(request, "system.install", await json_body(request)))

    async def public(request: Request, key: str) -> JSONResponse:
        body = await json_body(request)
        result = await run_in_threadpool(cp.ops.run, key, None, body, meta_of(request))
        return shaped(result)

    @face.post("/system/register")
    async def system_register(request: Request) -> JSONResponse:
        return await public(request, "system.register")

    @face.post("/system/domain")
    async def system_domain(request: Request) -> JSONResponse:
        return await public(request, "system.domain")

    @face.get("/logs/stream")
    async def log_stream(request: Request) -> StreamingResponse:
        target = request.query_params.get("id", "")
        actor = await actor_of(request, query_token=True)
        if not target:
            raise OperationError("id is required", code="request.bad_request")
        meta = meta_of(request)

        def deployment_id() -> str:
            if target.startswith("res_"):  # a service: its latest deployment
                items = cp.ops.run("deployments.list", actor,
                                   {"resourceId": target, "limit": 1}, meta).items
                if not items:
                    raise NotFound("the service has no deployment")
                return items[0].id
            return target if target.startswith("dep_") else (from_ulid(target, "dep") or target)

        def read(dep: str, after: str | None) -> Any:
            return cp.ops.run("deployments.events", actor,
                              {"deploymentId": dep, "cursor": after, "historyLimit": 200}, meta)

        try:  # refused before the stream opens; the contract lists 400 for an unknown id
            dep = await run_in_threadpool(deployment_id)
            first = await run_in_threadpool(read, dep, None)
        except NotFound:
            raise OperationError(f"no service or deployment {target}",
                                 code="request.bad_request") from None

        async def stream() -> AsyncIterator[str]:
            try:
                async for page in journal_pages(request, lambda after: read(dep, after),
                                                first, None):
                    if page is None:
                        yield ": heartbeat\n\n"
                        continue
                    for envelope in page.envelopes:
                        for line in envelope.event.summary.splitlines() or [""]:
                            yield f"data: {line}\n\n"
                    if page.terminal:
                        yield "event: done\ndata: stream completed\n\n"
            except OperationError as exc:
                yield f"event: error\ndata: {exc.message}\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream", headers=SSE_HEADERS)

    return face
