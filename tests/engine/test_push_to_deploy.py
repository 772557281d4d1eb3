"""Push to deploy end to end: a git repository served on loopback (`git daemon`), pushes to it
announced by webhooks exactly as GitHub and GitLab send them, and the commit pushed serving;
redeliveries, bad signatures, excluded paths and other branches deploy nothing."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from launchbay import webhooks

import images
from docker_support import body, wait
from git_support import ZERO, Repository
from support import Api


def deliver(api: Api, repo: Repository, secret: str, before: str, after: str, *,
            ref: str = "main", delivery: str, provider: str = "github",
            signature: str | None = None) -> httpx.Response:
    """A push's webhook as the host sends it: its headers, its JSON, its signature."""
    payload: dict[str, Any] = {"ref": f"refs/heads/{ref}", "before": before, "after": after,
                               "deleted": False, "pusher": {"name": "t"}}
    if provider == "gitlab":
        payload["project"] = {"git_http_url": repo.url, "path_with_namespace": "app"}
        headers = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Event-UUID": delivery,
                   "X-Gitlab-Token": signature if signature is not None else secret}
    else:
        payload["repository"] = {"full_name": "t/app", "clone_url": repo.url}
        headers = {"X-GitHub-Event": "push", "X-GitHub-Delivery": delivery}
    data = json.dumps(payload).encode()
    if provider == "github" and signature != "":
        headers["X-Hub-Signature-256"] = signature or webhooks.sign(data, secret)
    return api.client.post(f"/api/integrations/{provider}/source-events", content=data,
                           headers={"Content-Type": "application/json", **headers})


