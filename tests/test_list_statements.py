"""Lists answer in a constant number of SQL statements, whatever their length: each list
endpoint is asked at 10 rows and at 50 (more than a default page), and must not run more
statements for the longer one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import event

from launchbay.settings import Settings
from launchbay.store.models import (
    ApiToken,
    AutoDeployPolicy,
    Backup,
    BackupCopy,
    BackupDestination,
    BackupPolicy,
    Deployment,
    Resource,
    SourceEvent,
    utcnow,
)

from support import Api, free_port, make_app


@pytest.fixture
def settings(tmp_path: Any, database_url: str) -> Settings:
    """With the edge proxy on (never started here): lists then name generated URLs."""
    return Settings(data_dir=tmp_path / "data", database_url=database_url, edge_enabled=True,
                    edge_http_port=free_port(), edge_admin=f"127.0.0.1:{free_port()}",
                    instance_quota=300,
                    shipped_templates=False)


def statements(cp: Any, call: Callable[[], Any]) -> int:
    count = 0

    def counted(*_: Any) -> None:
        nonlocal count
        count += 1

    event.listen(cp.engine, "before_cursor_execute", counted)
    try:
        call()
    finally:
        event.remove(cp.engine, "before_cursor_execute", counted)
    return count


def grow(cp: Any, admin: Api, ids: dict[str, str], upto: int, have: list[str]) -> None:
    """Resources in the app's environment, each serving a release (made so in the store: no
    engine runs here) and with a domain; and projects with an environment; up to `upto`."""
    while len(have) < upto:
        n = len(have)
        resource = admin.post("/resources", {
            "projectId": ids["project"], "environmentId": ids["env"], "name": f"app-{n}",
            "source": {"kind": "docker-image", "imageName": "lbtest/hello", "imageTag": "v1"},
            "networkProfile": {"internalPort": 8080}})["id"]
        deployment = admin.post("/deployments", {
            "projectId": ids["project"], "environmentId": ids["env"],
            "resourceId": resource})["id"]
        with cp.sessions() as db:
            d = db.get_one(Deployment, deployment)
            d.status, d.host_port = "succeeded", 40000 + n
            db.get_one(Resource, resource).current_deployment_id = deployment
            db.commit()
        admin.post("/domain-bindings", {
            "projectId": ids["project"], "environmentId": ids["env"], "resourceId": resource,
            "domainName": f"app-{n}.example.com", "tlsMode": "auto"})
        admin.post("/hosted-deployments/images", {"image": "lbtest/hello:v1",
                                                  "name": f"hosted-{n}", "containerPort": 8080})
        admin.post("/templates", {"name": f"lab-{n}", "ttl": 3600,
                                  "blueprint": {"image": "lbtest/hello:v1"}})
        admin.post("/instances", {"template": f"lab-{n}"})
        dployr = admin.client.post("/compat/dployr/deployments", json={
            "name": f"svc-{n}", "user_id": "u1", "source": "image",
            "runtime": {"type": "docker"}, "image": "lbtest/hello:v1", "port": 8080},
            headers={"Authorization": f"Bearer {admin.token}"})
        assert dployr.status_code == 201, dployr.text
        volume = admin.post("/storage-volumes", {"projectId": ids["project"],
                                                 "environmentId": ids["env"],
                                                 "name": f"data-{n}"})["id"]
        admin.post(f"/resources/{resource}/storage-attachments",
                   {"storageVolumeId": volume, "destinationPath": "/data"})
        admin.post("/account/tokens", {"displayName": f"ci-{n}", "scopes": ["*"]})
        admin.post(f"/organizations/{admin.org_id}/invitations",
                   {"email": f"dev-{n}@example.com", "role": "developer"})
        database = admin.post("/dependency-resources/import", {
            "kind": "postgres", "projectId": ids["project"], "environmentId": ids["env"],
            "name": f"db-{n}", "connectionUrl": f"postgresql://u:p@db-{n}.example.com/x"})["id"]
        admin.post(f"/resources/{ids['resource']}/dependency-bindings", {
            "dependencyResourceId": database, "targetName": f"DB_{n}_URL",
            "discreteVariables": False})
        with cp.sessions() as db:  # backups, policies and destinations need no engine here
            db.add(Backup(id=f"dbk_{n}", organization_id=admin.org_id,
                          database_id=ids.setdefault("database", database),
                          kind="postgres", status="ready", restore_work_id=f"wrk_{n}"))
            db.add(BackupDestination(id=f"dst_{n}", organization_id=admin.org_id,
                                     name=f"s3-{n}", endpoint="https://s3.example.com",
                                     bucket="backups", sealed_credentials="sealed"))
            db.flush()
            db.add(BackupCopy(backup_id=f"dbk_{n}", destination_id=f"dst_{n}",
                              object_key=f"k{n}", status="uploaded"))
            db.add(Backup(id=f"vbk_{n}", organization_id=admin.org_id,
                          storage_volume_id=ids.setdefault("volume", volume), kind="volume",
                          status="ready", restore_work_id=f"wrk_{n}"))
            db.add(SourceEvent(id=f"sev_{n}", organization_id=admin.org_id,
                               source_kind="github", event_kind="push", delivery_id=f"d-{n}",
                               repository="github.com/a/b", ref="main", revision="a" * 40,
                               resource_ids=[resource],
                               policy_results=[{"resourceId": resource, "status": "ignored",
                                                "reason": "ref-not-matched"}]))
            db.add(AutoDeployPolicy(resource_id=resource, organization_id=admin.org_id,
                                    fingerprint=f"src_{n}", repository=f"github.com/a/r{n}",
                                    refs=["main"], event_kinds=["push"], include_paths=[],
                                    exclude_paths=[], sealed_webhook_secret="sealed",
                                    created_by=admin.user_id))
            db.add(ApiToken(id=f"dtk_{n}", user_id=admin.user_id, organization_id=admin.org_id,
                            display_name=f"ci-{n}", scopes=["*"], kind="deploy",
                            token_hash=f"{n:064d}", secret_suffix="abcd",
                            targets={"resourceIds": [resource],
                                     "workflowCommands": ["deploy"]}))
            db.add(BackupPolicy(id=f"dbp_{n}", organization_id=admin.org_id,
                                database_id=database, created_by=admin.user_id,
                                interval_hours=24, next_run_at=utcnow()))
            db.commit()
        project = admin.post("/projects", {"name": f"project-{n}"})["id"]
        admin.post("/environments", {"projectId": project, "name": "production"})
        have.append(resource)


LISTS = ["/api/projects", "/api/environments", "/api/resources", "/api/deployments",
         "/api/domain-bindings", "/api/certificates", "/api/operator-work", "/api/audit-events",
         "/api/servers", "/api/hosted-deployments", "/api/instances",
         "/api/instance-admin/instances", "/api/instance-templates", "/api/storage-volumes",
         "/api/account/tokens", "/api/account/sessions", "/api/templates", "/api/proxy/routes",
         "/api/blueprints/deployments", "/api/blueprints/services", "/api/usage-intents",
         "/api/plans", "/api/instance-admin/templates", "/api/default-access-domain-policies",
         "/api/dependency-resources", "/api/dependency-resources/backup-policies",
         "/api/backup-destinations", "/api/source-events", "/api/deploy-tokens",
         "/api/source-links"]
# Lists `grow` does not lengthen (asked all the same: their count must not grow either).
UNGROWN = {"/api/servers", "/api/account/sessions", "/api/plans", "/api/usage-intents",
           "/api/proxy/routes", "/api/default-access-domain-policies"}
UNGROWN_SUFFIX = "/members"  # an invitation is not a member until accepted


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_list_runs_as_many_statements_for_50_rows_as_for_10(admin, cp, client):
    ids = make_app(admin, "lbtest/hello:v1")
    admin.post("/plans/assignments", {"targetOrganizationId": admin.org_id,
                                      "plan": "enterprise"})
    have: list[str] = []
    api_key = admin.post("/account/tokens", {"displayName": "k", "scopes": ["*"]})["token"]
    pages = [*LISTS, f"/api/organizations/{admin.org_id}/members",
             f"/api/resources/{ids['resource']}/dependency-bindings",
             "/api/dependency-resources/{database}/backups",  # made by `grow`
             "/api/storage-volumes/{volume}/backups",
             f"/api/organizations/{admin.org_id}/invitations",
             f"/projects/{ids['project']}", "/projects",
             f"/resources/{ids['resource']}", "/compat/dploy/api/environments",
             "/compat/dploy/api/environments/available", "/compat/dploy/api/admin/instances",
             "/compat/dploy/api/admin/templates", "/compat/shipyard/api/deployments",
             "/compat/dployr/deployments", "/compat/dployr/services"]
    counts: dict[str, list[int]] = {page: [] for page in pages}
    for size in (10, 50):
        grow(cp, admin, ids, size, have)
        for page in pages:
            def get(page: str = page, size: int = size) -> None:
                token = api_key if "/shipyard/" in page else admin.token
                answer = client.get(page.format(**ids),
                                    headers={"Authorization": f"Bearer {token}"})
                assert answer.status_code == 200, (page, answer.text[:200])
                listed = answer.json() if "/api/" in page else None
                rows = next((v for v in listed.values() if isinstance(v, list)), []) \
                    if isinstance(listed, dict) else listed or []
                assert "/api/" not in page or page in UNGROWN or page.endswith(UNGROWN_SUFFIX) or \
                    len(rows) >= min(size, 20), (page, len(rows))  # a default page holds 20 or more
            # the fewer of two asks: a session's activity stamp (once a minute) is not the list's
            counts[page].append(min(statements(cp, get), statements(cp, get)))
    grown = {page: c for page, c in counts.items() if c[1] > c[0]}
    assert grown == {}, (grown, counts)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_list_sorts_and_the_health_prunes_use_indexes(cp):
    from sqlalchemy import text

    plans = {
        "deployments by organization, newest first": "SELECT id FROM deployments WHERE "
        "organization_id = 'o' ORDER BY created_at DESC LIMIT 50",
        "work by organization, newest first": "SELECT id FROM operator_work WHERE "
        "organization_id = 'o' ORDER BY created_at DESC LIMIT 50",
        "resources by name": "SELECT id FROM resources WHERE organization_id = 'o' "
        "ORDER BY name LIMIT 100",
        "a project's resources by name": "SELECT id FROM resources WHERE project_id = 'p' "
        "ORDER BY name LIMIT 50",
        "a project's deployments, newest first": "SELECT id FROM deployments WHERE "
        "project_id = 'p' ORDER BY created_at DESC LIMIT 50",
        "the prune of old health observations": "SELECT id FROM health_observations "
        "WHERE observed_at < '2026-01-01'",
        "the prune of old health rollups": "SELECT resource_id FROM health_rollups "
        "WHERE hour < '2026-01-01'",
    }
    with cp.engine.connect() as conn:
        for what, query in plans.items():
            plan = " ".join(str(row[-1]) for row in conn.execute(
                text(f"EXPLAIN QUERY PLAN {query}")))
            assert "USING INDEX" in plan and "TEMP B-TREE" not in plan, (what, plan)
