"""The Dploy face end to end: people sign in at a real OpenID Connect provider on loopback
(npm `oidc-provider`) and run ephemeral environments on the real Docker engine, served by Caddy
at `{owner}-{uuid}.{base}`: one per owner, extensions, quota, parameters, teams, delete, the
reaper."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx
import pytest
from oidc_support import oidc_settings, running_provider, sign_in, token_of
from sqlalchemy import select

from launchbay.settings import Settings
from launchbay.store.models import AuditEvent, Instance, Resource, utcnow

from docker_support import containers, edge_settings, eventually, via_url
from support import free_port

EDGE_HTTP, SERVER_PORT, OIDC_PORT = free_port(), free_port(), free_port()
FACE = "/compat/dploy"
IMAGE = {"image": "lbtest/env:v1", "port": 8080}
TEMPLATES = [
    {"name": "webterm", "description": "Browser-based shell", "icon": "terminal",
     "blueprint": {**IMAGE, "variables": {"GREETING": "${greeting}"}},
     "parameters": [{"name": "greeting", "default": "hello"}],
     "ttl": 3600, "extendTTL": 600, "maxExtends": 2},
    {"name": "lab", "blueprint": {**IMAGE, "variables": {"SIZE": "${size}"}},
     "parameters": [{"name": "size", "required": True}], "quota": 1},
    {"name": "team-lab", "blueprint": IMAGE, "ttl": 3600, "ownerClaim": "groups"},
    {"name": "short", "blueprint": IMAGE, "ttl": 60},
]


@pytest.fixture(scope="module")
def provider() -> Any:
    with running_provider(OIDC_PORT, [f"http://127.0.0.1:{SERVER_PORT}{FACE}/auth/callback"]) \
            as issuer:
        yield issuer


@pytest.fixture
def server_port() -> int:
    return SERVER_PORT


@pytest.fixture
def settings(tmp_path, database_url, mock_dns, provider) -> Settings:
    return edge_settings(tmp_path, database_url, mock_dns, EDGE_HTTP, base_domain="env.test",
                         instance_reap_seconds=0.5, instance_pool_seconds=0.5,
                         **oidc_settings(OIDC_PORT))


class Person:
    """Someone using the face with the id_token their sign-in gave them."""

    def __init__(self, server: str, username: str):
        self.http = httpx.Client(base_url=server, timeout=30)
        landed = sign_in(self.http, username, f"{FACE}/auth/login", return_url="/welcome")
        assert landed.startswith("/welcome#token=")
        self.token = token_of(landed)

    def __call__(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return self.http.request(method, f"{FACE}{path}",
                                 headers={"Authorization": f"Bearer {self.token}"}, **kw)

    def ok(self, method: str, path: str, **kw: Any) -> Any:
        r = self(method, path, **kw)
        assert r.status_code == 200, (path, r.status_code, r.text)
        return r.json()


def healthy(person: Person, template: str) -> dict[str, Any]:
    return eventually(lambda: (s := person.ok("GET", f"/run/{template}/status"))["status"]
                      == "Healthy" and s, within=60)


def test_sign_in_run_extend_quota_delete(api, server, cp):
    for template in TEMPLATES:
        api.post("/templates", template)
    alice = Person(server, "alice")

    first = alice.ok("GET", "/run/webterm", params={"greeting": "bonjour"})
    assert first["status"] == "pending" and first["owner"] == "alice"
    assert first["shared"] is False
    assert first["url"] == f"http://alice-{first['uuid']}.env.test:{EDGE_HTTP}"
    again = alice.ok("GET", "/api/run/webterm")
    assert again["uuid"] == first["uuid"]
    status = healthy(alice, "webterm")
    assert status["uuid"] == first["uuid"]
    page = eventually(lambda: (r := via_url(first["url"], EDGE_HTTP)).status_code == 200 and r)
    assert "GREETING=bonjour" in page.text

    listed = alice.ok("GET", "/api/environments")
    assert listed["count"] == 1 and listed["limit"] == 5
    (item,) = listed["environments"]
    assert item | {"name": "webterm", "uuid": first["uuid"], "status": "Healthy",
                   "extendCount": 0, "maxExtends": 2, "extendTTL": 600,
                   "isUnlimited": False} == item

    for _ in range(2):
        assert alice.ok("POST", "/run/webterm/extend")["expiresAt"] > first["expiresAt"]
    r = alice("POST", "/api/run/webterm/extend")
    assert r.status_code == 409 and r.json() == {"error": "maximum extensions reached"}

    r = alice("GET", "/run/lab")
    assert r.status_code == 400 and r.json() == {"error": "missing required parameter size"}
    r = alice("GET", "/run/lab", params={"size": "L"})
    assert r.status_code == 403 and r.json() == {"error": "Maximum 1 environments allowed"}
    r = alice("GET", "/run/nothing")
    assert r.status_code == 404 and r.json() == {"error": "Environment nothing not found"}
    r = alice.http.get(f"{FACE}/run/webterm")  # no token
    assert r.status_code == 401 and r.json() == {"error": "unauthorized"}

    resource = _resource_of(api, "webterm")
    r = alice("DELETE", "/run/webterm")
    assert r.status_code == 204 and r.content == b""
    eventually(lambda: alice("GET", "/run/webterm/status").status_code == 404)
    eventually(lambda: not containers(**{"launchbay.resource": resource}))
    assert eventually(lambda: via_url(first["url"], EDGE_HTTP).status_code == 404)

    assert alice.http.get(f"{FACE}/ready").json() == {"status": "ready"}
    assert alice.http.get(f"{FACE}/health").json() == {"status": "ok"}


def test_team_members_share_an_instance_and_the_reaper_removes_expired_ones(api, server, cp):
    for template in TEMPLATES:
        api.post("/templates", template)
    alice, bob, dave = (Person(server, name) for name in ("alice", "bob", "dave"))
    mine = alice.ok("GET", "/run/team-lab")
    assert mine["owner"] == "team-a" and mine["shared"] is True
    assert mine["url"] == f"http://team-a-{mine['uuid']}.env.test:{EDGE_HTTP}"
    theirs = bob.ok("GET", "/run/team-lab")
    assert theirs["uuid"] == mine["uuid"]
    (listed,) = bob.ok("GET", "/api/environments")["environments"]
    assert listed["uuid"] == mine["uuid"] and listed["shared"] is True
    other = dave.ok("GET", "/run/team-lab")  # another team has its own
    assert other["uuid"] != mine["uuid"] and other["owner"] == "team-b"
    healthy(bob, "team-lab")

    short = alice.ok("GET", "/run/short")
    healthy(alice, "short")
    with cp.sessions() as db:  # its hour is over
        db.scalar(select(Instance).where(Instance.uuid == short["uuid"])).expires_at = \
            utcnow() - timedelta(seconds=1)
        db.commit()
    deadline = time.monotonic() + 60
    while alice("GET", "/run/short/status").status_code != 404:
        assert time.monotonic() < deadline, "the reaper did not remove the expired instance"
        time.sleep(0.3)
    with cp.sessions() as db:
        reaped = db.scalars(select(AuditEvent).where(
            AuditEvent.event_type == "instance.expired")).all()
    assert [e.payload["uuid"] for e in reaped] == [short["uuid"]]
    assert bob.ok("GET", "/run/team-lab/status")["uuid"] == mine["uuid"]  # not expired


def _resource_of(api, name: str) -> str:
    return next(r["id"] for r in api.get("/resources")["items"] if r["name"] == name)


@pytest.mark.both_stores
def test_warm_pool_claims_healthy_instances_runs_out_and_refills(api, server, cp):
    api.post("/templates", {"name": "pooled", "blueprint": IMAGE, "ttl": 3600, "poolSize": 2})
    people = [Person(server, name) for name in ("alice", "carol", "dave")]

    def members() -> dict[str, Any]:
        with cp.sessions() as db:
            return {i.uuid: i.status for i in db.scalars(
                select(Instance).where(Instance.template == "pooled"))}

    def pool_ready() -> bool:  # two pooled members serving a release
        with cp.sessions() as db:
            return len(db.scalars(select(Instance).join(
                Resource, Resource.id == Instance.resource_id).where(
                Instance.template == "pooled", Instance.status == "pooled",
                Resource.current_deployment_id.is_not(None))).all()) == 2

    eventually(pool_ready, within=60)  # the background filler started both
    pooled = set(members())
    assert len(pooled) == 2
    with ThreadPoolExecutor(3) as claims:  # three people at once, for two warm instances
        answers = list(claims.map(lambda p: p("GET", "/run/pooled"), people))
    won = [r.json() for r in answers if r.status_code == 200]
    lost = [r for r in answers if r.status_code != 200]
    assert len(won) == 2 and {w["uuid"] for w in won} == pooled
    assert all(w["status"] == "Healthy" for w in won)
    assert [(r.status_code, r.json()) for r in lost] == \
        [(503, {"error": "no pooled instance available"})]
    for claimed in won:
        page = eventually(lambda c=claimed: (r := via_url(c["url"], EDGE_HTTP))
                          .status_code == 200 and r)
        assert "HOSTNAME" in page.text
    loser = people[[r.status_code for r in answers].index(503)]
    late = eventually(lambda: (r := loser("GET", "/run/pooled")).status_code == 200 and r.json(),
                      within=60)  # the pool refilled in the background
    assert late["uuid"] not in pooled and late["status"] == "Healthy"
    eventually(lambda: sum(s == "pooled" for s in members().values()) == 2)
