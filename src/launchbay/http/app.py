"""The control plane's HTTP application: health, the native API and its OpenAPI document."""

from __future__ import annotations

import base64
import gc
import hashlib
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from launchbay import __version__
from launchbay.control_plane import ControlPlane
from launchbay.http import console, errors, native, streams
from launchbay.http.browsers import SecurityHeaders
from launchbay.http.compat import dploy, dployr, shipyard
from launchbay.settings import Settings

# Swagger UI's files, from the fastapi-swagger package: the API's page works offline.
SWAGGER_FILES = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css",
                 "favicon-32x32.png": "image/png"}


def create_app(settings: Settings | None = None,
               control_plane: ControlPlane | None = None) -> FastAPI:
    cp = control_plane or ControlPlane(settings or Settings())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        cp.start_workers()
        # What start-up made lives as long as the process: kept out of the collector's full
        # passes, which otherwise walk it all and stall a request for tens of milliseconds.
        # A request makes thousands of objects that live only as long as it does: collecting
        # every 700 of them (Python's default) promotes the request's own objects to the old
        # generation, whose full passes then come every second and take 10-20 ms at 10,000
        # resources; every 10,000 they are mostly gone by refcount before a pass.
        gc.freeze()
        gc.set_threshold(10_000, 10, 10)
        yield
        gc.unfreeze()
        if control_plane is None:  # the app built it, so the app closes it
            cp.close()

    app = FastAPI(title="launchbay", version=__version__, openapi_url="/api/openapi.json",
                  docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.control_plane = cp
    app.add_middleware(SecurityHeaders)
    errors.install(app)

    @app.get("/health", tags=["system"])
    def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/api/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        """Swagger UI over the OpenAPI document, from files served here (no CDN); its one
        inline script is allowed by hash."""
        page = get_swagger_ui_html(
            openapi_url="/api/openapi.json", title="launchbay API",
            swagger_js_url="/api/docs/swagger-ui-bundle.js",
            swagger_css_url="/api/docs/swagger-ui.css",
            swagger_favicon_url="/api/docs/favicon-32x32.png")
        inline = re.search(rb"<script>(.*?)</script>", page.body, re.S)
        digest = base64.b64encode(hashlib.sha256(inline[1] if inline else b"").digest())
        page.headers["Content-Security-Policy"] = (
            f"default-src 'self'; script-src 'self' 'sha256-{digest.decode()}'; "
            "style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
        return page

    @app.get("/api/docs/{name}", include_in_schema=False)
    def docs_file(name: str) -> Response:
        if name not in SWAGGER_FILES:
            return JSONResponse({"error": "not found", "code": "not_found"}, status_code=404)
        return FileResponse(str(resources.files("fastapi_swagger.resources") / name),
                            media_type=SWAGGER_FILES[name],
                            headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/ready", tags=["system"])
    def ready() -> JSONResponse:
        """Readiness: the store answers and its migrations are current."""
        state = cp.readiness()
        return JSONResponse({"status": "ready" if state["ready"] else "not-ready", **state},
                            status_code=200 if state["ready"] else 503)

    api = native.router(cp)
    streams.install(api, cp)
    app.include_router(api, prefix="/api")
    app.state.faces = {"dployr": dployr.create(cp), "shipyard": shipyard.create(cp),
                       "dploy": dploy.create(cp)}
    for name, face in app.state.faces.items():
        app.mount(f"/compat/{name}", face)
    console.mount(app, cp)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schemas: dict[str, Any] = {}
            native.document(api.routes, schemas)
            doc = get_openapi(title=app.title, version=app.version, routes=app.routes,
                              description="launchbay native API")
            doc.setdefault("components", {}).setdefault("schemas", {}).update(schemas)
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to replace the schema
    return app
