"""The web console: server-rendered pages (Jinja2) at `/`, over the same operations as the API
(a page shows what an operation returns, a form runs an operation), htmx for forms that
update part of a page, and the API's Server-Sent Events streams for live logs.

The session is the API's session cookie. Every POST carries a CSRF token (double submit: the
`lb_csrf` cookie, HttpOnly and SameSite=Strict, must equal the form's `csrf` field or the
`X-CSRF-Token` header). A refused form is shown again with the operation's error messages
next to its fields.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import inspect
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from launchbay.control_plane import ControlPlane
from launchbay.http.bodies import form_body
from launchbay.http.browsers import origin_of
from launchbay.http.common import AFTER, FLOW_COOKIE, SESSION_COOKIE, credentials, meta_of
from launchbay.operations import Visit
from launchbay.operations.compat.blueprints import split_image
from launchbay.operations.errors import Forbidden, NotFound, OperationError, Unauthenticated
from launchbay.operations.identity.accounts import Actor
from launchbay.operations.identity.oidc_login import FLOW_SECONDS

if TYPE_CHECKING:
    from fastapi.templating import Jinja2Templates

ASSETS = Path(__file__).parent / "console_assets"
CSRF_COOKIE = "lb_csrf"
Form = dict[str, str]


class Refused(Exception):
    """A form the console shows again, with `errors` ({field: message}; "" for the form)."""

    def __init__(self, errors: dict[str, str], status: int = 400):
        self.errors, self.status = errors, status
        self.message = next(iter(errors.values()))


def field_errors(exc: OperationError) -> dict[str, str]:
    """An operation's refusal as {field: message}: validation details name their field (the
    last part of its path), anything else belongs to the whole form."""
    if isinstance(exc.details, list):
        found = {str(d.get("field", "")).split(".")[-1]: d.get("message", "invalid")
                 for d in exc.details if isinstance(d, dict)}
        if found:
            return found
    return {"": exc.message}


def _ago(value: str | None) -> str:
    """A timestamp of the API as people read it: `2026-11-29 21:40:44`."""
    if not value:
        return "-"
    return datetime.fromisoformat(value.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M:%S")


def _duration(d: dict[str, Any]) -> str:
    if not d.get("startedAt"):
        return "-"
    start = datetime.fromisoformat(d["startedAt"].replace("Z", "+00:00"))
    end = datetime.fromisoformat((d.get("finishedAt") or d["startedAt"]).replace("Z", "+00:00"))
    seconds = (end - start).total_seconds()
    return f"{seconds:.1f} s" if d.get("finishedAt") else "running"


@functools.cache
def templates() -> Jinja2Templates:
    """The pages' templates, loaded with Jinja2 on the first page (an API-only server never
    pays for them)."""
    from fastapi.templating import Jinja2Templates

    loaded = Jinja2Templates(directory=ASSETS / "templates")
    loaded.env.filters.update(when=_ago, duration=_duration)
    return loaded


class Console:
    """What every page needs: the caller, operations run as them, and rendering."""

    def __init__(self, cp: ControlPlane):
        self.cp = cp

    async def actor(self, request: Request) -> Actor | None:
        secret = request.cookies.get(SESSION_COOKIE) or credentials(request)
        return await run_in_threadpool(self.cp.authenticate, secret, self.visit(request),
                                       meta_of(request).ip_address) if secret else None

    @staticmethod
    def visit(request: Request) -> Visit | None:
        """The store session a page's reads share (`page` opens it; a form has none)."""
        return getattr(request.state, "visit", None)

    async def run(self, request: Request, key: str, data: dict[str, Any] | None = None,
                  actor: Actor | None = None) -> dict[str, Any]:
        """An operation's result as the API shows it (JSON field names)."""
        result = await run_in_threadpool(self.cp.ops.run, key, actor or request.state.actor,
                                         data or {}, meta_of(request), self.visit(request))
        return result.model_dump(mode="json", by_alias=True) if result is not None else {}

    async def context(self, request: Request) -> dict[str, Any] | None:
        """The signed-in caller and their organizations (fetched once per request)."""
        if getattr(request.state, "actor", None) is None:
            return None
        if getattr(request.state, "context", None) is None:
            request.state.context = await self.run(request, "organizations.current-context")
        return request.state.context

    async def page(self, request: Request, name: str, status: int = 200,
                   **values: Any) -> HTMLResponse:
        context = await self.context(request)
        token = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
        response = templates().TemplateResponse(request, name, {
            "me": context, "csrf": token, "errors": {}, "form": {},
            "single_sign_on": bool(self.cp.settings.oidc_issuer), **values},
            status_code=status)
        if request.cookies.get(CSRF_COOKIE) != token:
            response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict",
                                secure=request.url.scheme == "https", path="/")
        return response


