"""Webhook deliveries of git hosts, read into the facts launchbay keeps (never the payload).

GitHub signs the raw body with HMAC-SHA256 (`X-Hub-Signature-256: sha256=<hex>`), Gitea and
Forgejo likewise (`X-Gitea-Signature` / `X-Forgejo-Signature: <hex>`), GitLab sends the
secret itself (`X-Gitlab-Token`), and launchbay's own generic webhook is signed like GitHub's
(`X-Launchbay-Signature`). Every comparison is constant-time and over the bytes received.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from launchbay.drivers.source_checkout import SAFE_REF

ZERO = "0" * 40
PROVIDERS = ("github", "gitlab", "gitea", "generic")
SHA = re.compile(r"^[0-9a-f]{7,64}$")


class MalformedDelivery(ValueError):
    """The delivery is not one launchbay can read (its message says what is missing)."""


@dataclass(frozen=True)
class PullRequest:
    """What a pull (merge) request event says: which one, what happened, and its head."""

    number: int
    action: str  # opened | reopened | synchronize | closed (others are ignored)
    base_ref: str  # the branch it would merge into
    head_repository: str  # `repository_key` of where its head is (a fork's, or the same)
    fork: bool


@dataclass(frozen=True)
class Delivery:
    provider: str
    delivery_id: str
    event: str  # push | tag | pull-request | ping | another event (ignored)
    repositories: frozenset[str] = field(default_factory=frozenset)  # `repository_key`s
    ref: str = ""  # the branch or tag name (`main`, `v1.2`); a pull request's head branch
    revision: str = ""
    before: str | None = None  # None: a new ref (or not said)
    deleted: bool = False
    pull_request: PullRequest | None = None


# A pull (merge) request event's action, by host: what launchbay does with it.
PULL_REQUEST_ACTIONS = {"opened": "opened", "reopened": "reopened", "synchronize": "synchronize",
                        "synchronized": "synchronize", "closed": "closed", "open": "opened",
                        "reopen": "reopened", "update": "synchronize", "close": "closed",
                        "merge": "closed"}


def repository_key(url: str) -> str:
    """One name for every URL of a repository: `host/owner/name`, lowercased, whatever the
    scheme, user, port or `.git` suffix (`git@github.com:o/r.git` = `https://github.com/o/r`)."""
    url = url.strip()
    if "://" in url:
        parts = urlsplit(url)
        host, path = (parts.hostname or ""), parts.path
    else:  # scp-like: user@host:path
        host, _, path = url.rpartition("@")[2].partition(":")
    path = path.strip("/").removesuffix(".git").strip("/")
    return f"{host}/{path}".lower()


def _header(headers: dict[str, str], *names: str) -> str:
    lowered = {k.lower(): v for k, v in headers.items()}
    return next((lowered[n] for n in names if lowered.get(n)), "")


def signed_by(provider: str, headers: dict[str, str], body: bytes, secret: str) -> bool:
    """Whether the delivery carries `secret`'s signature (GitLab: the secret) of `body`."""
    if provider == "gitlab":
        given = _header(headers, "x-gitlab-token")
        return bool(given) and hmac.compare_digest(given.encode(), secret.encode())
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if provider == "gitea":
        given = _header(headers, "x-gitea-signature", "x-forgejo-signature")
        return bool(given) and hmac.compare_digest(given.strip().lower(), digest)
    header = "x-hub-signature-256" if provider == "github" else "x-launchbay-signature"
    given = _header(headers, header)
    return given.startswith("sha256=") and hmac.compare_digest(
        given.removeprefix("sha256=").strip().lower(), digest)


