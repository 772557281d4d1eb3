"""A real OpenID Connect provider for the tests (npm `oidc-provider` on loopback, installed by
`make test`), and a browser's walk through its sign-in."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx

from support import spawn, wait_until_up

SERVER = Path(__file__).parent / "oidc_provider" / "server.mjs"
CLIENT_ID, CLIENT_SECRET = "launchbay", "launchbay-test-secret"
# username -> groups, as the provider tells them
ACCOUNTS = {"alice": ["team-a"], "bob": ["team-a"], "carol": [], "dave": ["team-b"]}


def oidc_settings(port: int) -> dict[str, Any]:
    return {"oidc_issuer": f"http://127.0.0.1:{port}", "oidc_client_id": CLIENT_ID,
            "oidc_client_secret": CLIENT_SECRET}


@contextmanager
def running_provider(port: int, redirect_uris: list[str]) -> Iterator[str]:
    """The provider at http://127.0.0.1:{port}, accepting `redirect_uris`."""
    issuer = f"http://127.0.0.1:{port}"
    proc = spawn(["node", str(SERVER)], env={
        "PORT": str(port), "CLIENT_ID": CLIENT_ID, "CLIENT_SECRET": CLIENT_SECRET,
        "REDIRECT_URIS": json.dumps(redirect_uris), "ACCOUNTS": json.dumps(ACCOUNTS)})
    try:
        wait_until_up(f"{issuer}/.well-known/openid-configuration", proc, within=20)
        yield issuer
    finally:
        proc.terminate()
        proc.wait(10)


def sign_in(face: Any, username: str, login_path: str, return_url: str = "/app") -> str:
    """Signs `username` in as a browser would (login, the provider's form, the callback) and
    returns where the face finally redirected: `return_url#token=<id_token>`."""
    started = face.get(login_path, params={"return_url": return_url}, follow_redirects=False)
    assert started.status_code == 302, started.text
    location = started.headers["location"]
    own = str(face.base_url).rstrip("/")
    with httpx.Client() as browser:
        for _ in range(10):
            if location.startswith(own):
                break
            answer = browser.get(location)
            if answer.status_code == 200:  # the provider's sign-in form
                action = re.search(r'action="([^"]+)"', answer.text)
                prompt = re.search(r'name="prompt" value="(\w+)"', answer.text)
                assert action and prompt, answer.text[:500]
                answer = browser.post(action.group(1), data={
                    "prompt": prompt.group(1), "login": username, "password": "any"})
            assert answer.is_redirect, (answer.status_code, answer.text[:500])
            location = urljoin(str(answer.url), answer.headers["location"])
    back = face.get(location, follow_redirects=False)
    assert back.status_code == 302, back.text
    return back.headers["location"]


def token_of(location: str) -> str:
    return location.split("#token=", 1)[1]
