"""Login, throttling of failed logins, sessions, profile and password."""

from __future__ import annotations

from support import ADMIN_EMAIL, ADMIN_PASSWORD, Api, login, snapshot


def test_failed_logins_lock_the_address_out(client, admin, cp):
    # settings: 3 failures allowed, then 30 s (doubling) of lock-out
    for _ in range(3):
        bad = client.post("/api/auth/login", json={"email": ADMIN_EMAIL, "password": "wrong"})
        assert bad.status_code == 401 and bad.json()["code"] == "invalid_credentials"
    locked = client.post("/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert locked.status_code == 429 and locked.json()["code"] == "rate_limited"
    assert 0 < int(locked.headers["Retry-After"]) <= 31
    # The same for an address that does not exist: no hint which addresses do.
    for _ in range(3):
        client.post("/api/auth/login", json={"email": "ghost@example.com", "password": "x"})
    assert client.post("/api/auth/login",
                       json={"email": "ghost@example.com", "password": "x"}).status_code == 429
    # No session was created by any of it.
    assert len(admin.get("/account/sessions")["items"]) == 1


def test_success_clears_the_failure_count(client, admin):
    for _ in range(2):
        client.post("/api/auth/login", json={"email": ADMIN_EMAIL, "password": "wrong"})
    login(client, ADMIN_EMAIL.upper(), ADMIN_PASSWORD)  # e-mail is case-insensitive
    for _ in range(2):
        client.post("/api/auth/login", json={"email": ADMIN_EMAIL, "password": "wrong"})
    assert login(client, ADMIN_EMAIL, ADMIN_PASSWORD).token


def test_sessions_list_and_revoke(client, admin):
    other = login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    sessions = admin.get("/account/sessions")["items"]
    assert len(sessions) == 2
    assert [s["current"] for s in sessions].count(True) == 1
    other_id = next(s["sessionId"] for s in sessions if not s["current"])
    revoked = admin.post(f"/account/sessions/{other_id}/revoke")
    assert revoked["sessionId"] == other_id and revoked["revokedAt"]
    assert other.request("GET", "/account/profile").status_code == 401
    assert len(admin.get("/account/sessions")["items"]) == 1


def test_profile_and_password_change(client, admin):
    profile = admin.get("/account/profile")
    assert profile["email"] == ADMIN_EMAIL and profile["userId"] == admin.user_id
    updated = admin.post("/account/profile", {"displayName": "Ada L."})
    assert updated["displayName"] == "Ada L."
    assert admin.request("POST", "/account/profile", {"avatarUrl": "javascript:alert(1)"}
                         ).status_code == 400
    other = login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    wrong = admin.request("POST", "/account/password",
                          {"currentPassword": "nope", "newPassword": "brand-new-pass"})
    assert wrong.status_code == 400
    admin.post("/account/password",
               {"currentPassword": ADMIN_PASSWORD, "newPassword": "brand-new-pass"})
    assert other.request("GET", "/account/profile").status_code == 401  # other sessions end
    assert admin.get("/account/profile")  # this one goes on
    assert client.post("/api/auth/login", json={
        "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}).status_code == 401
    assert login(client, ADMIN_EMAIL, "brand-new-pass").token


def test_passwords_and_tokens_are_stored_hashed(client, admin, cp):
    token = admin.post("/account/tokens", {"displayName": "t", "scopes": ["*"]})["token"]
    rows = snapshot(cp)
    flat = repr(rows)
    assert ADMIN_PASSWORD not in flat
    assert admin.token not in flat and token not in flat
    assert any("argon2" in repr(r) for r in rows["users"])


def test_capabilities_answer_from_the_catalog(client, admin):
    keys = ["projects.create", "organizations.delete", "no.such.thing"]
    answers = {c["operationKey"]: c for c in admin.post(
        "/capabilities/query", {"queries": [{"operationKey": k} for k in keys]})["capabilities"]}
    assert answers["projects.create"]["allowed"] is True
    assert answers["projects.create"]["mode"] == "unrestricted"
    assert answers["organizations.delete"]["allowed"] is True  # the admin owns the organization
    assert answers["no.such.thing"]["allowed"] is False
    everything = admin.post("/capabilities/query")["capabilities"]
    assert len(everything) > 40
    anonymous = Api(client).post("/capabilities/query",
                                 {"queries": [{"operationKey": "projects.list"}]})
    assert anonymous["capabilities"][0]["reason"] == "authentication required"
    reader = Api(client, admin.post("/account/tokens", {
        "displayName": "r", "scopes": ["projects:read"]})["token"])
    mine = {c["operationKey"]: c for c in reader.post("/capabilities/query")["capabilities"]}
    assert mine["projects.list"]["allowed"] is True
    assert mine["projects.create"]["allowed"] is False
    assert "projects:write" in mine["projects.create"]["reason"]


def test_intranet_addresses_are_addresses(client, cp):
    """`.local` (Active Directory), `.internal`, `.lan`: what intranet users have."""
    created = client.post("/api/bootstrap/auth/first-admin",
                          json={"email": "Admin@Corp.Local", "password": "intranet-pass"})
    assert created.status_code == 201, created.text
    admin = login(client, "admin@corp.local", "intranet-pass")
    org = created.json()["organizationId"]
    invited = admin.post(f"/organizations/{org}/invitations",
                         {"email": "dev@build.internal", "role": "developer"})
    assert invited["email"] == "dev@build.internal"
    for bad in ("dev@", "dev@-corp.lan", "d ev@corp.lan", "dev@corp..lan"):
        r = admin.request("POST", f"/organizations/{org}/invitations",
                          {"email": bad, "role": "developer"})
        assert r.status_code == 400 and r.json()["details"][0]["field"] == "email", bad
