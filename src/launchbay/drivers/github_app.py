"""GitHub's REST API as a GitHub App: the app's own token (a JWT signed with its private
key, RS256), an installation's access token (kept until a few minutes before it expires), the
repositories the installation reaches, and commit statuses. `api` is GitHub's
(`https://api.github.com`) or a GitHub Enterprise Server's (`https://HOST/api/v3`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

ACCEPT = "application/vnd.github+json"
API_VERSION = "2022-11-28"


class GitHubError(Exception):
    """GitHub refused or could not be reached; `status` is its HTTP status (0: no answer)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def check_private_key(pem: str) -> None:
    """Refuses (ValueError) what is not an unencrypted RSA private key in PEM, as GitHub
    gives an app's."""
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, RSAPrivateKey):
        raise ValueError("a GitHub App's private key is an RSA key")


# Installation tokens by (api, app, installation): one per connection, replaced when it nears
# its expiry.
_tokens: dict[tuple[str, str, str], tuple[str, float]] = {}
_tokens_lock = threading.Lock()


@dataclass
class GitHubApp:
    api: str
    app_id: str
    installation_id: str
    private_key: str = field(repr=False)
    timeout: float = 10

    def _request(self, method: str, path: str, auth: str, **kw: Any) -> Any:
        try:
            with httpx.Client(base_url=self.api.rstrip("/"), timeout=self.timeout,
                              trust_env=False, follow_redirects=False) as client:
                answer = client.request(method, path, headers={
                    "Accept": ACCEPT, "X-GitHub-Api-Version": API_VERSION,
                    "Authorization": auth, "User-Agent": "launchbay"}, **kw)
        except httpx.HTTPError as exc:
            raise GitHubError(0, f"GitHub's API does not answer: {type(exc).__name__}") from None
        if answer.status_code >= 400:
            try:
                said = str(answer.json().get("message", ""))[:300]
            except ValueError:
                said = ""
            raise GitHubError(answer.status_code,
                              f"GitHub answered {answer.status_code}{': ' + said if said else ''}")
        return answer.json() if answer.content else None

    def _app_token(self) -> str:
        now = int(time.time())
        return jwt.encode({"iat": now - 60, "exp": now + 540, "iss": self.app_id},
                          self.private_key, algorithm="RS256")

    def installation(self) -> dict[str, Any]:
        """The installation: its account (`login`, `type`), `repository_selection`,
        `suspended_at`."""
        found = self._request("GET", f"/app/installations/{self.installation_id}",
                              f"Bearer {self._app_token()}")
        return found if isinstance(found, dict) else {}

    def token(self) -> str:
        """An access token of the installation, made anew when the kept one has less than
        five minutes left."""
        key = (self.api, self.app_id, self.installation_id)
        with _tokens_lock:
            kept = _tokens.get(key)
        if kept and kept[1] - time.time() > 300:
            return kept[0]
        made = self._request("POST", f"/app/installations/{self.installation_id}/access_tokens",
                             f"Bearer {self._app_token()}")
        if not isinstance(made, dict) or not made.get("token"):
            raise GitHubError(502, "GitHub gave no installation token")
        expires = datetime.fromisoformat(str(made.get("expires_at", "")).replace(
            "Z", "+00:00")).timestamp() if made.get("expires_at") else time.time() + 3000
        with _tokens_lock:
            _tokens[key] = (str(made["token"]), expires)
        return str(made["token"])

    def repositories(self, search: str | None = None, most: int = 500) -> list[dict[str, Any]]:
        """The repositories the installation reaches (whose name holds `search`), at most
        `most`."""
        found: list[dict[str, Any]] = []
        for page in range(1, most // 100 + 2):
            batch = self._request("GET", "/installation/repositories",
                                  f"token {self.token()}",
                                  params={"per_page": 100, "page": page})
            repos = batch.get("repositories", []) if isinstance(batch, dict) else []
            found += [r for r in repos if isinstance(r, dict) and (
                not search or search.lower() in str(r.get("full_name", "")).lower())]
            if len(repos) < 100 or len(found) >= most:
                break
        return found[:most]

    def pull_request_state(self, full_name: str, number: int) -> str:
        """`open` or `closed` (merged or not); `gone` when GitHub no longer has it."""
        try:
            found = self._request("GET", f"/repos/{full_name}/pulls/{number}",
                                  f"token {self.token()}")
        except GitHubError as exc:
            if exc.status in (404, 410):
                return "gone"
            raise
        return str(found.get("state", "")) if isinstance(found, dict) else ""

    def checks(self, full_name: str, sha: str) -> dict[str, str]:
        """Each check of the commit by name (its commit statuses' contexts and its check
        runs'): `passed`, `failed` or `pending`."""
        found: dict[str, str] = {}
        combined = self._request("GET", f"/repos/{full_name}/commits/{sha}/status",
                                 f"token {self.token()}")
        for s in combined.get("statuses", []) if isinstance(combined, dict) else []:
            found[str(s.get("context"))] = {"success": "passed", "pending": "pending"}.get(
                str(s.get("state")), "failed")
        runs = self._request("GET", f"/repos/{full_name}/commits/{sha}/check-runs",
                             f"token {self.token()}", params={"per_page": 100})
        for r in runs.get("check_runs", []) if isinstance(runs, dict) else []:
            found[str(r.get("name"))] = "pending" if r.get("status") != "completed" else \
                "passed" if r.get("conclusion") in ("success", "neutral", "skipped") \
                else "failed"
        return found

    def status(self, full_name: str, sha: str, state: str, *, context: str,
               description: str, target_url: str | None) -> None:
        """Sets the commit's status of `context` (pending, success, failure or error)."""
        body = {"state": state, "context": context, "description": description[:140]}
        if target_url:
            body["target_url"] = target_url
        self._request("POST", f"/repos/{full_name}/statuses/{sha}", f"token {self.token()}",
                      json=body)
