"""Previews of pull requests, as the store sees them (no engine runs here: the dispatch a
webhook enqueues is run by hand, as the engine would run it): policies, the preview made and
updated by pull request events, what it copies and what it does not, and the one cleanup that
closing, expiry and deleting all come to. tests/engine/test_preview_deployments.py deploys them."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from launchbay import webhooks
from launchbay.operations import Actor
from launchbay.store.models import (
    Environment,
    OperatorWork,
    PreviewEnvironment,
    Resource,
    utcnow,
)

from support import Api, make_app

REPO = "https://github.com/acme/shop.git"


def pull_request(action: str, number: int = 7, sha: str = "e" * 40,
                 head: str = "acme/shop") -> bytes:
    return json.dumps({"action": action, "number": number, "pull_request": {
        "number": number, "head": {"ref": "feature/x", "sha": sha, "repo": {
            "clone_url": f"https://github.com/{head}.git"}},
        "base": {"ref": "main", "repo": {"clone_url": REPO}}},
        "repository": {"clone_url": REPO}}).encode()


class Hook:
    """The resource's auto-deploy policy, and the pull request events its webhook gets, each
    dispatched as the engine does."""

    def __init__(self, admin: Api, cp: Any, resource: str, secret: str | None = None):
        """`secret`: of the resource's policy already enabled (else it is enabled here)."""
        self.admin, self.cp, self.resource = admin, cp, resource
        self.secret = secret or admin.post(f"/resources/{resource}/auto-deploy", {
            "mode": "enable", "policy": {"refs": ["main"]}})["webhookSecret"]
        self.n = 0

    def send(self, body: bytes) -> dict[str, Any]:
        self.n += 1
        answer = self.admin.client.post("/api/integrations/github/source-events", content=body,
                                        headers={"X-GitHub-Event": "pull_request",
                                                 "X-GitHub-Delivery": f"pr-{self.n}",
                                                 "X-Hub-Signature-256": webhooks.sign(
                                                     body, self.secret)})
        assert answer.status_code in (200, 202), answer.text
        (event,) = answer.json()["sourceEventIds"]
        actor = Actor(user_id=self.admin.user_id, organization_id=self.admin.org_id)
        self.cp.ops.run("source-events.dispatch", actor, {"sourceEventId": event,
                                                          "resourceId": self.resource})
        return self.admin.get(f"/source-events/{event}")


def _app(admin: Api) -> tuple[dict[str, str], str]:
    ids = make_app(admin, "lbtest/hello:v1")
    resource = admin.post("/resources", {
        "projectId": ids["project"], "environmentId": ids["env"], "name": "shop",
        "source": {"kind": "git", "locator": REPO, "gitRef": "main"},
        "networkProfile": {"internalPort": 8080}})["id"]
    admin.post(f"/environments/{ids['env']}/variables", {"key": "MODE", "value": "prod"})
    admin.post(f"/environments/{ids['env']}/variables", {
        "key": "DB_PASSWORD", "value": "hunter2", "kind": "secret"})
    admin.post(f"/resources/{resource}/variables", {"key": "API_KEY", "value": "k",
                                                     "kind": "secret"})
    admin.post("/domain-bindings", {"projectId": ids["project"], "environmentId": ids["env"],
                                    "resourceId": resource, "domainName": "shop.example.com"})
    return ids, resource