def sign(body: bytes, secret: str) -> str:
    """The `sha256=<hex>` signature GitHub (and launchbay's generic webhook) sends."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def read(provider: str, headers: dict[str, str], body: bytes) -> Delivery:
    """The facts of a delivery; MalformedDelivery when they cannot be read."""
    if provider not in PROVIDERS:
        raise MalformedDelivery(f"unknown provider {provider!r}")
    try:
        payload = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise MalformedDelivery("the body is not JSON") from None
    if not isinstance(payload, dict):
        raise MalformedDelivery("the body is not a JSON object")
    event = _header(headers, "x-github-event", "x-gitea-event", "x-forgejo-event",
                    "x-gitlab-event", "x-launchbay-event").lower() or "push"
    if event in ("push hook", "tag push hook"):  # GitLab's names
        event = "push"
    if event in ("pull_request", "merge request hook"):
        event = "pull-request"
    delivery_id = _header(headers, "x-github-delivery", "x-gitea-delivery",
                          "x-forgejo-delivery", "x-gitlab-event-uuid", "x-launchbay-delivery",
                          "idempotency-key")
    repositories = _repositories(payload)
    if event == "ping":
        return Delivery(provider, delivery_id or "ping", "ping", repositories)
    if event == "pull-request":
        if not delivery_id:
            raise MalformedDelivery("the delivery has no id header")
        return _pull_request(provider, delivery_id[:200], repositories, payload)
    if event != "push":
        return Delivery(provider, delivery_id, event, repositories)
    ref = str(payload.get("ref") or "")
    kind = "tag" if ref.startswith("refs/tags/") or payload.get("eventKind") == "tag" \
        else "push"
    name = ref.removeprefix("refs/heads/").removeprefix("refs/tags/")
    revision = str(payload.get("after") or payload.get("revision") or
                   payload.get("checkout_sha") or "").lower()
    before = str(payload.get("before") or "").lower() or None
    deleted = bool(payload.get("deleted")) or revision == ZERO
    if provider == "generic":  # a resource's own hook: the commit is optional (an image's)
        name, revision = name or "default", revision if SHA.match(revision) else ""
    elif not name or (not deleted and not SHA.match(revision)):
        raise MalformedDelivery("a push names its ref and the commit it moved to")
    if not SAFE_REF.match(name):
        raise MalformedDelivery(f"{name[:100]!r} is not a branch or tag name")
    if not delivery_id:
        if provider != "generic":
            raise MalformedDelivery("the delivery has no id header")
        delivery_id = f"{name}@{revision}"
    return Delivery(provider, delivery_id[:200], kind, repositories, name[:500], revision[:64],
                    None if before in (None, ZERO) or not SHA.match(before or "") else before,
                    deleted)


def _pull_request(provider: str, delivery_id: str, repositories: frozenset[str],
                  payload: dict) -> Delivery:
    """A pull request event of GitHub or Gitea/Forgejo (`pull_request`), or a merge request
    event of GitLab (`object_attributes`)."""
    def text(holder: object, *keys: str) -> str:
        for key in keys:
            holder = holder.get(key) if isinstance(holder, dict) else None
        return holder if isinstance(holder, str) else ""

    if isinstance(mr := payload.get("object_attributes"), dict):  # GitLab
        number, action = mr.get("iid"), str(mr.get("action") or "")
        head_ref, base_ref = text(mr, "source_branch"), text(mr, "target_branch")
        revision = text(mr, "last_commit", "id").lower()
        head = text(mr, "source", "git_http_url") or text(mr, "source", "web_url")
        fork = mr.get("source_project_id") != mr.get("target_project_id")
    else:
        pr = payload.get("pull_request")
        if not isinstance(pr, dict):
            raise MalformedDelivery("a pull request event carries its pull request")
        number, action = pr.get("number") or payload.get("number"), \
            str(payload.get("action") or "")
        head_ref, base_ref = text(pr, "head", "ref"), text(pr, "base", "ref")
        revision = text(pr, "head", "sha").lower()
        head = text(pr, "head", "repo", "clone_url") or text(pr, "head", "repo", "html_url")
        fork = not head or repository_key(head) not in repositories  # gone: untrusted
    if not isinstance(number, int) or number <= 0 or not SHA.match(revision) \
            or not SAFE_REF.match(head_ref) or not SAFE_REF.match(base_ref or "-"):
        raise MalformedDelivery("a pull request event names its number, head branch, head "
                                "commit and base branch")
    return Delivery(provider, delivery_id, "pull-request", repositories, head_ref[:500],
                    revision[:64], pull_request=PullRequest(
                        number, PULL_REQUEST_ACTIONS.get(action, action)[:20], base_ref[:500],
                        repository_key(head) if head else "", bool(fork)))


def _repositories(payload: dict) -> frozenset[str]:
    found = []
    for holder in (payload.get("repository"), payload.get("project")):
        if isinstance(holder, dict):
            found += [holder.get(k) for k in ("clone_url", "ssh_url", "git_url", "html_url",
                                              "url", "git_http_url", "git_ssh_url", "web_url")]
    return frozenset(repository_key(u) for u in found if isinstance(u, str) and u)


def matches(patterns: list[str], name: str) -> bool:
    """Whether a branch or tag `name` is one of `patterns` (exact, or globs: `release/*`)."""
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def paths_match(include: list[str], exclude: list[str], changed: list[str]) -> bool:
    """Whether a change of `changed` files concerns a policy: some file is included (every one
    when `include` is empty) and not excluded. Globs match across folders (`docs/*`)."""
    wanted = [p for p in changed if not include or any(fnmatch.fnmatchcase(p, g)
                                                      for g in include)]
    return any(not any(fnmatch.fnmatchcase(p, g) for g in exclude) for p in wanted)