async def form_of(request: Request) -> Form:
    """The posted form, refused (403) unless it carries the CSRF token of the cookie and, when
    the browser names where it comes from, comes from this origin (a sibling site could have
    set the cookie)."""
    form = {k: v for k, v in (await form_body(request)).items() if isinstance(v, str)}
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = form.pop("csrf", "") or request.headers.get("x-csrf-token", "")
    origin = origin_of(request)
    if not cookie or not hmac.compare_digest(cookie.encode(), sent.encode()) or \
            origin not in (None, request.headers.get("host")):
        raise Forbidden("the form is out of date: reload the page and try again",
                        code="csrf_failed")
    return form


def source_of(form: Form) -> dict[str, Any] | None:
    """What a form asks to run: an `image` (name:tag), or a git `repository` and its `ref`
    (branch, tag or commit); None when it names neither."""
    if form.get("image") and form.get("repository"):
        raise Refused({"repository": "an image or a repository, not both"})
    if form.get("repository"):
        return {"kind": "git", "locator": form["repository"], "gitRef": form.get("ref") or None}
    if form.get("image"):
        image, tag = split_image(form["image"])
        return {"kind": "docker-image", "imageName": image, "imageTag": tag}
    return None


def typed(form: Form, name: str) -> None:
    """A delete goes on only when the name of what it deletes was typed."""
    if form.get("confirmName") != name:
        raise Refused({"confirmName": f"type {name} to delete it"})


