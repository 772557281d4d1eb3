"""What protects a signed-in browser: security headers on every response, and the refusal of
cross-site requests that would change state with the session cookie.

A browser attaches the session cookie to requests other sites make it send (a form, an image,
a top-level navigation; `SameSite=Lax` does not help against sites on the same registrable
domain, such as tenants' apps). So a change authenticated by the cookie alone must come from
launchbay's own pages: never on a safe method (GET/HEAD), and with a same-origin `Origin` (or
`Referer`); a body that is not JSON also needs one present. Bearer credentials are not sent by
browsers on their own and need none of this.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from launchbay.operations.errors import Forbidden

# The console's own pages load only their own scripts and styles (no inline code).
CONSOLE_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                  "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
                  "frame-ancestors 'none'")
HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


class SecurityHeaders:
    """ASGI middleware: the headers above, and `CONSOLE_POLICY` unless the response set its own
    Content-Security-Policy."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in HEADERS if k not in present]
                if b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", CONSOLE_POLICY.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def origin_of(request: Request) -> str | None:
    """The `host[:port]` a browser says the request comes from (Origin, else Referer), or None
    when it says nothing; `"null"` for an opaque origin."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if origin is None:
        return None
    return urlsplit(origin).netloc or "null"


def refuse_cross_site(request: Request) -> None:
    """Refuses (403) a state change authenticated by the session cookie that launchbay's own
    pages did not send."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        raise Forbidden("a change cannot be made by a GET with the session cookie; send it "
                        "with an Authorization header", code="csrf_refused")
    origin = origin_of(request)
    if origin is not None and origin != request.headers.get("host"):
        raise Forbidden("cross-site request refused", code="csrf_refused")
    json_body = request.headers.get("content-type", "").split(";")[0].strip() == \
        "application/json"
    if origin is None and not json_body:
        raise Forbidden("a change with the session cookie must be sent as application/json "
                        "from launchbay's own pages", code="csrf_refused")
