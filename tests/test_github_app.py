"""The GitHub App connection against a stand-in of GitHub's API on loopback (the shapes of
its answers, the app's JWT checked against its key): connecting checks the app with GitHub
and keeps its key sealed; repositories listed; the outcome of deployments GitHub events made
reported on their commits, retried when GitHub fails, and never changing the deployment."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from launchbay import webhooks
from launchbay.operations import Actor
from launchbay.operations.errors import Invalid
from launchbay.store.models import CommitStatus, Deployment, Resource, utcnow

from github_standin import GitHub
from support import Api, add_member, make_app
from test_previews import Hook, pull_request

REPO = "https://github.com/acme/shop.git"


@pytest.fixture
def github() -> Any:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    stand_in = GitHub("4242", "777", key.public_key())
    stand_in.pem = key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    yield stand_in
    stand_in.close()


def _connect(admin: Api, github: Any, **extra: Any) -> Any:
    return admin.request("POST", "/integrations/github/app-connection", {
        "appId": "4242", "installationId": "777", "privateKey": github.pem,
        "apiUrl": github.url, **extra})


def _report(cp: Any, admin: Api) -> dict[str, int]:
    """A report run, with its statuses due (as the periodic job finds them seconds later)."""
    with cp.sessions() as db:
        for status in db.query(CommitStatus).filter_by(done=False):
            status.next_attempt_at = utcnow() - timedelta(seconds=1)
        db.commit()
    return cp.ops.run("integrations.github.commit-statuses.report", Actor(
        user_id=admin.user_id, organization_id=admin.org_id), {}).model_dump()


def test_the_app_is_checked_with_github_and_its_key_never_shown(admin, github):
    assert admin.get("/integrations")["items"][0]["configuration"]["status"] == "not-configured"
    assert admin.get("/integrations/github/app-connection")["connected"] is False
    refused = admin.request("GET", "/integrations/github/repositories")
    assert refused.status_code == 404 and refused.json()["code"] == "github_app_not_connected"
    bad = _connect(admin, github, privateKey="-----BEGIN PRIVATE KEY-----\nnope\n")
    assert bad.status_code == 400 and bad.json()["details"][0]["field"] == "privateKey"
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    wrong = _connect(admin, github, privateKey=other)  # not the app's key: GitHub says 401
    assert wrong.status_code == 400 and wrong.json()["code"] == "github_app_invalid"
    inside = _connect(admin, github, apiUrl="http://169.254.169.254/api/v3")
    assert inside.status_code == 400 and "not a public address" in inside.json()["error"]
    assert admin.get("/integrations/github/app-connection")["connected"] is False

    made = _connect(admin, github)
    assert made.status_code == 200, made.text
    shown = admin.get("/integrations/github/app-connection")
    assert shown["connected"] and shown["accountLogin"] == "acme" and shown["appId"] == "4242"
    assert shown["repositoriesSelection"] == "selected"
    assert "BEGIN" not in json.dumps(shown) and "BEGIN" not in json.dumps(
        admin.get("/audit-events", params={"limit": 100}))
    listed = admin.get("/integrations/github/repositories", params={"search": "sho"})["items"]
    assert [(r["fullName"], r["defaultBranch"], r["private"]) for r in listed] == [
        ("acme/shop", "main", True)]
    assert admin.get("/integrations")["items"][0]["configuration"]["status"] == "configured"

    # Another organization sees none of it; a developer cannot connect an app.
    org_b = admin.post("/organizations", {"name": "Beta"})["organizationId"]
    bob = add_member(admin, org_b, "bob@example.com", "admin")
    assert bob.get("/integrations/github/app-connection")["connected"] is False
    assert bob.request("GET", "/integrations/github/repositories").status_code == 404
    dev = add_member(admin, admin.org_id, "dev@example.com", "developer")
    assert _connect(dev, github).status_code == 403
    admin.ok("DELETE", "/integrations/github/app-connection")
    assert admin.get("/integrations/github/app-connection")["connected"] is False


def test_deployments_of_github_events_are_reported_on_their_commits(admin, cp, github):
    assert _connect(admin, github).status_code == 200
    ids = make_app(admin, "lbtest/hello:v1")
    resource = admin.post("/resources", {
        "projectId": ids["project"], "environmentId": ids["env"], "name": "shop",
        "source": {"kind": "git", "locator": REPO, "gitRef": "main"}})["id"]
    secret = admin.post(f"/resources/{resource}/auto-deploy", {
        "mode": "enable", "policy": {"refs": ["main"]}})["webhookSecret"]
    data = json.dumps({"ref": "refs/heads/main", "before": "a" * 40, "after": "b" * 40,
                       "repository": {"clone_url": REPO}}).encode()
    sent = admin.client.post("/api/integrations/github/source-events", content=data, headers={
        "X-GitHub-Event": "push", "X-GitHub-Delivery": "d-1",
        "X-Hub-Signature-256": webhooks.sign(data, secret)})
    (event,) = sent.json()["sourceEventIds"]
    actor = Actor(user_id=admin.user_id, organization_id=admin.org_id)
    cp.ops.run("source-events.dispatch", actor, {"sourceEventId": event, "resourceId": resource})
    (deployment,) = admin.get(f"/source-events/{event}")["createdDeploymentIds"]

    assert _report(cp, admin)["reported"] == 1  # at once: pending
    assert [(s["repository"], s["sha"], s["state"], s["context"]) for s in github.statuses] == [
        ("acme/shop", "b" * 40, "pending", "launchbay/shop")]
    assert _report(cp, admin) == {"reported": 0, "failed": 0, "given_up": 0}  # nothing new

    # GitHub fails: the deployment is untouched, the report waits and is made again.
    with cp.sessions() as db:
        d = db.get(Deployment, deployment)
        d.status, d.host_port = "succeeded", 40123
        db.get(Resource, resource).current_deployment_id = deployment
        db.commit()
    github.failing = True
    assert _report(cp, admin)["failed"] == 1
    shown = admin.get(f"/deployments/{deployment}")["deployment"]
    assert shown["status"] == "succeeded"
    with cp.sessions() as db:
        status = db.query(CommitStatus).filter_by(deployment_id=deployment).one()
        assert status.attempts == 1 and "500" in status.last_error and not status.done
        assert status.next_attempt_at > utcnow()  # later, not at once
    github.failing = False
    assert _report(cp, admin)["reported"] == 1
    last = github.statuses[-1]
    assert last["state"] == "success" and last["target_url"] == "http://127.0.0.1:40123/"
    with cp.sessions() as db:
        assert db.query(CommitStatus).filter_by(deployment_id=deployment).one().done

    # A pull request's preview is reported on its head commit, in a context of its own.
    opened = Hook(admin, cp, resource, secret).send(pull_request("opened", sha="c" * 40))
    assert opened["status"] == "dispatched"
    assert _report(cp, admin)["reported"] == 1
    assert (github.statuses[-1]["sha"], github.statuses[-1]["context"]) == (
        "c" * 40, "launchbay/shop (preview)")

    # The periodic job finds organizations with reports due, on behalf of who connected.
    with cp.sessions() as db:
        for status in db.query(CommitStatus).filter_by(done=False):
            status.next_attempt_at = utcnow() - timedelta(seconds=1)
        db.commit()
    assert cp.report_statuses() == 1

    # A pull request closed without its webhook reaching us: asking GitHub finds it out.
    github.pulls[("acme/shop", 7)] = "open"
    assert cp.ops.run("preview-environments.reconcile", actor, {}).cleaned == 0
    github.pulls[("acme/shop", 7)] = "closed"
    assert cp.ops.run("preview-environments.reconcile", actor, {}).cleaned == 1
    (preview,) = admin.get("/preview-environments")["items"]
    assert (preview["status"], preview["cleanupReason"]) == ("cleaned", "closed")
    assert cp.reconcile_previews() == 0  # no preview left to ask about


def test_a_push_deploys_once_its_required_checks_passed(admin, cp, github):
    from launchbay.operations.errors import NotYet

    ids = make_app(admin, "lbtest/hello:v1")
    resource = admin.post("/resources", {
        "projectId": ids["project"], "environmentId": ids["env"], "name": "shop",
        "source": {"kind": "git", "locator": REPO, "gitRef": "main"}})["id"]
    policy = admin.post(f"/resources/{resource}/auto-deploy", {"mode": "enable", "policy": {
        "refs": ["main"], "requiredChecks": ["ci", "lint"]}})
    assert policy["requiredChecks"] == ["ci", "lint"]
    actor = Actor(user_id=admin.user_id, organization_id=admin.org_id)

    def push(sha: str, delivery: str) -> str:
        data = json.dumps({"ref": "refs/heads/main", "before": "a" * 40, "after": sha,
                           "repository": {"clone_url": REPO}}).encode()
        sent = admin.client.post("/api/integrations/github/source-events", content=data,
                                 headers={"X-GitHub-Event": "push", "X-GitHub-Delivery": delivery,
                                          "X-Hub-Signature-256": webhooks.sign(
                                              data, policy["webhookSecret"])})
        return sent.json()["sourceEventIds"][0]

    def dispatch(event: str) -> dict[str, Any]:
        cp.ops.run("source-events.dispatch", actor, {"sourceEventId": event,
                                                     "resourceId": resource})
        return admin.get(f"/source-events/{event}")

    # Without the GitHub App, checks cannot be known: closed.
    assert dispatch(push("b" * 40, "c-1"))["ignoredReasons"] == ["checks-unavailable"]
    assert _connect(admin, github).status_code == 200

    # Still running: not yet (the engine asks again); over the API, 409.
    waiting = push("c" * 40, "c-2")
    github.checks[("acme/shop", "c" * 40)] = {"ci": ("status", "success"),
                                             "lint": ("check", "in_progress")}
    with pytest.raises(NotYet):
        dispatch(waiting)
    asked = admin.request("POST", f"/source-events/{waiting}/dispatches",
                          {"resourceId": resource})
    assert asked.status_code == 409 and asked.json()["code"] == "checks_pending"
    assert admin.get(f"/source-events/{waiting}")["status"] == "accepted"
    github.checks[("acme/shop", "c" * 40)]["lint"] = ("check", "success")
    passed = dispatch(waiting)
    assert passed["status"] == "dispatched" and len(passed["createdDeploymentIds"]) == 1

    failing = push("d" * 40, "c-3")
    github.checks[("acme/shop", "d" * 40)] = {"ci": ("status", "failure"),
                                             "lint": ("check", "success")}
    assert dispatch(failing)["ignoredReasons"] == ["required-checks-failed"]


def test_work_that_is_not_yet_decided_waits_instead_of_failing(admin, cp):
    """The engine's handler of operations run on someone's behalf turns `NotYet` into a wait
    (the same item again later, no attempt spent), any other refusal into a failure."""
    from types import SimpleNamespace

    from launchbay.control_plane import OnBehalf
    from launchbay.engine.worker import Defer, Refused
    from launchbay.operations.errors import NotYet

    class Ops:
        def __init__(self, error: Exception):
            self.error = error

        def run(self, *_: Any) -> None:
            raise self.error

    job = SimpleNamespace(item=SimpleNamespace(payload={"key": "k", "user_id": "u"},
                                               organization_id="o"))
    with pytest.raises(Defer) as waited:
        OnBehalf(Ops(NotYet("checks still run", seconds=15))).run(job)  # type: ignore[arg-type]
    assert waited.value.seconds == 15
    with pytest.raises(Refused):
        OnBehalf(Ops(Invalid("no"))).run(job)  # type: ignore[arg-type]
