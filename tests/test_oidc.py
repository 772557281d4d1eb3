"""Sign-in with OpenID Connect through the Dploy face, against a real provider on loopback
(npm `oidc-provider`): the authorization-code flow with PKCE and state, provisioning into the
organization, id_tokens as Bearer credentials, and what is refused."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from oidc_support import oidc_settings, running_provider, sign_in, token_of
from sqlalchemy import select

from launchbay.settings import Settings
from launchbay.store.models import AuditEvent, Membership, User

from support import add_member, free_port, snapshot

LOGIN = "/compat/dploy/auth/login"
CALLBACK = "http://testserver/compat/dploy/auth/callback"
CONSOLE_CALLBACK = "http://testserver/login/oidc/callback"


@pytest.fixture(scope="module")
def oidc_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def provider(oidc_port: int) -> Any:
    with running_provider(oidc_port, [CALLBACK, CONSOLE_CALLBACK]) as issuer:
        yield issuer


@pytest.fixture
def settings(tmp_path: Any, database_url: str, provider: str, oidc_port: int) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database_url, edge_enabled=False,
                    **oidc_settings(oidc_port))


def envs(client: Any, token: str) -> httpx.Response:
    return client.get("/compat/dploy/api/environments",
                      headers={"Authorization": f"Bearer {token}"})


def test_first_sign_in_provisions_a_developer_and_the_id_token_is_a_credential(admin, client,
                                                                               cp):
    location = sign_in(client, "alice", LOGIN, return_url="/app")
    assert location.startswith("/app#token=")
    token = token_of(location)
    r = envs(client, token)
    assert r.status_code == 200
    assert r.json() == {"environments": [], "count": 0, "limit": 5}
    with cp.sessions() as db:
        alice = db.scalar(select(User).where(User.external_id.like("%|alice")))
        assert alice is not None and alice.password_hash is None
        assert alice.claims["username"] == "alice" and alice.claims["groups"] == ["team-a"]
        assert alice.email == "alice@example.com"
        role = db.scalar(select(Membership.role).where(Membership.user_id == alice.id,
                                                       Membership.organization_id == admin.org_id))
        assert role == "developer"
        events = db.scalars(select(AuditEvent.event_type).where(
            AuditEvent.aggregate_id == alice.id)).all()
        assert "user.signed-in" in events
    # The native API accepts the id_token too, as the same user.
    me = client.get("/api/account/profile", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.json()["email"] == "alice@example.com"
    # Signing in again is the same user; a request with an unchanged token changes nothing.
    again = token_of(sign_in(client, "alice", LOGIN))
    before = snapshot(cp)
    assert envs(client, again).status_code == 200
    assert snapshot(cp) == before
    with cp.sessions() as db:
        assert len(db.scalars(select(User).where(User.external_id.like("%|alice"))).all()) == 1


def test_a_verified_email_signs_in_to_the_existing_account(admin, client, cp):
    bob = add_member(admin, admin.org_id, "bob@example.com", "admin")
    token = token_of(sign_in(client, "bob", LOGIN))
    me = client.get("/api/account/profile", headers={"Authorization": f"Bearer {token}"}).json()
    assert me["userId"] == bob.user_id


def test_what_is_refused(admin, client, cp):
    # A return_url elsewhere would hand the token to someone else.
    r = client.get(LOGIN, params={"return_url": "https://evil.example/steal"},
                   follow_redirects=False)
    assert r.status_code == 400
    assert r.json() == {"error": "return_url is not on this site or an allowed origin"}
    # A callback whose state is not the one the sign-in started with.
    started = client.get(LOGIN, follow_redirects=False)
    assert started.status_code == 302 and "code_challenge_method=S256" in \
        started.headers["location"]
    before = snapshot(cp)
    r = client.get("/compat/dploy/auth/callback", params={"code": "x", "state": "forged"})
    assert r.status_code == 400 and r.json() == {"error": "invalid state parameter"}
    client.cookies.clear()
    r = client.get("/compat/dploy/auth/callback", params={"code": "x", "state": "forged"})
    assert r.status_code == 400
    assert r.json() == {"error": "the sign-in expired or was not started here; start again"}
    r = client.get("/compat/dploy/auth/callback", params={"error": "access_denied"})
    assert r.status_code == 401 and r.json() == {"error": "access_denied"}
    # Tokens that are not the provider's, or altered, are not credentials.
    token = token_of(sign_in(client, "carol", LOGIN))
    head, body, signature = token.split(".")
    for bad in (f"{head}.{body}.{signature[:-4]}AAAA", "a.b.c", "not-a-token"):
        r = envs(client, bad)
        assert r.status_code == 401 and r.json() == {"error": "unauthorized"}
    assert envs(client, token).status_code == 200
    assert client.get("/compat/dploy/auth/logout").json() == {"status": "logged out"}
    with cp.sessions() as db:  # only carol's sign-in changed the store
        assert db.scalar(select(User.id).where(User.external_id.like("%|carol")))
    assert {t: rows for t, rows in before.items() if t not in ("users", "memberships",
                                                               "audit_events")} == \
        {t: rows for t, rows in snapshot(cp).items() if t not in ("users", "memberships",
                                                                  "audit_events")}


def test_sign_in_is_404_when_no_provider_is_configured(tmp_path, database_url):
    from fastapi.testclient import TestClient

    from launchbay.control_plane import ControlPlane
    from launchbay.http.app import create_app

    cp = ControlPlane(Settings(data_dir=tmp_path / "d", database_url=database_url,
                               edge_enabled=False))
    try:
        r = TestClient(create_app(control_plane=cp)).get(LOGIN, follow_redirects=False)
        assert r.status_code == 404
        assert r.json() == {"error": "OpenID Connect sign-in is not configured"}
    finally:
        cp.close()


def test_the_console_signs_in_with_the_provider(admin, client):
    page = client.get("/login")
    assert 'href="/login/oidc"' in page.text  # offered when a provider is configured
    assert sign_in(client, "alice", "/login/oidc") == "/projects"
    projects = client.get("/projects")
    assert projects.status_code == 200 and "alice@example.com" in projects.text
    refused = client.get("/login/oidc/callback", params={"code": "x", "state": "forged"})
    assert refused.status_code == 400 and 'role="alert"' in refused.text