def settled(api: Api, event_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        shown = api.get(f"/source-events/{event_id}")
        if shown["status"] != "accepted":
            return shown
        assert time.monotonic() < deadline, shown
        time.sleep(0.2)


def test_pushes_deploy_the_commit_pushed_and_nothing_else(api: Api, cp: Any,
                                                          repository: Repository) -> None:
    images.ensure("lbtest/hello:v1")
    _, first = repository.push({"Dockerfile": "FROM lbtest/hello:v1\nCOPY site /www\n",
                                "site/index.html": "one\n"})
    project = api.post("/projects", {"name": "shop"})["id"]
    env = api.post("/environments", {"projectId": project, "name": "production"})["id"]
    resource = api.post("/resources", {
        "projectId": project, "environmentId": env, "name": "web",
        "source": {"kind": "git", "locator": repository.url, "gitRef": "main"},
        "networkProfile": {"internalPort": 8080}})["id"]
    unknown = deliver(api, repository, "nothing", ZERO, first, delivery="d-0")
    assert unknown.status_code == 503  # no policy, so no secret, for the repository yet
    policy = api.post(f"/resources/{resource}/auto-deploy", {
        "mode": "enable", "policy": {"refs": ["main"], "excludePaths": ["docs/*"]}})
    secret = policy["webhookSecret"]
    assert policy["status"] == "enabled" and secret and policy["webhookPaths"]["github"] == \
        "/api/integrations/github/source-events"
    assert secret not in str(api.get("/audit-events?limit=100"))

    # A wrong or missing signature: 401, nothing kept.
    for bad in ("sha256=" + "0" * 64, ""):
        refused = deliver(api, repository, secret, ZERO, first, delivery="d-1", signature=bad)
        assert refused.status_code == 401, refused.text
    assert api.get("/source-events")["items"] == []
    ping = api.client.post("/api/integrations/github/source-events", content=b'{"zen": "hi", '
                           b'"repository": {"clone_url": "' + repository.url.encode() + b'"}}',
                           headers={"X-GitHub-Event": "ping", "X-GitHub-Delivery": "p-1",
                                    "X-Hub-Signature-256": webhooks.sign(
                                        b'{"zen": "hi", "repository": {"clone_url": "' +
                                        repository.url.encode() + b'"}}', secret)})
    assert ping.status_code == 200 and ping.json()["status"] == "ping"

    # The first push: its commit serves.
    accepted = deliver(api, repository, secret, ZERO, first, delivery="d-1")
    assert accepted.status_code == 202, accepted.text
    (event_id,) = accepted.json()["sourceEventIds"]
    event = settled(api, event_id)
    assert event["status"] == "dispatched", event
    (deployment,) = event["createdDeploymentIds"]
    d = wait(api, deployment, timeout=120)
    assert d["status"] == "succeeded" and d["sourceCommitSha"] == first
    assert body(d["url"]) == "one\n"

    # Delivered again: the same answer, no deployment.
    again = deliver(api, repository, secret, ZERO, first, delivery="d-1")
    assert again.status_code == 200 and again.json()["sourceEventIds"] == [event_id]
    assert len(api.get("/deployments", params={"resourceId": resource})["items"]) == 1

    # Only excluded paths changed, or another branch: kept, ignored with the reason.
    before, docs = repository.push({"docs/notes.md": "notes\n"})
    ignored = deliver(api, repository, secret, before, docs, delivery="d-2").json()
    assert settled(api, ignored["sourceEventIds"][0])["ignoredReasons"] == ["path-not-matched"]
    before, feature = repository.push({"site/index.html": "feature\n"}, branch="feature")
    other = deliver(api, repository, secret, before, feature, ref="feature",
                    delivery="d-3").json()
    assert settled(api, other["sourceEventIds"][0])["ignoredReasons"] == ["ref-not-matched"]
    assert len(api.get("/deployments", params={"resourceId": resource})["items"]) == 1

    # A change pushed and announced as GitLab does (its token): it serves.
    repository.git("checkout", "-q", "main")
    before, second = repository.push({"site/index.html": "two\n"})
    wrong = deliver(api, repository, secret, before, second, delivery="g-1", provider="gitlab",
                    signature="not-the-token")
    assert wrong.status_code == 401
    gitlab = deliver(api, repository, secret, before, second, delivery="g-1", provider="gitlab")
    assert gitlab.status_code == 202, gitlab.text
    event = settled(api, gitlab.json()["sourceEventIds"][0])
    d = wait(api, event["createdDeploymentIds"][0], timeout=120)
    assert d["status"] == "succeeded" and d["sourceCommitSha"] == second
    assert body(d["url"]) == "two\n"
    listed = api.get("/source-events", params={"resourceId": resource})["items"]
    assert [e["status"] for e in listed] == ["dispatched", "ignored", "ignored", "dispatched"]
    assert {e["sourceKind"] for e in listed} == {"github", "gitlab"}

    # The secret rotated: the old one no longer verifies; disabled: nothing is dispatched.
    rotated = api.post(f"/resources/{resource}/auto-deploy", {"mode": "rotate-secret"})
    old = deliver(api, repository, secret, before, second, delivery="d-9")
    assert old.status_code == 401 and rotated["webhookSecret"] != secret
    api.post(f"/resources/{resource}/auto-deploy", {"mode": "disable"})
    off = deliver(api, repository, rotated["webhookSecret"], before, second, delivery="d-10")
    assert off.status_code == 503  # no enabled policy for the repository
    pruned = api.post("/source-events/prune", {"before": "2100-01-01T00:00:00Z"})
    assert pruned["dryRun"] and pruned["matchedCount"] == 4 and len(
        api.get("/source-events")["items"]) == 4


def test_a_deploy_token_deploys_its_resource_from_the_cli(api: Api, cli: Any,
                                                          monkeypatch: Any) -> None:
    """What a CI job does: `launchbay deploy` with a deploy token in LAUNCHBAY_TOKEN."""
    for tag in ("lbtest/hello:v1", "lbtest/hello:v2"):
        images.ensure(tag)
    project = api.post("/projects", {"name": "shop"})["id"]
    env = api.post("/environments", {"projectId": project, "name": "production"})["id"]
    resource = api.post("/resources", {
        "projectId": project, "environmentId": env, "name": "web",
        "source": {"kind": "docker-image", "imageName": "lbtest/hello", "imageTag": "v1"},
        "networkProfile": {"internalPort": 8080}})["id"]
    token = api.post("/deploy-tokens", {"displayName": "ci", "scope": {
        "resourceIds": [resource], "workflowCommands": ["deploy"]}})["token"]
    monkeypatch.setenv("LAUNCHBAY_TOKEN", token)
    printed = cli("deploy", resource, "--image", "lbtest/hello:v2")
    assert "deployed dep_" in printed, printed
    (d,) = api.get("/deployments", params={"resourceId": resource})["items"]
    assert body(d["url"]) == "hello v2\n"
    assert "a deploy token cannot projects.list" in cli("projects", "list", ok=False)
