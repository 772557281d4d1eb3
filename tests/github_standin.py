"""A stand-in for GitHub's REST API on loopback, for the calls a GitHub App makes: the
installation (with the app's JWT, checked against its public key), installation access
tokens, the installation's repositories, its pull requests' state (`pulls`), commits' checks
(`checks`) and commit statuses (with such a token), answered in GitHub's shapes. It keeps the
statuses it was sent; `failing` makes it answer 500."""

from __future__ import annotations

import json
import re
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt

REPOSITORIES = [
    {"id": 101, "name": "shop", "full_name": "acme/shop", "owner": {"login": "acme"},
     "description": "the shop", "private": True, "default_branch": "main",
     "html_url": "https://github.com/acme/shop", "clone_url": "https://github.com/acme/shop.git",
     "updated_at": "2026-11-30T10:00:00Z"},
    {"id": 102, "name": "blog", "full_name": "acme/blog", "owner": {"login": "acme"},
     "description": None, "private": False, "default_branch": "main",
     "html_url": "https://github.com/acme/blog", "clone_url": "https://github.com/acme/blog.git",
     "updated_at": "2026-11-29T10:00:00Z"},
]


class GitHub:
    def __init__(self, app_id: str, installation_id: str, public_key: Any):
        self.app_id, self.installation_id, self.public_key = app_id, installation_id, public_key
        self.tokens: set[str] = set()
        self.statuses: list[dict[str, Any]] = []
        self.pulls: dict[tuple[str, int], str] = {}  # (repository, number): open | closed
        # (repository, sha): {name: ("status", state) or ("check", conclusion|in_progress)}
        self.checks: dict[tuple[str, str], dict[str, tuple[str, str]]] = {}
        self.failing = False
        github = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def answer(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def app(self) -> bool:
                """The request carries the app's JWT, signed with its key."""
                auth = self.headers.get("Authorization", "")
                try:
                    claims = jwt.decode(auth.removeprefix("Bearer "), github.public_key,
                                        algorithms=["RS256"])
                except jwt.PyJWTError:
                    return False
                return str(claims.get("iss")) == github.app_id

            def installation_token(self) -> bool:
                return self.headers.get("Authorization", "").removeprefix("token ") in \
                    github.tokens

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                if github.failing:
                    return self.answer(500, {"message": "Server Error"})
                if path == f"/app/installations/{github.installation_id}":
                    if not self.app():
                        return self.answer(401, {"message": "A JSON web token could not be "
                                                            "decoded"})
                    return self.answer(200, {"id": int(github.installation_id), "account": {
                        "login": "acme", "type": "Organization"},
                        "repository_selection": "selected", "suspended_at": None})
                if found := re.fullmatch(r"/repos/([^/]+/[^/]+)/commits/([0-9a-f]{40})/"
                                         r"(status|check-runs)", path):
                    if not self.installation_token():
                        return self.answer(401, {"message": "Bad credentials"})
                    checks = github.checks.get((found[1], found[2]), {})
                    if found[3] == "status":
                        return self.answer(200, {"state": "pending", "statuses": [
                            {"context": name, "state": state}
                            for name, (kind, state) in checks.items() if kind == "status"]})
                    return self.answer(200, {"total_count": len(checks), "check_runs": [
                        {"name": name, "status": "completed" if state != "in_progress"
                         else "in_progress",
                         "conclusion": None if state == "in_progress" else state}
                        for name, (kind, state) in checks.items() if kind == "check"]})
                if found := re.fullmatch(r"/repos/([^/]+/[^/]+)/pulls/([0-9]+)", path):
                    if not self.installation_token():
                        return self.answer(401, {"message": "Bad credentials"})
                    state = github.pulls.get((found[1], int(found[2])))
                    return self.answer(200, {"number": int(found[2]), "state": state}) \
                        if state else self.answer(404, {"message": "Not Found"})
                if path == "/installation/repositories":
                    if not self.installation_token():
                        return self.answer(401, {"message": "Bad credentials"})
                    return self.answer(200, {"total_count": len(REPOSITORIES),
                                             "repositories": REPOSITORIES})
                return self.answer(404, {"message": "Not Found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if github.failing:
                    return self.answer(500, {"message": "Server Error"})
                if self.path == f"/app/installations/{github.installation_id}/access_tokens":
                    if not self.app():
                        return self.answer(401, {"message": "A JSON web token could not be "
                                                            "decoded"})
                    token = "ghs_" + secrets.token_hex(16)
                    github.tokens.add(token)
                    return self.answer(201, {"token": token,
                                             "expires_at": "2099-01-01T00:00:00Z"})
                if found := re.fullmatch(r"/repos/([^/]+/[^/]+)/statuses/([0-9a-f]{40})",
                                         self.path):
                    if not self.installation_token():
                        return self.answer(401, {"message": "Bad credentials"})
                    github.statuses.append({"repository": found[1], "sha": found[2], **body})
                    return self.answer(201, {"id": len(github.statuses), **body})
                return self.answer(404, {"message": "Not Found"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
