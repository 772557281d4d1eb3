"""Lists answer in a constant number of SQL statements, whatever their length: each list
endpoint is asked at 10 rows and at 50 (more than a default page), and must not run more
statements for the longer one."""

from __future__ import annotations

import re
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
    PreviewEnvironment,
    Resource,
    ScheduledTask,
    ScheduledTaskRun,
    SourceEvent,
    SshCredential,
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
            db.add(PreviewEnvironment(
                id=f"pen_{n}", organization_id=admin.org_id, project_id=ids["project"],
                resource_id=resource, base_environment_id=ids["env"],
                environment_id=ids["env"], preview_resource_id=resource,
                last_deployment_id=deployment, server_id=d.server_id,
                fingerprint=f"pvw_{n}", provider="github", repository="github.com/a/b",
                head_repository="github.com/a/b", pull_request_number=n + 1, base_ref="main",
                head_ref=f"fix-{n}", head_sha="c" * 40, created_by=admin.user_id))
            db.add(SshCredential(id=f"ssh_{n}", organization_id=admin.org_id, name=f"key-{n}",
                                 key_type="ed25519", key_bits=256, fingerprint=f"SHA256:{n}",
                                 public_key="ssh-ed25519 AAAA", sealed_private_key="sealed",
                                 created_by=admin.user_id))
            db.add(BackupPolicy(id=f"dbp_{n}", organization_id=admin.org_id,
                                database_id=database, created_by=admin.user_id,
                                interval_hours=24, next_run_at=utcnow()))
            db.add(ScheduledTask(id=f"tsk_{n}", organization_id=admin.org_id,
                                 project_id=ids["project"], environment_id=ids["env"],
                                 resource_id=resource, created_by=admin.user_id,
                                 name=f"job-{n}", schedule="@daily", command_kind="shell",
                                 command=["echo hi"], next_fire_at=utcnow()))
            db.flush()
            db.add(ScheduledTaskRun(id=f"run_{n}", organization_id=admin.org_id,
                                    task_id=f"tsk_{n}", resource_id=resource,
                                    server_id=d.server_id, trigger_kind="manual",
                                    scheduled_for=utcnow(), status="succeeded"))
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
         "/api/source-links", "/api/preview-environments", "/api/credentials/ssh",
         "/api/scheduled-tasks", "/api/scheduled-task-runs"]
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


# Every filter a list offers, with a value that selects something; `{…}` are `ids`.
FILTERED = [
    "/api/environments?projectId={project}", "/api/resources?projectId={project}",
    "/api/resources?environmentId={env}", "/api/audit-events?aggregateId={resource}",
    "/api/audit-events?eventType=resource.created",
    "/api/deployments?projectId={project}", "/api/deployments?resourceId={resource}",
    "/api/deployments?status=succeeded", "/api/deployments?statuses=succeeded,failed",
    "/api/domain-bindings?projectId={project}", "/api/domain-bindings?environmentId={env}",
    "/api/domain-bindings?resourceId={resource}", "/api/operator-work?kind=deployment",
    "/api/operator-work?status=pending", "/api/operator-work?resourceId={resource}",
    "/api/operator-work?deploymentId={deployment}", "/api/operator-work?serverId={server}",
    "/api/dependency-resources?projectId={project}",
    "/api/dependency-resources?environmentId={env}", "/api/dependency-resources?kind=postgres",
    "/api/storage-volumes?projectId={project}", "/api/storage-volumes?environmentId={env}",
    "/api/source-events?resourceId={resource}", "/api/source-events?projectId={project}",
    "/api/source-events?status=ignored", "/api/source-events?sourceKind=github",
    "/api/deploy-tokens?resourceId={resource}", "/api/source-links?resourceId={resource}",
    "/api/source-links?projectId={project}", "/api/preview-environments?resourceId={resource}",
    "/api/preview-environments?projectId={project}",
    "/api/resources/{resource}/health-history", "/api/deployments/{deployment}/logs",
    "/api/deployments/{deployment}/events", "/api/deployments/{deployment}",
    "/api/resources/{resource}", "/api/projects/{project}/resource-urls",
    "/api/scheduled-tasks?resourceId={resource}", "/api/scheduled-tasks?projectId={project}",
    "/api/scheduled-tasks?environmentId={env}", "/api/scheduled-tasks?status=enabled",
    "/api/scheduled-task-runs?taskId=tsk_0", "/api/scheduled-task-runs?resourceId={resource}",
    "/api/scheduled-task-runs?status=succeeded", "/api/scheduled-task-runs?triggerKind=manual",
]
# Filters on what a row holds in a list (JSON) or a joined row has: the rows are walked
# newest first in the organization's index, filtered, until the page is full.
UNINDEXED = {"/api/source-events": {"resource_id"}, "/api/deploy-tokens": {"resource_id"},
             "/api/source-links": {"project_id"},
             "/api/scheduled-tasks": {"project_id", "environment_id"}}
