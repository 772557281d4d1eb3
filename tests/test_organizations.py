"""Organizations: creation and context switch, members and roles, invitations, ownership."""

from __future__ import annotations

from support import Api, add_member, login


def test_create_and_switch_organization(admin):
    beta = admin.post("/organizations", {"name": "Beta Team"})
    assert beta["role"] == "owner" and beta["slug"] == "beta-team"
    ctx = admin.get("/organizations/current-context")
    assert ctx["currentOrganization"]["organizationId"] == admin.org_id
    assert {o["name"] for o in ctx["organizations"]} == {"Default", "Beta Team"}
    assert ctx["permissions"]["canTransferOwnership"] is True
    switched = admin.post("/organizations/current-context/switch",
                          {"organizationId": beta["organizationId"]})
    assert switched["currentOrganization"]["name"] == "Beta Team"
    admin.post("/projects", {"name": "beta-only"})
    assert [p["name"] for p in admin.get("/projects")["items"]] == ["beta-only"]
    admin.post("/organizations/current-context/switch", {"organizationId": admin.org_id})
    assert admin.get("/projects")["items"] == []


def test_invitation_flow_and_member_management(client, admin):
    org = admin.org_id
    invitation = admin.post(f"/organizations/{org}/invitations",
                            {"email": "Dev@Example.com", "role": "developer"})
    assert invitation["status"] == "pending" and invitation["email"] == "dev@example.com"
    assert invitation["inviter"]["userId"] == admin.user_id
    listed = admin.get(f"/organizations/{org}/invitations")["items"]
    assert listed[0]["acceptToken"] is None  # the secret is shown once only
    missing_pw = client.post("/api/invitations/accept", json={"token": invitation["acceptToken"]})
    assert missing_pw.status_code == 400
    accepted = client.post("/api/invitations/accept", json={
        "token": invitation["acceptToken"], "password": "dev-password-1", "displayName": "Dee"})
    assert accepted.status_code == 200 and accepted.json()["role"] == "developer"
    reused = client.post("/api/invitations/accept", json={
        "token": invitation["acceptToken"], "password": "dev-password-1"})
    assert reused.status_code == 404
    assert admin.get(f"/organizations/{org}/invitations",
                     params={"status": "accepted"})["items"][0]["invitationId"] == \
        invitation["invitationId"]

    dev = login(client, "dev@example.com", "dev-password-1")
    members = {m["email"]: m for m in dev.get(f"/organizations/{org}/members")["items"]}
    assert members["dev@example.com"]["role"] == "developer"
    assert members["admin@example.com"]["role"] == "owner"
    member_id = members["dev@example.com"]["memberId"]
    owner_member = members["admin@example.com"]["memberId"]

    changed = admin.post(f"/organizations/{org}/members/{member_id}/role", {"role": "admin"})
    assert changed["role"] == "admin"
    assert dev.get("/organizations/current-context")["permissions"]["canInviteMembers"] is True
    # Nobody can demote the owner or remove them; only the owner hands ownership over.
    assert dev.request("POST", f"/organizations/{org}/members/{owner_member}/role",
                       {"role": "viewer"}).status_code == 409
    assert dev.request("DELETE", f"/organizations/{org}/members/{owner_member}", {}
                       ).status_code == 409
    assert dev.request("POST", f"/organizations/{org}/owner-transfer",
                       {"fromMemberId": owner_member, "toMemberId": member_id}
                       ).status_code == 403
    transfer = admin.post(f"/organizations/{org}/owner-transfer",
                          {"fromMemberId": owner_member, "toMemberId": member_id})
    assert transfer["toMember"]["role"] == "owner" and transfer["fromMember"]["role"] == "admin"

    removed = dev.ok("DELETE", f"/organizations/{org}/members/{owner_member}", {})
    assert removed["memberId"] == owner_member
    assert admin.request("GET", "/projects").status_code == 404  # no longer a member


def test_existing_user_accepts_while_logged_in(client, admin):
    beta = admin.post("/organizations", {"name": "Beta"})["organizationId"]
    bob = add_member(admin, beta, "bob@example.com", "viewer")
    invitation = admin.post(f"/organizations/{admin.org_id}/invitations",
                            {"email": "bob@example.com", "role": "developer"})
    wrong = Api(client, admin.token).request("POST", "/invitations/accept",
                                             {"token": invitation["acceptToken"]})
    assert wrong.status_code == 403 and wrong.json()["code"] == "wrong_account"
    joined = bob.post("/invitations/accept", {"token": invitation["acceptToken"]})
    assert joined["organizationId"] == admin.org_id
    assert len(bob.get("/organizations/current-context")["organizations"]) == 2


def test_delete_organization_needs_confirmation_and_emptiness(admin):
    beta = admin.post("/organizations", {"name": "Temp"})["organizationId"]
    admin.post("/organizations/current-context/switch", {"organizationId": beta})
    project = admin.post("/projects", {"name": "p"})["id"]
    assert admin.request("DELETE", f"/organizations/{beta}",
                         {"confirmation": {"organizationId": "org_x"}}).status_code == 400
    busy = admin.request("DELETE", f"/organizations/{beta}",
                         {"confirmation": {"organizationId": beta}})
    assert busy.status_code == 409 and busy.json()["code"] == "organization_not_empty"
    admin.post(f"/projects/{project}/archive")
    admin.ok("DELETE", f"/projects/{project}", {"confirmation": {"projectId": project}})
    deleted = admin.ok("DELETE", f"/organizations/{beta}",
                       {"confirmation": {"organizationId": beta}})
    assert deleted["organizationId"] == beta
    ctx = admin.get("/organizations/current-context")
    assert ctx["currentOrganization"] is None
    assert [o["name"] for o in ctx["organizations"]] == ["Default"]


def test_organization_profile_update(admin):
    profile = admin.post(f"/organizations/{admin.org_id}/profile", {"name": "Acme"})
    assert profile["name"] == "Acme" and profile["role"] == "owner"
    assert admin.get(f"/organizations/{admin.org_id}/profile")["name"] == "Acme"
