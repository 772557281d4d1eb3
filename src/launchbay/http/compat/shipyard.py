"""The Shipyard-compatible face (seed 002): hosted deployments under `/api/deployments`, with
Shipyard's field names, status values and `{"error": "..."}` errors, over launchbay's
`deployments.hosted.*` operations.

Mounted at `/compat/shipyard` and servable at the root of its own listener. A launchbay API
token (scopes `deployments:read` / `deployments:write`) or session is the credential;
`team_id` selects the team (organization) context.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse

from launchbay.control_plane import ControlPlane
from launchbay.http import errors
from launchbay.http.bodies import form_body, json_body
from launchbay.http.common import credentials, meta_of
from launchbay.http.streams import SSE_HEADERS, followed, number
from launchbay.operations import CATALOG
from launchbay.operations.errors import OperationError, Unauthenticated


def _message(exc: OperationError) -> str:
    if exc.message == "Validation failed" and isinstance(exc.details, list):
        return "; ".join(f"{d['field']}: {d['message']}" for d in exc.details)
    return exc.message


def create(cp: ControlPlane) -> FastAPI:
    face = FastAPI(title="launchbay (Shipyard face)", openapi_url=None, docs_url=None,
                   redoc_url=None)

    errors.install_plain(face, _message)

    async def run(request: Request, key: str, data: dict[str, Any]) -> Any:
        secret = credentials(request, CATALOG[key].changes_as_caller)
        actor = await run_in_threadpool(cp.authenticate, secret, None,
                                        meta_of(request).ip_address) if secret else None
        if actor is None:
            raise Unauthenticated("Unauthorized")
        team = request.query_params.get("team_id") or data.pop("team_id", None)
        if team:
            data["organizationId"] = team
        return await run_in_threadpool(cp.ops.run, key, actor, data, meta_of(request))

    def shaped(result: Any, status: int = 200) -> JSONResponse:
        return JSONResponse(result.model_dump(mode="json", by_alias=True, exclude_none=True),
                            status_code=status)

    def is_form(request: Request) -> bool:
        return request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data"))

    async def body(request: Request) -> dict[str, Any]:
        """JSON, or a form post (the Shipyard web console posts forms)."""
        if is_form(request):
            return dict(await form_body(request))
        return await json_body(request)

    def query(request: Request) -> dict[str, Any]:
        return dict(request.query_params)

    @face.get("/api/deployments")
    async def list_deployments(request: Request) -> JSONResponse:
        result = await run(request, "deployments.hosted.list", query(request))
        return JSONResponse([item.model_dump(mode="json", by_alias=True, exclude_none=True)
                             for item in result.items])

    @face.post("/api/deployments/deploy-image")
    async def deploy_image(request: Request) -> JSONResponse:
        return shaped(await run(request, "deployments.hosted.deploy-image", await body(request)),
                      201)

    @face.get("/api/deployments/status")
    async def status(request: Request) -> JSONResponse:
        return shaped(await run(request, "deployments.hosted.status", query(request)))

    @face.post("/api/deployments/delete")
    async def delete(request: Request) -> Response:
        done = await run(request, "deployments.hosted.delete", await body(request))
        if is_form(request):  # a browser's form: back to its deployments page
            return RedirectResponse("/deployments", status_code=303)
        return shaped(done)

    @face.post("/api/deployments/restart")
    async def restart(request: Request) -> JSONResponse:
        return shaped(await run(request, "deployments.hosted.restart", await body(request)))

    @face.get("/api/deployments/config")
    async def config(request: Request) -> JSONResponse:
        return shaped(await run(request, "deployments.hosted.config", query(request)))

    @face.put("/api/deployments/config")
    async def configure(request: Request) -> JSONResponse:
        return shaped(await run(request, "deployments.hosted.configure", await body(request)))

    @face.post("/api/deployments")
    async def create(request: Request) -> JSONResponse:
        return shaped(await run(request, "deployments.hosted.create", await body(request)), 201)

    @face.get("/api/deployments/auto-update")
    async def auto_update(request: Request) -> JSONResponse:
        return shaped(await run(request, "deployments.hosted.auto-update", query(request)))

    @face.put("/api/deployments/auto-update")
    async def configure_auto_update(request: Request) -> JSONResponse:
        return shaped(await run(request, "deployments.hosted.auto-update.configure",
                                await body(request)))

    @face.get("/api/deployments/{name}/logs")
    async def logs(request: Request, name: str) -> Response:
        params = {**query(request), "name": name}
        if params.pop("follow", "false").lower() not in ("true", "1"):
            return shaped(await run(request, "deployments.hosted.logs", params))
        # Followed: the last `tail` lines, then each new one as it is written (plain text,
        # as `kubectl logs -f` prints them), until the container stops or the client leaves.
        target = await run(request, "deployments.hosted.logs.follow", params)
        tail = number(params, "tail", 100)

        async def lines() -> AsyncIterator[str]:
            async for line in followed(request, cp, target, tail):
                if line is not None:
                    yield line.message.rstrip("\n") + "\n"

        return StreamingResponse(lines(), media_type="text/plain; charset=utf-8",
                                 headers=SSE_HEADERS)

    @face.get("/api/deployments/{name}/logs/stream")
    async def log_events(request: Request, name: str) -> StreamingResponse:
        """Server-Sent Events: one `data:` line per log line (its text)."""
        params = {**query(request), "name": name}
        target = await run(request, "deployments.hosted.logs.follow", params)
        tail = number(params, "tail", 0)

        async def events() -> AsyncIterator[str]:
            async for line in followed(request, cp, target, tail):
                yield ": heartbeat\n\n" if line is None else \
                    "".join(f"data: {part}\n" for part in line.message.rstrip("\n")
                            .split("\n")) + "\n"

        return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)

    def _reader(key: str):
        async def read(request: Request, name: str) -> JSONResponse:
            return shaped(await run(request, key, {**query(request), "name": name}))
        return read

    for path, key in (("metrics", "deployments.hosted.metrics"),
                      ("history", "deployments.hosted.history"),
                      ("events", "deployments.hosted.events")):
        face.add_api_route(f"/api/deployments/{{name}}/{path}", _reader(key), methods=["GET"])


    return face
