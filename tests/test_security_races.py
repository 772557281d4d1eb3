"""Races a stranger can start against a real `launchbay serve` process (issue #16), on SQLite
and on PostgreSQL: concurrent first-admin requests on a fresh install, and bursts of password
guesses, for one address and from one client across addresses."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, func, select

from launchbay.store.models import Membership, Organization, User

from support import free_port, wait_until_up

LIMIT, PER_ADDRESS = 5, 12


@pytest.fixture
def served(tmp_path, database_url) -> Iterator[str]:
    """`launchbay serve` on a loopback port, on a fresh database."""
    port = free_port()
    env = {**os.environ, "LAUNCHBAY_DATA_DIR": str(tmp_path / "data"),
           "LAUNCHBAY_DATABASE_URL": database_url, "LAUNCHBAY_EDGE_ENABLED": "false",
           "LAUNCHBAY_SHIPPED_TEMPLATES": "false", "LAUNCHBAY_WORKERS": "1",
           "LAUNCHBAY_LOGIN_MAX_FAILURES": str(LIMIT),
           "LAUNCHBAY_LOGIN_MAX_FAILURES_PER_ADDRESS": str(PER_ADDRESS)}
    exe = os.path.join(os.path.dirname(sys.executable), "launchbay")
    proc = subprocess.Popen([exe, "serve", "--listen", f"127.0.0.1:{port}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/health", proc, within=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(20)


def at_once(calls: list[tuple[str, dict[str, Any]]], url: str,
            client_address: str = "127.0.0.1") -> list[httpx.Response]:
    """The POSTs, each from its own thread (and connection from `client_address`, one of
    loopback's), released together."""
    start = threading.Barrier(len(calls))

    def post(call: tuple[str, dict[str, Any]]) -> httpx.Response:
        path, body = call
        transport = httpx.HTTPTransport(local_address=client_address)
        with httpx.Client(base_url=url, timeout=60, transport=transport) as client:
            start.wait()
            return client.post(path, json=body)

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(post, calls))


def rows(database_url: str, model: Any) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(model)).scalar_one()
    finally:
        engine.dispose()


def test_a_fresh_install_holds_against_a_strangers_races(served, database_url):
    # 1. Twenty strangers race for the first admin: exactly one gets it.
    answers = at_once([("/api/bootstrap/auth/first-admin",
                        {"email": f"admin{n}@example.com", "password": f"password-{n:04d}"})
                       for n in range(20)], served)
    statuses = Counter(a.status_code for a in answers)
    assert statuses == {201: 1, 409: 19}, [a.text for a in answers]
    assert all(a.json()["code"] == "bootstrap_complete" for a in answers if a.status_code == 409)
    assert (rows(database_url, User), rows(database_url, Organization),
            rows(database_url, Membership)) == (1, 1, 1)
    winner = next(a.json()["email"] for a in answers if a.status_code == 201)
    password = f"password-{int(winner.removeprefix('admin').partition('@')[0]):04d}"
    login = httpx.post(f"{served}/api/auth/login", json={"email": winner, "password": password})
    assert login.status_code == 200
    assert "server" not in login.headers  # no `Server` banner on a real listener either
    # Behind a proxy on this machine: the client's address and HTTPS are what it says.
    proxied = httpx.post(f"{served}/api/auth/login", json={"email": winner, "password": password},
                         headers={"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"})
    assert "secure" in proxied.headers["set-cookie"].lower()
    sessions = httpx.get(f"{served}/api/account/sessions", headers={
        "Authorization": f"Bearer {proxied.json()['token']}"}).json()["items"]
    assert "203.0.113.7" in [s["ipAddress"] for s in sessions]

    # 2. Forty concurrent logins for that address, the right password among them (from
    # another client address, so that its own limit is not what stops them).
    guesses = [("/api/auth/login", {"email": winner, "password": f"guess-{n}"})
               for n in range(39)]
    guesses.insert(20, ("/api/auth/login", {"email": winner, "password": password}))
    answers = at_once(guesses, served, "127.0.0.2")
    statuses = Counter(a.status_code for a in answers)
    assert not [a for a in answers if a.status_code >= 500], [a.text for a in answers]
    checked = statuses[401] + statuses[200]  # each of them had its password checked
    assert checked <= LIMIT and statuses[429] >= 40 - LIMIT, statuses
    assert all(a.json()["code"] == "rate_limited" and int(a.headers["Retry-After"]) > 0
               for a in answers if a.status_code == 429)
    # The account stays locked: the right password in the burst did not reopen it.
    after = httpx.post(f"{served}/api/auth/login", json={"email": winner, "password": password})
    assert after.status_code == 429, after.text

    # 3. One client guessing across many addresses is slowed down too.
    answers = at_once([("/api/auth/login", {"email": f"user{n}@example.com",
                                            "password": "guess"}) for n in range(30)],
                      served, "127.0.0.3")
    statuses = Counter(a.status_code for a in answers)
    assert statuses == {401: PER_ADDRESS, 429: 30 - PER_ADDRESS}, statuses
