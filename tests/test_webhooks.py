"""Webhook deliveries read and verified as each git host sends them (pure: no store)."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from launchbay import webhooks

BODY = json.dumps({"ref": "refs/heads/main", "before": "a" * 40, "after": "b" * 40,
                   "repository": {"clone_url": "https://github.com/Acme/Shop.git",
                                  "ssh_url": "git@github.com:Acme/Shop.git"}}).encode()


def test_each_hosts_signature_is_checked_over_the_bytes_received():
    github = {"X-Hub-Signature-256": webhooks.sign(BODY, "s3cret")}
    assert webhooks.signed_by("github", github, BODY, "s3cret")
    assert not webhooks.signed_by("github", github, BODY + b" ", "s3cret")  # other bytes
    assert not webhooks.signed_by("github", github, BODY, "other")
    assert not webhooks.signed_by("github", {}, BODY, "s3cret")
    assert not webhooks.signed_by("github", {"X-Hub-Signature-256": "sha1=abc"}, BODY, "s3cret")
    gitea = {"X-Gitea-Signature": hmac.new(b"s3cret", BODY, hashlib.sha256).hexdigest()}
    assert webhooks.signed_by("gitea", gitea, BODY, "s3cret")
    assert webhooks.signed_by("gitea", {"X-Forgejo-Signature": gitea["X-Gitea-Signature"]},
                              BODY, "s3cret")
    assert not webhooks.signed_by("gitea", gitea, BODY, "other")
    assert webhooks.signed_by("gitlab", {"X-Gitlab-Token": "s3cret"}, BODY, "s3cret")
    assert not webhooks.signed_by("gitlab", {"X-Gitlab-Token": "s3cre"}, BODY, "s3cret")
    assert not webhooks.signed_by("gitlab", {}, BODY, "s3cret")
    generic = {"X-Launchbay-Signature": webhooks.sign(BODY, "s3cret")}
    assert webhooks.signed_by("generic", generic, BODY, "s3cret")
    assert not webhooks.signed_by("generic", github, BODY, "other")


def test_deliveries_are_read_into_their_facts():
    push = webhooks.read("github", {"X-GitHub-Event": "push", "X-GitHub-Delivery": "d1"}, BODY)
    assert (push.event, push.ref, push.revision, push.before) == ("push", "main", "b" * 40,
                                                                  "a" * 40)
    assert push.repositories == {"github.com/acme/shop"}
    tag = webhooks.read("github", {"X-GitHub-Event": "push", "X-GitHub-Delivery": "d2"},
                        json.dumps({"ref": "refs/tags/v1.2", "before": "0" * 40,
                                    "after": "c" * 40}).encode())
    assert (tag.event, tag.ref, tag.before) == ("tag", "v1.2", None)  # a new ref
    ping = webhooks.read("github", {"X-GitHub-Event": "ping", "X-GitHub-Delivery": "d3"},
                         b'{"zen": "x"}')
    assert ping.event == "ping"
    gitlab = webhooks.read("gitlab", {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Event-UUID": "u1"},
                           json.dumps({"ref": "refs/heads/dev", "before": "a" * 40,
                                       "after": "d" * 40, "project": {
                                           "git_http_url": "https://gitlab.com/a/b.git"}}).encode())
    assert (gitlab.event, gitlab.ref, gitlab.delivery_id) == ("push", "dev", "u1")
    assert gitlab.repositories == {"gitlab.com/a/b"}
    for headers, body in (({"X-GitHub-Event": "push"}, BODY),  # no delivery id
                          ({"X-GitHub-Delivery": "d"}, b"not json"),
                          ({"X-GitHub-Delivery": "d"}, b'{"ref": "refs/heads/main"}'),
                          ({"X-GitHub-Delivery": "d"}, json.dumps({
                              "ref": "refs/heads/--upload-pack=x", "after": "b" * 40}).encode())):
        with pytest.raises(webhooks.MalformedDelivery):
            webhooks.read("github", headers, body)


def test_repository_urls_and_paths_match_as_a_user_means_them():
    key = webhooks.repository_key
    assert key("git@github.com:Acme/Shop.git") == key("https://github.com/acme/shop/") == \
        key("ssh://git@github.com:22/acme/shop.git") == "github.com/acme/shop"
    assert webhooks.matches(["main", "release/*"], "release/1.2")
    assert not webhooks.matches(["main"], "mainline")
    assert webhooks.paths_match([], ["docs/*"], ["docs/a.md", "app.py"])
    assert not webhooks.paths_match([], ["docs/*"], ["docs/a.md", "docs/b/c.md"])
    assert webhooks.paths_match(["src/*"], [], ["src/x/y.py"])
    assert not webhooks.paths_match(["src/*"], [], ["README.md"])
    assert not webhooks.paths_match(["src/*"], ["src/tests/*"], ["src/tests/t.py"])
    assert not webhooks.paths_match([], [], [])  # a push that changed nothing


def pull_request(action: str = "opened", *, number: int = 7, head: str = "Acme/Shop",
                 sha: str = "e" * 40) -> bytes:
    """A pull request event as GitHub (and Gitea) sends it, trimmed to what is read."""
    return json.dumps({"action": action, "number": number, "pull_request": {
        "number": number, "merged": action == "closed",
        "head": {"ref": "feature/x", "sha": sha,
                 "repo": {"clone_url": f"https://github.com/{head}.git"}},
        "base": {"ref": "main", "repo": {"clone_url": "https://github.com/Acme/Shop.git"}}},
        "repository": {"clone_url": "https://github.com/Acme/Shop.git"}}).encode()


def test_pull_request_events_are_read_into_their_facts():
    headers = {"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": "p1"}
    opened = webhooks.read("github", headers, pull_request())
    assert (opened.event, opened.ref, opened.revision) == ("pull-request", "feature/x", "e" * 40)
    assert opened.pull_request == webhooks.PullRequest(7, "opened", "main",
                                                       "github.com/acme/shop", False)
    fork = webhooks.read("github", headers, pull_request("synchronize", head="mallory/Shop"))
    assert fork.pull_request and fork.pull_request.fork
    assert fork.pull_request.head_repository == "github.com/mallory/shop"
    gitea = webhooks.read("gitea", {"X-Gitea-Event": "pull_request", "X-Gitea-Delivery": "g1"},
                          pull_request("synchronized"))
    assert gitea.pull_request and gitea.pull_request.action == "synchronize"
    gitlab = webhooks.read("gitlab", {"X-Gitlab-Event": "Merge Request Hook",
                                      "X-Gitlab-Event-UUID": "u9"}, json.dumps({
        "object_kind": "merge_request", "project": {"git_http_url": "https://gitlab.com/a/b.git"},
        "object_attributes": {"iid": 3, "action": "merge", "source_branch": "fix",
                              "target_branch": "main", "source_project_id": 1,
                              "target_project_id": 1, "last_commit": {"id": "f" * 40},
                              "source": {"git_http_url": "https://gitlab.com/a/b.git"}}}).encode())
    assert gitlab.pull_request == webhooks.PullRequest(3, "closed", "main", "gitlab.com/a/b", False)
    assert (gitlab.ref, gitlab.revision) == ("fix", "f" * 40)
    for bad in (pull_request(number=0), pull_request(sha="not-a-sha"),
                json.dumps({"action": "opened"}).encode()):
        with pytest.raises(webhooks.MalformedDelivery):
            webhooks.read("github", headers, bad)