# Tables a store of thousands of apps holds thousands (or millions) of rows of.
LARGE = {"organizations", "instances", "resources", "deployments", "deployment_entries",
         "operator_work", "audit_events", "health_observations", "health_rollups",
         "domain_bindings", "source_events", "environment_variables", "databases",
         "database_bindings", "database_backups", "storage_volumes", "storage_attachments",
         "api_tokens", "sessions", "environments", "projects", "auto_deploy_policies",
         "preview_environments", "ssh_credentials", "scheduled_tasks", "scheduled_task_runs"}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_list_filter_uses_an_index_without_statistics(admin, cp):
    """Each statement of every filtered list, as the API runs it, searches an index of each
    large table it reads and sorts in no temporary B-tree, before SQLite has any statistics
    (a young store; without them the planner goes by the indexes' shapes alone)."""
    ids = make_app(admin, "lbtest/hello:v1")
    admin.post("/plans/assignments", {"targetOrganizationId": admin.org_id,
                                      "plan": "enterprise"})
    have: list[str] = []
    grow(cp, admin, ids, 3, have)
    ids["resource"] = have[0]  # serving a release, with a domain
    ids["deployment"] = admin.get("/deployments", params={"resourceId": have[0]})["items"][0]["id"]
    ids["server"] = admin.get("/servers")["items"][0]["id"]
    with cp.engine.connect() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS sqlite_stat1")
        conn.commit()
    cp.engine.dispose()
    seen: list[tuple[str, Any]] = []

    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    bad = []
    for page in [*LISTS, *FILTERED]:
        seen.clear()
        event.listen(cp.engine, "before_cursor_execute", keep)
        try:
            path, _, query = page.format(**ids).partition("?")
            answer = admin.client.get(path, params=dict(
                q.split("=", 1) for q in query.split("&") if q),
                headers={"Authorization": f"Bearer {admin.token}"})
        finally:
            event.remove(cp.engine, "before_cursor_execute", keep)
        assert answer.status_code == 200, (page, answer.text[:300])
        filtered = {re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
                    for name in re.findall(r"(\w+Id)=", page)}
        searched = set()
        with cp.engine.connect() as conn:
            for statement, parameters in seen:
                plan = [row[-1] for row in conn.exec_driver_sql(
                    f"EXPLAIN QUERY PLAN {statement}", parameters)]
                scans = [step for step in plan if step.startswith("SCAN ")
                         and step.split()[1] in LARGE
                         and not (" LIMIT " in statement and " USING " in step)]
                first = next((step for step in plan if step.startswith(("SCAN", "SEARCH"))),
                             "")
                # A page of a large table (a LIMIT) is read in order from an index; the rows
                # of a page's own children (bindings of its resources...) may be sorted.
                sorts = [step for step in plan if "TEMP B-TREE FOR ORDER BY" in step
                         and " LIMIT " in statement and first.split()[1] in LARGE]
                if scans or sorts:
                    bad.append((page, " ".join(statement.split()), plan))
                searched |= {c for c in filtered if f"{c}=?" in first}
        if filtered - searched - UNINDEXED.get(page.split("?")[0], set()):
            # the list found its rows by what it is filtered on
            bad.append((page, "no statement searches an index by", filtered - searched))
    assert bad == [], "\n".join(map(str, bad))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_health_prunes_use_indexes(cp):
    from sqlalchemy import text

    plans = {
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


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_read_takes_one_connection_and_one_transaction(admin, cp, client):
    """An API read and a console page authenticate and run all their operations in one store
    session: one connection from the pool, one transaction (the role looked up once)."""
    ids = make_app(admin, "lbtest/hello:v1")
    admin.post("/plans/assignments", {"targetOrganizationId": admin.org_id,
                                      "plan": "enterprise"})
    have: list[str] = []
    grow(cp, admin, ids, 2, have)
    checkouts, begins = [], []
    event.listen(cp.engine, "checkout", lambda *_: checkouts.append(1))
    event.listen(cp.engine, "begin", lambda *_: begins.append(1))
    for page in ["/api/resources", "/api/deployments", f"/api/resources/{have[0]}",
                 f"/projects/{ids['project']}", f"/resources/{have[0]}"]:
        client.get(page, headers={"Authorization": f"Bearer {admin.token}"})  # the stamp
        checkouts.clear()
        begins.clear()
        answer = client.get(page, headers={"Authorization": f"Bearer {admin.token}"})
        assert answer.status_code == 200, (page, answer.text[:200])
        assert (len(checkouts), len(begins)) == (1, 1), page
