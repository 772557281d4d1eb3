"""The Dploy-compatible face (seeds 000 and 001; 001 wins where they differ): ephemeral
environments from templates under `/run/:env` (and `/api/run/:env`), over launchbay's
`instances.*` operations, with Dploy's field names, status values and `{"error": "..."}`
errors.

Mounted at `/compat/dploy` and servable at the root of its own listener. A launchbay API
token or session is the credential (OpenID Connect login comes with `/auth/*`).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from launchbay.control_plane import ControlPlane
from launchbay.http import errors
from launchbay.http.native import credentials, meta_of
from launchbay.operations.errors import OperationError, Unauthenticated


def _message(exc: OperationError) -> str:
    if exc.code == "template_not_found":
        return f"Environment {exc.details['template']} not found"
    return "unauthorized" if exc.status == 401 else exc.message


def create(cp: ControlPlane) -> FastAPI:
    face = FastAPI(title="launchbay (Dploy face)", openapi_url=None, docs_url=None,
                   redoc_url=None)

    errors.install_plain(face, _message)

    async def run(request: Request, key: str, data: dict[str, Any],
                  public: bool = False) -> Any:
        secret = credentials(request)
        actor = await run_in_threadpool(cp.authenticate, secret) if secret else None
        if actor is None and not public:
            raise Unauthenticated("unauthorized")
        return await run_in_threadpool(cp.ops.run, key, actor, data, meta_of(request))

    def shaped(result: Any) -> JSONResponse:
        return JSONResponse(result.model_dump(mode="json", by_alias=True))

    @face.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @face.get("/ready")
    async def ready() -> JSONResponse:
        """Ready when the store answers and the runtime target (the Docker engine) does."""
        engine_up = await run_in_threadpool(cp.runtime_reachable)
        if not engine_up or not cp.readiness()["ready"]:
            return JSONResponse({"error": "Service not ready"}, status_code=503)
        return JSONResponse({"status": "ready"})

    @face.get("/api/environments/available")
    async def available(request: Request) -> JSONResponse:
        result = await run(request, "instances.available", {}, public=True)
        return JSONResponse([i.model_dump(mode="json", by_alias=True) for i in result.items])

    @face.get("/api/environments")
    async def environments(request: Request) -> JSONResponse:
        return shaped(await run(request, "instances.list", {}))

    async def run_env(request: Request, env: str) -> JSONResponse:
        """Creates the caller's environment (or returns it); the query string holds the
        template's parameters."""
        return shaped(await run(request, "instances.run",
                                {"template": env, "parameters": dict(request.query_params)}))

    async def status(request: Request, env: str) -> JSONResponse:
        return shaped(await run(request, "instances.status", {"template": env}))

    async def extend(request: Request, env: str) -> JSONResponse:
        return shaped(await run(request, "instances.extend", {"template": env}))

    async def delete(request: Request, env: str) -> Response:
        await run(request, "instances.delete", {"template": env})
        return Response(status_code=204)

    for prefix in ("", "/api"):  # every /run endpoint is also under /api/run
        face.add_api_route(f"{prefix}/run/{{env}}", run_env, methods=["GET"])
        face.add_api_route(f"{prefix}/run/{{env}}/status", status, methods=["GET"])
        face.add_api_route(f"{prefix}/run/{{env}}/extend", extend, methods=["POST"])
        face.add_api_route(f"{prefix}/run/{{env}}", delete, methods=["DELETE"])

    return face