def test_a_pull_request_gets_a_preview_updated_with_it_and_cleaned_when_closed(admin, cp):
    ids, resource = _app(admin)
    scope = {"kind": "resource", "projectId": ids["project"], "resourceId": resource}
    shown = admin.post("/preview-policies/show", {"scope": scope})["policy"]
    assert shown["source"] == "default" and shown["settings"]["forkPreviews"] == "disabled" \
        and shown["settings"]["secretBackedPreviews"] is False
    hook = Hook(admin, cp, resource)

    opened = hook.send(pull_request("opened"))
    assert opened["status"] == "dispatched", opened
    assert opened["pullRequest"] == {"number": 7, "action": "opened", "baseRef": "main",
                                     "headRepository": "github.com/acme/shop", "fork": False}
    (preview,) = admin.get("/preview-environments", params={"resourceId": resource})["items"]
    assert preview["status"] == "active" and preview["source"]["pullRequestNumber"] == 7
    assert preview["source"]["repositoryFullName"] == "acme/shop"
    assert preview["source"]["headSha"] == "e" * 40
    (deployment,) = opened["createdDeploymentIds"]
    assert preview["latestDeploymentId"] == deployment
    with cp.sessions() as db:
        env = db.get(Environment, preview["environmentId"])
        copy = db.get(Resource, preview["previewResourceId"])
        assert env.name == "pr-7" and env.kind == "preview" and env.parent_environment_id == \
            ids["env"]
        assert copy.source["gitRef"] == "feature/x" and copy.name == "shop"
    keys = {v["key"] for v in admin.get(f"/environments/{env.id}")["maskedVariables"]}
    assert keys == {"MODE"}  # the base's plain variables, none of its secrets
    assert admin.get(f"/resources/{copy.id}/secrets")["items"] == []
    assert admin.get("/domain-bindings", params={"resourceId": copy.id})["items"] == []
    made = admin.get(f"/deployments/{deployment}")["deployment"]
    assert made["triggerKind"] == "preview" and made["resourceId"] == copy.id
    expires = preview["expiresAt"]

    # The same head again: nothing new; a new head: the preview deploys it.
    assert hook.send(pull_request("synchronize"))["ignoredReasons"] == ["preview-up-to-date"]
    moved = hook.send(pull_request("synchronize", sha="f" * 40))
    assert moved["status"] == "dispatched" and len(moved["createdDeploymentIds"]) == 1
    again = admin.get(f"/preview-environments/{preview['previewEnvironmentId']}")
    again = again["previewEnvironment"]
    assert again["environmentId"] == env.id and again["source"]["headSha"] == "f" * 40
    assert again["expiresAt"] >= expires

    # Closed: the copy and the environment go (the engine removes their containers), the
    # preview stays as cleaned; asking again finds it clean.
    closed = hook.send(pull_request("closed", sha="f" * 40))
    assert closed["status"] == "dispatched" and closed["policyResults"][0]["reason"] == \
        "preview-cleaned"
    gone = admin.get(f"/preview-environments/{preview['previewEnvironmentId']}")
    gone = gone["previewEnvironment"]
    assert gone["status"] == "cleaned" and gone["cleanupReason"] == "closed"
    assert gone["environmentId"] is None and gone["previewResourceId"] is None
    with cp.sessions() as db:
        assert db.get(Environment, env.id) is None and db.get(Resource, copy.id) is None
        assert db.query(OperatorWork).filter_by(resource_id=copy.id,
                                                kind="runtime-maintenance").count() == 1
    fingerprint = preview["source"]["sourceBindingFingerprint"]
    assert admin.post("/deployments/cleanup-preview", {"sourceFingerprint": fingerprint})[
        "status"] == "already-clean"
    assert admin.get(f"/resources/{resource}")["resource"]["lifecycleStatus"] == "active"

    # Reopened: a new environment and copy for the same preview.
    reopened = hook.send(pull_request("reopened", sha="f" * 40))
    assert reopened["status"] == "dispatched"
    back = admin.get(f"/preview-environments/{preview['previewEnvironmentId']}")
    assert back["previewEnvironment"]["status"] == "active" and back["previewEnvironment"][
        "environmentId"] not in (None, env.id)