def see_other(url: str, request: Request) -> Response:
    """After a successful form: the next page (htmx follows `HX-Redirect`)."""
    if request.headers.get("hx-request"):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def create(cp: ControlPlane) -> APIRouter:
    console = Console(cp)
    router = APIRouter(include_in_schema=False)
    Handler = Callable[..., Awaitable[Response]]
    Values = Callable[..., Awaitable[dict[str, Any]]]

    def page(path: str, public: bool = False,
             name: str | None = None) -> Callable[[Handler], Handler]:
        """A GET page: signed in unless `public` (else to /login, or /setup on a new
        instance); a refusal (404 for another organization's object) renders as a page."""
        def decorate(handler: Handler) -> Handler:
            async def endpoint(request: Request) -> Response:
                started = time.perf_counter()
                request.state.visit = Visit(cp.ops.sessions)
                try:
                    request.state.actor = await console.actor(request)
                    if request.state.actor is None and not public:
                        return RedirectResponse(await _entry(request), status_code=303)
                    try:
                        response = await handler(request, **request.path_params)
                    except OperationError as exc:
                        response = await console.page(request, "error.html", exc.status,
                                                      error=exc)
                finally:
                    await run_in_threadpool(request.state.visit.close)
                # What rendering the page cost the server (browsers' dev tools show it).
                response.headers["Server-Timing"] = \
                    f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
                return response
            router.add_api_route(path, endpoint, methods=["GET"], response_class=HTMLResponse,
                                 name=name)
            return handler
        return decorate

    def action(path: str, template: str | None = None,
               public: bool = False) -> Callable[[Handler], Handler]:
        """A POST form: CSRF-checked; `Refused` (or an operation's refusal) shows `template`
        again with the errors next to the fields and the values as typed."""
        def decorate(handler: Handler) -> Handler:
            async def endpoint(request: Request) -> Response:
                request.state.actor = await console.actor(request)
                if request.state.actor is None and not public:
                    return RedirectResponse("/login", status_code=303)
                params, form = request.path_params, {}
                try:
                    form = await form_of(request)
                    return await handler(request, form, **params)
                except (OperationError, Refused) as exc:
                    if template is None or getattr(exc, "code", "") == "csrf_failed":
                        return await console.page(request, "error.html", exc.status, error=exc)
                    errors = exc.errors if isinstance(exc, Refused) else field_errors(exc)
                    values = await _again[template](request, **params) \
                        if template in _again else {}
                    return await console.page(request, template, exc.status, errors=errors,
                                              form=form, **values)
            router.add_api_route(path, endpoint, methods=["POST"], response_class=HTMLResponse)
            return handler
        return decorate

    def view(path: str, template: str) -> Callable[[Values], Values]:
        """A page showing `template` with what the decorated function returns; a form of the
        page that is refused shows it again the same way, with its errors."""
        def decorate(values: Values) -> Values:
            async def show(request: Request, **params: Any) -> Response:
                return await console.page(request, template, **await values(request, **params))
            page(path)(show)
            wanted = set(inspect.signature(values).parameters) - {"request"}

            async def again(request: Request, **params: Any) -> dict[str, Any]:
                return await values(request, **{k: v for k, v in params.items() if k in wanted})
            _again[template] = again
            return values
        return decorate

    async def _entry(request: Request) -> str:
        status = await console.run(request, "bootstrap.status", actor=None)
        return "/setup" if status["bootstrapRequired"] else "/login"

    # What a page shows when its form is shown again after a refusal.
    _again: dict[str, Values] = {}

    # -- signing in ------------------------------------------------------------------------

    @page("/", public=True)
    async def home(request: Request) -> Response:
        if request.state.actor is None:
            return RedirectResponse(await _entry(request), status_code=303)
        return RedirectResponse("/projects", status_code=303)

    @page("/setup", public=True)
    async def setup(request: Request) -> Response:
        if not (await console.run(request, "bootstrap.status", actor=None))["bootstrapRequired"]:
            return RedirectResponse("/login", status_code=303)
        return await console.page(request, "setup.html")

    @action("/setup", "setup.html", public=True)
    async def setup_done(request: Request, form: Form) -> Response:
        if form.get("password") != form.get("confirm"):
            raise Refused({"confirm": "the two passwords differ"})
        await console.run(request, "bootstrap.first-admin", {
            "email": form.get("email"), "password": form.get("password"),
            "organizationName": form.get("organizationName") or None}, actor=None)
        return await _sign_in(request, form)

    @page("/login", public=True)
    async def login(request: Request) -> Response:
        return await console.page(request, "login.html")

    @action("/login", "login.html", public=True)
    async def login_done(request: Request, form: Form) -> Response:
        return await _sign_in(request, form)

    async def _sign_in(request: Request, form: Form) -> Response:
        try:
            result = await run_in_threadpool(cp.ops.run, "auth.login", None, {
                "email": form.get("email"), "password": form.get("password")},
                meta_of(request))
        except Unauthenticated as exc:
            raise Refused({"password": exc.message}, exc.status) from None
        response = see_other("/projects", request)
        AFTER["auth.login"](request, response, result)
        return response

    @page("/login/oidc", public=True)
    async def login_oidc(request: Request) -> Response:
        """Sends the browser to the OpenID Connect provider (when one is configured)."""
        started = await console.run(request, "auth.oidc.start", {
            "redirectUri": str(request.url_for("console_oidc_callback")),
            "returnUrl": "/projects"}, actor=None)
        response = RedirectResponse(started["authorizationUrl"], status_code=302)
        response.set_cookie(FLOW_COOKIE, started["flow"], max_age=FLOW_SECONDS, httponly=True,
                            samesite="lax", secure=request.url.scheme == "https")
        return response

    @page("/login/oidc/callback", public=True, name="console_oidc_callback")
    async def login_oidc_done(request: Request) -> Response:
        """Back from the provider: a console session, then the projects."""
        query = request.query_params
        if "error" in query:
            return await console.page(request, "login.html", 401, errors={
                "": query.get("error_description") or query["error"]})
        try:
            signed = await run_in_threadpool(cp.ops.run, "auth.oidc.callback", None, {
                "code": query.get("code", ""), "state": query.get("state", ""),
                "iss": query.get("iss"), "flow": request.cookies.get(FLOW_COOKIE, ""),
                "createSession": True}, meta_of(request))
        except OperationError as exc:
            return await console.page(request, "login.html", exc.status,
                                      errors={"": exc.message})
        response = RedirectResponse(signed.return_url, status_code=302)
        AFTER["auth.oidc.callback"](request, response, signed)
        response.delete_cookie(FLOW_COOKIE)
        return response

    @action("/logout")
    async def logout(request: Request, form: Form) -> Response:
        await console.run(request, "auth.logout")
        response = RedirectResponse("/login", status_code=303)
        AFTER["auth.logout"](request, response, None)
        return response

    @action("/organizations/switch")
    async def switch(request: Request, form: Form) -> Response:
        await console.run(request, "organizations.switch",
                          {"organizationId": form.get("organizationId")})
        return see_other("/projects", request)

    # -- projects --------------------------------------------------------------------------

    @view("/projects", "projects.html")
    async def projects_values(request: Request) -> dict[str, Any]:
        """Each project with its apps (grouped from one list of the organization's)."""
        projects = (await console.run(request, "projects.list", {"limit": 500}))["items"]
        apps: dict[str, list[dict[str, Any]]] = {}
        for r in (await console.run(request, "resources.list", {"limit": 500}))["items"]:
            apps.setdefault(r["projectId"], []).append(r)
        return {"projects": projects, "apps": apps}


    @action("/projects", "projects.html")
    async def project_create(request: Request, form: Form) -> Response:
        made = await console.run(request, "projects.create", {
            "name": form.get("name", ""), "description": form.get("description") or None})
        return see_other(f"/projects/{made['id']}", request)

    @view("/projects/{project_id}", "project.html")
    async def project_values(request: Request, project_id: str) -> dict[str, Any]:
        project = await console.run(request, "projects.show", {"projectId": project_id})
        envs = (await console.run(request, "environments.list",
                                  {"projectId": project_id, "limit": 500}))["items"]
        resources = (await console.run(request, "resources.list",
                                       {"projectId": project_id, "limit": 500}))["items"]
        urls = (await console.run(request, "resources.urls", {"projectId": project_id}))
        databases = (await console.run(request, "dependency-resources.list",
                                       {"projectId": project_id, "limit": 500}))["items"]
        previews = (await console.run(request, "preview-environments.list", {
            "projectId": project_id, "status": "active", "limit": 200}))["items"]
        return {"project": project, "environments": envs, "resources": resources,
                "urls": urls["items"], "databases": databases, "previews": previews}

    @action("/projects/{project_id}/previews/{preview_id}/delete", "project.html")
    async def preview_delete(request: Request, form: Form, project_id: str,
                             preview_id: str) -> Response:
        await console.run(request, "preview-environments.delete", {
            "resourceId": form.get("resourceId", ""), "previewEnvironmentId": preview_id})
        return see_other(f"/projects/{project_id}#previews", request)

    @action("/projects/{project_id}/databases", "project.html")
    async def database_create(request: Request, form: Form, project_id: str) -> Response:
        made = await console.run(request, "dependency-resources.provision", {
            "projectId": project_id, "environmentId": form.get("environmentId", ""),
            "kind": form.get("kind", ""), "name": form.get("name", "")})
        return see_other(f"/databases/{made['id']}", request)

    @view("/databases/{database_id}", "database.html")
    async def database_values(request: Request, database_id: str) -> dict[str, Any]:
        db = (await console.run(request, "dependency-resources.show",
                                {"dependencyResourceId": database_id}))["dependencyResource"]
        backups = (await console.run(request, "dependency-resources.backups.list",
                                     {"dependencyResourceId": database_id}))["items"]
        apps = (await console.run(request, "resources.list", {
            "environmentId": db["environmentId"], "limit": 500}))["items"]
        return {"db": db, "backups": backups, "apps": apps}

    async def _database(request: Request, database_id: str) -> dict[str, Any]:
        return (await console.run(request, "dependency-resources.show",
                                  {"dependencyResourceId": database_id}))["dependencyResource"]

    @action("/databases/{database_id}/bindings", "database.html")
    async def database_bind(request: Request, form: Form, database_id: str) -> Response:
        await console.run(request, "resources.dependency-bindings.create", {
            "resourceId": form.get("resourceId", ""), "dependencyResourceId": database_id,
            "targetName": form.get("targetName") or "DATABASE_URL"})
        return see_other(f"/databases/{database_id}", request)

    @action("/databases/{database_id}/backups", "database.html")
    async def database_backup(request: Request, form: Form, database_id: str) -> Response:
        await console.run(request, "dependency-resources.backups.create",
                          {"dependencyResourceId": database_id})
        return see_other(f"/databases/{database_id}", request)

    @action("/databases/{database_id}/backups/{backup_id}/restore", "database.html")
    async def database_restore(request: Request, form: Form, database_id: str,
                               backup_id: str) -> Response:
        db = await _database(request, database_id)
        if form.get("confirmName") != db["name"]:
            raise Refused({"confirmName": f"type {db['name']} to replace its data"})
        await console.run(request, "dependency-resources.backups.restore", {
            "backupId": backup_id, "acknowledgeDataOverwrite": True,
            "acknowledgeRuntimeNotRestarted": True})
        return see_other(f"/databases/{database_id}", request)

    @action("/databases/{database_id}/delete", "database.html")
    async def database_delete(request: Request, form: Form, database_id: str) -> Response:
        db = await _database(request, database_id)
        typed(form, db["name"])
        await console.run(request, "dependency-resources.delete", {
            "dependencyResourceId": database_id,
            "releaseBackups": form.get("releaseBackups") == "on"})
        return see_other(f"/projects/{db['projectId']}", request)


    @action("/projects/{project_id}/environments", "project.html")
    async def environment_create(request: Request, form: Form, project_id: str) -> Response:
        await console.run(request, "environments.create", {
            "projectId": project_id, "name": form.get("name", ""),
            "kind": form.get("kind") or "custom"})
        return see_other(f"/projects/{project_id}", request)

    @action("/projects/{project_id}/environments/{environment_id}/delete", "project.html")
    async def environment_delete(request: Request, form: Form, project_id: str,
                                 environment_id: str) -> Response:
        env = await console.run(request, "environments.show", {"environmentId": environment_id})
        if env["projectId"] != project_id:
            raise NotFound("environment not found", code="environment_not_found")
        typed(form, env["name"])
        await console.run(request, "environments.delete", {
            "environmentId": environment_id, "withResources": True,
            "confirmation": {"environmentName": env["name"]}})
        return see_other(f"/projects/{env['projectId']}", request)

    @action("/projects/{project_id}/delete", "project.html")
    async def project_delete(request: Request, form: Form, project_id: str) -> Response:
        project = await console.run(request, "projects.show", {"projectId": project_id})
        typed(form, project["name"])
        if project["lifecycleStatus"] != "archived":
            await console.run(request, "projects.archive", {"projectId": project_id,
                                                            "reason": "deleted"})
        await console.run(request, "projects.delete", {
            "projectId": project_id, "withResources": True,
            "confirmation": {"projectId": project_id}})
        return see_other("/projects", request)

    @action("/projects/{project_id}/apps", "project.html")
    async def app_create(request: Request, form: Form, project_id: str) -> Response:
        source = source_of(form)
        if source is None:
            raise Refused({"image": "an image to run (such as nginx:1.27), or a repository"})
        port = form.get("port", "")
        if not port.isdigit():
            raise Refused({"port": "the port the app listens on, such as 8080"})
        made = await console.run(request, "resources.create", {
            "projectId": project_id, "environmentId": form.get("environmentId", ""),
            "name": form.get("name", ""), "source": source,
            "networkProfile": {"internalPort": int(port)}})
        return see_other(f"/resources/{made['id']}", request)

    # -- resources and deployments ---------------------------------------------------------

    @view("/resources/{resource_id}", "resource.html")
    async def resource_values(request: Request, resource_id: str) -> dict[str, Any]:
        shown = await console.run(request, "resources.show", {
            "resourceId": resource_id, "includeLatestDeployment": True,
            "includeAccessSummary": True})
        r = shown["resource"]
        deployments = (await console.run(request, "deployments.list", {
            "resourceId": resource_id, "limit": 50}))["items"]
        config = await console.run(request, "resources.effective-config",
                                   {"resourceId": resource_id})
        domains = (await console.run(request, "domain-bindings.list",
                                     {"resourceId": resource_id}))["items"]
        certificates = {c["domainBindingId"]: c for c in (await console.run(
            request, "certificates.list", {"limit": 500}))["items"]} if domains else {}
        health = await console.run(request, "resources.health-history",
                                   {"resourceId": resource_id, "limit": 20})
        now = await console.run(request, "resources.health", {"resourceId": resource_id}) \
            if r["currentDeploymentId"] else None
        project = await console.run(request, "projects.show", {"projectId": r["projectId"]})
        git = (shown.get("source") or {}).get("kind") == "git"
        pushes = (await console.run(request, "resources.auto-deploy.show",
                                    {"resourceId": resource_id}))["policy"] if git else None
        events = (await console.run(request, "source-events.list", {
            "resourceId": resource_id, "limit": 10}))["items"] if pushes else []
        current = next((d for d in deployments if d["id"] == r["currentDeploymentId"]), None)
        overridden = {(o["key"], o["exposure"]) for o in config["overrides"]}
        jobs = (await console.run(request, "scheduled-tasks.list",
                                  {"resourceId": resource_id, "limit": 100}))["items"]
        return {"shown": shown, "resource": r, "deployments": deployments, "current": current,
                "variables": config["effectiveEntries"], "overridden": overridden,
                "domains": domains, "certificates": certificates,
                "health": health["observations"], "rollups": health["rollups"][:6],
                "now": now, "git": git, "pushes": pushes, "source_events": events,
                "project": project, "jobs": jobs,
                "people": await people(request)}

    @action("/resources/{resource_id}/auto-deploy", "resource.html")
    async def auto_deploy(request: Request, form: Form, resource_id: str) -> Response:
        mode = form.get("mode", "")
        globs = [g for g in form.get("excludePaths", "").replace(",", " ").split() if g]
        refs = [g for g in form.get("refs", "").replace(",", " ").split() if g]
        made = await console.run(request, "resources.auto-deploy.configure", {
            "resourceId": resource_id, "mode": mode,
            "policy": {"refs": refs, "excludePaths": globs} if mode == "enable" else None})
        if not made.get("webhookSecret"):
            return see_other(f"/resources/{resource_id}", request)
        # The secret is shown this once, on this answer: never stored for a later page.
        return await console.page(request, "resource.html", webhook_secret=made["webhookSecret"],
                                  **await resource_values(request, resource_id))

    async def people(request: Request) -> dict[str, str]:
        """Who is who in the organization: {user id: email}."""
        me = await console.context(request)
        org = me and me["currentOrganization"] and me["currentOrganization"]["organizationId"]
        members = await console.run(request, "organizations.members.list",
                                    {"organizationId": org, "limit": 250})
        return {m["userId"]: m["email"] for m in members["items"]}


    @action("/resources/{resource_id}/deploy", "resource.html")
    async def deploy(request: Request, form: Form, resource_id: str) -> Response:
        r = (await console.run(request, "resources.show", {"resourceId": resource_id}))
        made = await console.run(request, "deployments.create", {
            "projectId": r["resource"]["projectId"],
            "environmentId": r["resource"]["environmentId"], "resourceId": resource_id,
            "source": source_of(form)})
        return see_other(f"/deployments/{made['id']}", request)

    @action("/resources/{resource_id}/redeploy", "resource.html")
    async def redeploy(request: Request, form: Form, resource_id: str) -> Response:
        made = await console.run(request, "deployments.redeploy", {"resourceId": resource_id})
        return see_other(f"/deployments/{made['id']}", request)

    @action("/resources/{resource_id}/runtime/{verb}", "resource.html")
    async def runtime_control(request: Request, form: Form, resource_id: str,
                              verb: str) -> Response:
        """Stops, starts or restarts the current release, waits (briefly) for the engine, and
        observes the app again so that the page shows what is true now."""
        if verb not in ("stop", "start", "restart"):
            raise NotFound("no such runtime action", code="not_found")
        attempt = await console.run(request, f"resources.runtime.{verb}",
                                    {"resourceId": resource_id})
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (await console.run(
                request, "operator-work.show", {"workId": attempt["runtimeControlAttemptId"]})
                )["item"]["status"] in ("pending", "running", "retry-scheduled"):
            await asyncio.sleep(0.2)
        await console.run(request, "resources.health", {"resourceId": resource_id,
                                                        "mode": "live"})
        return see_other(f"/resources/{resource_id}", request)

    @action("/resources/{resource_id}/delete", "resource.html")
    async def resource_delete(request: Request, form: Form, resource_id: str) -> Response:
        r = (await console.run(request, "resources.show", {"resourceId": resource_id}))[
            "resource"]
        typed(form, r["name"])
        await console.run(request, "resources.delete", {
            "resourceId": resource_id, "confirmation": {"resourceSlug": r["slug"]}})
        return see_other(f"/projects/{r['projectId']}", request)

    @action("/resources/{resource_id}/variables", "resource.html")
    async def variable_set(request: Request, form: Form, resource_id: str) -> Response:
        await console.run(request, "resources.variables.set", {
            "resourceId": resource_id, "key": form.get("key", ""),
            "value": form.get("value", ""),
            "kind": "secret" if form.get("secret") else "plain-config",
            "exposure": "runtime"})
        return see_other(f"/resources/{resource_id}#variables", request)

    @action("/resources/{resource_id}/variables/delete", "resource.html")
    async def variable_delete(request: Request, form: Form, resource_id: str) -> Response:
        await console.run(request, "resources.variables.delete", {
            "resourceId": resource_id, "key": form.get("key", ""), "exposure": "runtime"})
        return see_other(f"/resources/{resource_id}#variables", request)

    @action("/resources/{resource_id}/jobs", "resource.html")
    async def job_add(request: Request, form: Form, resource_id: str) -> Response:
        """A job: a shell command on a schedule (`@every 10m`, cron...) in a time zone."""
        await console.run(request, "scheduled-tasks.create", {
            "resourceId": resource_id, "name": form.get("name") or None,
            "schedule": form.get("schedule", ""), "timezone": form.get("timezone") or "UTC",
            "commandIntent": form.get("commandIntent", ""),
            "timeoutSeconds": form.get("timeoutSeconds") or 3600})  # validated there
        return see_other(f"/resources/{resource_id}#jobs", request)

    @action("/jobs/{task_id}/run")
    async def job_run(request: Request, form: Form, task_id: str) -> Response:
        made = await console.run(request, "scheduled-tasks.run-now", {"taskId": task_id})
        return see_other(f"/job-runs/{made['run']['runId']}", request)

    @action("/jobs/{task_id}/state")
    async def job_state(request: Request, form: Form, task_id: str) -> Response:
        task = (await console.run(request, "scheduled-tasks.configure", {
            "taskId": task_id, "status": "enabled" if form.get("enable") else "disabled"}))[
            "task"]
        return see_other(f"/resources/{task['resourceId']}#jobs", request)

    @action("/jobs/{task_id}/delete")
    async def job_delete(request: Request, form: Form, task_id: str) -> Response:
        gone = await console.run(request, "scheduled-tasks.delete", {"taskId": task_id})
        return see_other(f"/resources/{gone['resourceId']}#jobs", request)

    @page("/job-runs/{run_id}")
    async def job_run_page(request: Request, run_id: str) -> Response:
        """A run with its lines; refreshed (htmx) while it runs."""
        run = (await console.run(request, "scheduled-task-runs.show", {"runId": run_id}))["run"]
        task = (await console.run(request, "scheduled-tasks.show",
                                  {"taskId": run["taskId"]}))["task"]
        lines = (await console.run(request, "scheduled-task-runs.logs",
                                   {"runId": run_id, "limit": 1000}))["entries"]
        runs = (await console.run(request, "scheduled-task-runs.list",
                                  {"taskId": run["taskId"], "limit": 20}))["items"]
        return await console.page(request, "job_run.html", run=run, task=task, lines=lines,
                                  runs=runs)

    @action("/resources/{resource_id}/domains", "resource.html")
    async def domain_add(request: Request, form: Form, resource_id: str) -> Response:
        r = (await console.run(request, "resources.show", {"resourceId": resource_id}))
        await console.run(request, "domain-bindings.create", {
            "projectId": r["resource"]["projectId"],
            "environmentId": r["resource"]["environmentId"], "resourceId": resource_id,
            "domainName": form.get("domainName", ""),
            "tlsMode": form.get("tlsMode") or "auto"})
        return see_other(f"/resources/{resource_id}#domains", request)

    @page("/resources/{resource_id}/logs")
    async def runtime_logs(request: Request, resource_id: str) -> Response:
        shown = await console.run(request, "resources.show", {"resourceId": resource_id})
        project = await console.run(request, "projects.show",
                                    {"projectId": shown["resource"]["projectId"]})
        return await console.page(request, "runtime_logs.html", resource=shown["resource"],
                                  project=project)

    @page("/deployments/{deployment_id}")
    async def deployment(request: Request, deployment_id: str) -> Response:
        d = (await console.run(request, "deployments.show",
                               {"deploymentId": deployment_id}))["deployment"]
        shown = await console.run(request, "resources.show", {"resourceId": d["resourceId"]})
        project = await console.run(request, "projects.show", {"projectId": d["projectId"]})
        return await console.page(request, "deployment.html", deployment=d, project=project,
                                  resource=shown["resource"], people=await people(request))

    @page("/deployments/{deployment_id}/status")
    async def deployment_status(request: Request, deployment_id: str) -> Response:
        """The status part of the deployment page, which htmx refreshes until it ends."""
        d = (await console.run(request, "deployments.show",
                               {"deploymentId": deployment_id}))["deployment"]
        return await console.page(request, "deployment_status.html", deployment=d,
                                  people=await people(request))

    @action("/deployments/{deployment_id}/rollback")
    async def rollback_to(request: Request, form: Form, deployment_id: str) -> Response:
        """Serves this earlier release of its resource again."""
        d = (await console.run(request, "deployments.show",
                               {"deploymentId": deployment_id}))["deployment"]
        shown = await console.run(request, "resources.show", {"resourceId": d["resourceId"]})
        made = await console.run(request, "deployments.rollback", {
            "deploymentId": shown["resource"]["currentDeploymentId"] or deployment_id,
            "rollbackCandidateDeploymentId": deployment_id})
        return see_other(f"/deployments/{made['id']}", request)

    @action("/resources/{resource_id}/rollback")
    async def rollback(request: Request, form: Form, resource_id: str) -> Response:
        """Serves the release before the current one again."""
        shown = await console.run(request, "resources.show", {"resourceId": resource_id})
        current = shown["resource"]["currentDeploymentId"]
        if current is None:
            raise OperationError("nothing is deployed yet", code="no_current_release")
        made = await console.run(request, "deployments.rollback", {"deploymentId": current})
        return see_other(f"/deployments/{made['id']}", request)

    @action("/deployments/{deployment_id}/cancel")
    async def cancel(request: Request, form: Form, deployment_id: str) -> Response:
        await console.run(request, "deployments.cancel",
                          {"deploymentId": deployment_id, "confirm": deployment_id})
        return see_other(f"/deployments/{deployment_id}", request)

    # -- the instance ------------------------------------------------------------------------

    @view("/servers", "servers.html")
    async def servers_values(request: Request) -> dict[str, Any]:
        listed = (await console.run(request, "servers.list"))["items"]
        capacity = [await console.run(request, "servers.capacity", {"serverId": s["id"]})
                    for s in listed]
        return {"servers": list(zip(listed, capacity, strict=True)),
                "proxy": await console.run(request, "proxy.status")}

    @action("/servers/draft", "servers.html")
    async def server_draft(request: Request, form: Form) -> Response:
        """Step one of adding a server: its key (pasted, or made here: its public key shown
        this once to install), then the draft test, whose host key the next step pins."""
        made = None
        if not form.get("credentialId"):
            made = await console.run(request, "credentials.ssh.create", {
                "name": f"{form.get('name') or 'server'}-key",
                "privateKey": form.get("privateKey") or None,
                "username": form.get("username") or "root"})
            form["credentialId"] = made["id"]
        form.pop("privateKey", None)  # never shown again
        draft = {"name": form.get("name") or None, "host": form.get("host", ""),
                 "port": int(form.get("port") or 22), "username": form.get("username") or "root",
                 "credentialId": form["credentialId"]}
        tested = await console.run(request, "servers.connectivity.test-draft",
                                   {"server": draft})
        return await console.page(request, "servers.html", draft=tested, made=made, form=form,
                                  **await servers_values(request))

    @action("/servers/add", "servers.html")
    async def server_add(request: Request, form: Form) -> Response:
        await console.run(request, "servers.register", {
            "name": form.get("name", ""), "host": form.get("host", ""),
            "port": int(form.get("port") or 22), "username": form.get("username") or "root",
            "credentialId": form.get("credentialId", ""),
            "hostKeyFingerprint": form.get("hostKeyFingerprint", "")})
        return see_other("/servers", request)

    @action("/servers/{server_id}/test", "servers.html")
    async def server_test(request: Request, form: Form, server_id: str) -> Response:
        await console.run(request, "servers.connectivity.test", {"serverId": server_id})
        return see_other(f"/servers#srv-{server_id}", request)

    @action("/servers/{server_id}/edge", "servers.html")
    async def server_edge(request: Request, form: Form, server_id: str) -> Response:
        await console.run(request, "servers.edge-proxy.bootstrap", {"serverId": server_id})
        return see_other(f"/servers#srv-{server_id}", request)

    @action("/servers/{server_id}/deactivate", "servers.html")
    async def server_deactivate(request: Request, form: Form, server_id: str) -> Response:
        await console.run(request, "servers.deactivate",
                          {"serverId": server_id, "reason": form.get("reason") or None})
        return see_other("/servers", request)

    @page("/work")
    async def work(request: Request) -> Response:
        status = request.query_params.get("status") or None
        items = (await console.run(request, "operator-work.list",
                                   {"status": status, "limit": 100}))["items"]
        return await console.page(request, "work.html", items=items, wanted=status)

    @action("/work/{work_id}/retry")
    async def work_retry(request: Request, form: Form, work_id: str) -> Response:
        await console.run(request, "operator-work.retry", {"workId": work_id})
        return see_other("/work", request)

    @action("/work/{work_id}/cancel")
    async def work_cancel(request: Request, form: Form, work_id: str) -> Response:
        await console.run(request, "operator-work.cancel",
                          {"workId": work_id, "reason": "canceled in the console"})
        return see_other("/work", request)

    @page("/members")
    async def members(request: Request) -> Response:
        me = await console.context(request)
        org = me and me["currentOrganization"] and me["currentOrganization"]["organizationId"]
        listed = await console.run(request, "organizations.members.list",
                                   {"organizationId": org, "limit": 250})
        return await console.page(request, "members.html", members=listed["items"])

    @view("/tokens", "tokens.html")
    async def tokens_values(request: Request) -> dict[str, Any]:
        return {"tokens": (await console.run(request, "tokens.list"))["items"]}


    @action("/tokens", "tokens.html")
    async def token_create(request: Request, form: Form) -> Response:
        scopes = [s for s in form.get("scopes", "").replace(",", " ").split() if s]
        made = await console.run(request, "tokens.create", {
            "displayName": form.get("displayName", ""), "scopes": scopes or ["*"]})
        # The secret is shown this once, on this answer: never stored for a later page.
        return await console.page(request, "tokens.html", created=made,
                                  **await tokens_values(request))

    @action("/tokens/{token_id}/revoke")
    async def token_revoke(request: Request, form: Form, token_id: str) -> Response:
        await console.run(request, "tokens.revoke", {"tokenId": token_id})
        return see_other("/tokens", request)

    # -- environments on demand --------------------------------------------------------------

    @view("/instances", "instances.html")
    async def instances_values(request: Request) -> dict[str, Any]:
        return {"offered": (await console.run(request, "templates.list"))["items"],
                "mine": await console.run(request, "instances.list")}


    @action("/instances", "instances.html")
    async def instance_run(request: Request, form: Form) -> Response:
        template = form.pop("template", "")
        await console.run(request, "instances.run", {"template": template, "parameters": {
            k.removeprefix("p."): v for k, v in form.items() if k.startswith("p.") and v}})
        return see_other("/instances", request)

    @action("/instances/{template}/extend", "instances.html")
    async def instance_extend(request: Request, form: Form, template: str) -> Response:
        await console.run(request, "instances.extend", {"template": template})
        return see_other("/instances", request)

    @action("/instances/{template}/delete", "instances.html")
    async def instance_delete(request: Request, form: Form, template: str) -> Response:
        await console.run(request, "instances.delete", {"template": template})
        return see_other("/instances", request)

    return router


def mount(app: FastAPI, cp: ControlPlane) -> None:
    app.include_router(create(cp))
    app.mount("/static", StaticFiles(directory=ASSETS / "static"), name="console-static")
