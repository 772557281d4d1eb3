"""What the HTTP faces share: who is asking (bearer header or session cookie), the request's
metadata for the audit trail, how results are written, and the session cookie set at login."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from launchbay.control_plane import ControlPlane
from launchbay.http.browsers import refuse_cross_site
from launchbay.operations import Actor, Meta, Visit
from launchbay.operations.catalog import Operation
from launchbay.operations.errors import Unauthenticated
from launchbay.operations.identity.accounts import SESSION_PREFIX

SESSION_COOKIE = "launchbay_session"
# An OpenID Connect sign-in under way: its state, nonce and PKCE verifier, sealed.
FLOW_COOKIE = "lb_oidc_flow"


def credentials(request: Request, mutating: bool = False) -> str | None:
    """The bearer secret of a request: the Authorization header, else the session cookie,
    which a `mutating` request may use only from launchbay's own pages (else 403). A token
    (an API or deploy token) counts only in the header: the cookie carries sessions."""
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie and not cookie.startswith(f"{SESSION_PREFIX}_"):
        return None
    if cookie and mutating:
        refuse_cross_site(request)
    return cookie


async def resolve_actor(cp: ControlPlane, request: Request, op: Operation) -> Actor | None:
    secret = credentials(request, op.changes_as_caller)
    return await run_in_threadpool(actor_of, cp, secret, op, None,
                                   meta_of(request).ip_address) if secret else None


def actor_of(cp: ControlPlane, secret: str | None, op: Operation,
             visit: Visit | None = None, address: str | None = None) -> Actor | None:
    """Who the secret (from `credentials`) names, for `op`: None without one; refused when it
    names no one and the operation is not public."""
    if secret is None:
        return None
    actor = cp.authenticate(secret, visit, address)
    if actor is None and op.scope != "public":
        raise Unauthenticated("invalid or expired credentials", code="invalid_token")
    return actor


def run_as_caller(cp: ControlPlane, secret: str | None, op: Operation, data: dict[str, Any],
                  meta: Meta) -> Any:
    """Authenticates and runs the operation (a read), in one trip to a worker thread and one
    store session."""
    visit = Visit(cp.ops.sessions)
    try:
        return cp.ops.run(op.key, actor_of(cp, secret, op, visit, meta.ip_address), data,
                          meta, visit)
    finally:
        visit.close()


def encoded(result: Any) -> bytes:
    """An operation's answer as JSON, by pydantic's own encoder when it is a model (several
    times faster than a dict through `json.dumps`: lists of hundreds of rows stay fast)."""
    if isinstance(result, BaseModel):
        return result.model_dump_json(by_alias=True).encode()
    return json.dumps(result, ensure_ascii=False, separators=(",", ":")).encode()


def meta_of(request: Request) -> Meta:
    return Meta(ip_address=request.client.host if request.client else None,
                user_agent=request.headers.get("user-agent"))


def _on_login(request: Request, response: Response, result: Any) -> None:
    if result.token is None:  # an OpenID Connect sign-in that asked for no session
        return
    response.set_cookie(SESSION_COOKIE, result.token, httponly=True, samesite="lax",
                        secure=request.url.scheme == "https", path="/",
                        expires=result.expires_at)


def _on_logout(request: Request, response: Response, result: Any) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")


AFTER = {"auth.login": _on_login, "auth.oidc.callback": _on_login, "auth.logout": _on_logout}