def test_forks_secrets_limits_expiry_and_deletes_follow_the_policy(admin, cp):
    ids, resource = _app(admin)
    hook = Hook(admin, cp, resource)
    fork = hook.send(pull_request("opened", number=8, head="mallory/shop"))
    assert fork["ignoredReasons"] == ["fork-previews-disabled"]
    admin.post("/preview-policies", {"scope": {"kind": "project", "projectId": ids["project"]},
                                     "settings": {"forkPreviews": "without-secrets",
                                                  "secretBackedPreviews": True,
                                                  "maxActivePreviews": 2,
                                                  "previewTtlHours": 1}})
    shown = admin.post("/preview-policies/show", {"scope": {
        "kind": "resource", "projectId": ids["project"], "resourceId": resource}})["policy"]
    assert shown["source"] == "project" and shown["settings"]["maxActivePreviews"] == 2

    fork = hook.send(pull_request("synchronize", number=8, head="mallory/shop"))
    own = hook.send(pull_request("opened", number=9))
    assert fork["status"] == own["status"] == "dispatched"
    previews = {p["source"]["pullRequestNumber"]: p for p in admin.get(
        "/preview-environments", params={"status": "active"})["items"]}
    assert previews[8]["withSecrets"] is False and previews[8]["source"]["fork"] is True
    assert previews[9]["withSecrets"] is True  # the policy lets the repository's own have them
    secrets = admin.get(f"/environments/{previews[9]['environmentId']}")["maskedVariables"]
    assert {v["key"] for v in secrets} == {"MODE", "DB_PASSWORD"}
    assert "hunter2" not in json.dumps(secrets)
    limited = hook.send(pull_request("opened", number=10))
    assert limited["ignoredReasons"] == ["preview-limit-reached"]

    # Expired: the periodic job cleans it up on behalf of whoever it was made for.
    with cp.sessions() as db:
        db.get(PreviewEnvironment, previews[8]["previewEnvironmentId"]).expires_at = \
            utcnow() - timedelta(minutes=1)
        db.commit()
    assert cp.expire_previews() == 1
    expired = admin.get(f"/preview-environments/{previews[8]['previewEnvironmentId']}")
    assert expired["previewEnvironment"]["cleanupReason"] == "expired"

    # Deleted by hand (through the resource it previews only).
    path = f"/resources/{resource}/preview-environments/{previews[9]['previewEnvironmentId']}"
    wrong = f"/resources/{ids['resource']}/preview-environments/" \
            f"{previews[9]['previewEnvironmentId']}"
    assert admin.request("DELETE", wrong).status_code == 404
    deleted = admin.ok("DELETE", path)
    assert deleted["status"] == "cleaned" and deleted["previewEnvironmentStatus"] == "cleaned"
    assert admin.ok("DELETE", path)["status"] == "already-clean"
    assert admin.get("/preview-environments", params={"status": "active"})["items"] == []
    assert {e["eventType"] for e in admin.get("/audit-events", params={"limit": 100})[
        "items"]} >= {"preview-environment.created", "preview-environment.cleaned",
                      "preview-policy.configured", "preview-environment.expired"}


def test_the_project_page_lists_previews_and_cleans_one_up(admin, cp):
    from support import ADMIN_EMAIL, ADMIN_PASSWORD
    from test_console import Browser

    ids, resource = _app(admin)
    Hook(admin, cp, resource).send(pull_request("opened", number=12))
    (preview,) = admin.get("/preview-environments")["items"]
    browser = Browser(cp).sign_in(ADMIN_EMAIL, ADMIN_PASSWORD)
    page = browser.get(f"/projects/{ids['project']}").text
    assert "Previews of pull requests" in page and "#12" in page and "feature/x" in page
    path = f"/projects/{ids['project']}/previews/{preview['previewEnvironmentId']}/delete"
    assert browser.post(path, {"resourceId": resource}).status_code == 303
    assert "#12" not in browser.get(f"/projects/{ids['project']}").text
    shown = admin.get(f"/preview-environments/{preview['previewEnvironmentId']}")
    assert shown["previewEnvironment"]["status"] == "cleaned"


def test_deleting_the_resource_or_the_preview_environment_cleans_the_preview(admin, cp):
    ids, resource = _app(admin)
    hook = Hook(admin, cp, resource)
    hook.send(pull_request("opened", number=3))
    (preview,) = admin.get("/preview-environments")["items"]
    env = admin.get(f"/environments/{preview['environmentId']}")
    admin.ok("DELETE", f"/environments/{env['id']}", {
        "confirmation": {"environmentName": env["name"]}, "withResources": True})
    shown = admin.get(f"/preview-environments/{preview['previewEnvironmentId']}")
    assert shown["previewEnvironment"]["status"] == "cleaned"
    assert shown["previewEnvironment"]["cleanupReason"] == "deleted"

    again = hook.send(pull_request("synchronize", number=3, sha="a" * 40))  # made anew
    assert again["status"] == "dispatched"
    (preview,) = admin.get("/preview-environments", params={"status": "active"})["items"]
    admin.ok("DELETE", f"/resources/{resource}", {"confirmation": {"resourceSlug": "shop"}})
    with cp.sessions() as db:
        assert db.get(Environment, preview["environmentId"]) is None
        assert db.get(Resource, preview["previewResourceId"]) is None
        assert db.get(PreviewEnvironment, preview["previewEnvironmentId"]) is None  # with it
