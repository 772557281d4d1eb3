"""The Dploy-compatible face (seeds 000 and 001; 001 wins where they differ): ephemeral
environments from templates under `/run/:env` (and `/api/run/:env`), over launchbay's
`instances.*` operations, with Dploy's field names, status values and `{"error": "..."}`
errors.

Mounted at `/compat/dploy` and servable at the root of its own listener. The credential is a
Bearer id_token from the configured OpenID Connect provider (obtained through `/auth/login`),
or a launchbay API token or session.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse, Response

from launchbay.control_plane import ControlPlane
from launchbay.http import errors
from launchbay.http.common import FLOW_COOKIE, credentials, meta_of
from launchbay.operations import CATALOG
from launchbay.operations.errors import OperationError, Unauthenticated
from launchbay.operations.identity.oidc_login import FLOW_SECONDS


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
        secret = credentials(request, CATALOG[key].changes_as_caller)
        actor = await run_in_threadpool(cp.authenticate, secret, None,
                                        meta_of(request).ip_address) if secret else None
        if actor is None and not public:
            raise Unauthenticated("unauthorized")
        return await run_in_threadpool(cp.ops.run, key, actor, data, meta_of(request))

    def shaped(result: Any) -> JSONResponse:
        return JSONResponse(result.model_dump(mode="json", by_alias=True))

    def offered(template: dict[str, Any]) -> dict[str, Any]:
        """A template as Dploy's server lists it: strings and integers, never null (no icon
        is "", no category is left out, an unlimited TTL is -1)."""
        shown = {**template, "icon": template.get("icon") or "",
                 "ttl": -1 if template.get("ttl") is None else template["ttl"]}
        if shown.get("category") is None:
            shown.pop("category", None)
        return shown

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
        return JSONResponse([offered(i.model_dump(mode="json", by_alias=True))
                             for i in result.items])

    @face.get("/api/ui-config")
    async def ui_config() -> dict[str, bool]:
        """What Dploy's web UI shows: the catalog, the caller's instances and the manager
        (which answers admins of the sign-in organization only)."""
        return {"catalogEnabled": True, "instancesEnabled": True, "managerEnabled": True}

    @face.get("/api/me")
    async def me(request: Request) -> JSONResponse:
        return shaped(await run(request, "instances.me", {}))

    @face.get("/api/admin/instances")
    async def admin_instances(request: Request) -> JSONResponse:
        return shaped(await run(request, "instances.admin.list", {}))

    @face.get("/api/admin/templates")
    async def admin_templates(request: Request) -> JSONResponse:
        return shaped(await run(request, "instances.admin.templates", {}))

    @face.get("/api/environments")
    async def environments(request: Request) -> JSONResponse:
        listed = (await run(request, "instances.list", {})).model_dump(mode="json",
                                                                        by_alias=True)
        for env in listed["environments"]:
            env["icon"] = env.get("icon") or ""  # a string, as Dploy's server sends
        return JSONResponse(listed)

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

    @face.get("/auth/login")
    async def login(request: Request, return_url: str = "/") -> Response:
        """Sends the browser to the provider; the sign-in's secrets wait in a sealed cookie.
        Where to land after is `returnUrl` (what Dploy's web UI sends) or `return_url`."""
        return_url = request.query_params.get("returnUrl") or return_url
        redirect_uri = cp.settings.oidc_redirect_url or str(request.url_for("oidc_callback"))
        started = await run(request, "auth.oidc.start",
                            {"redirectUri": redirect_uri, "returnUrl": return_url}, public=True)
        response = RedirectResponse(started.authorization_url, status_code=302)
        response.set_cookie(FLOW_COOKIE, started.flow, max_age=FLOW_SECONDS, httponly=True,
                            samesite="lax", secure=request.url.scheme == "https")
        return response

    @face.get("/auth/callback", name="oidc_callback")
    async def callback(request: Request, code: str = "", state: str = "",
                       iss: str | None = None) -> Response:
        """Back from the provider: to `return_url#token=<id_token>`."""
        if "error" in request.query_params:
            return JSONResponse({"error": request.query_params.get(
                "error_description") or request.query_params["error"]}, status_code=401)
        signed = await run(request, "auth.oidc.callback", {
            "code": code, "state": state, "iss": iss,
            "flow": request.cookies.get(FLOW_COOKIE, "")},
            public=True)
        response = RedirectResponse(f"{signed.return_url}#token={signed.id_token}",
                                    status_code=302)
        response.delete_cookie(FLOW_COOKIE)
        return response

    @face.get("/auth/logout")
    async def logout() -> Response:
        """Nothing is kept on the server for a Bearer id_token: forgets a sign-in under way;
        the client drops its token."""
        response = JSONResponse({"status": "logged out"})
        response.delete_cookie(FLOW_COOKIE)
        return response

    return face
