"""Authorization: other organizations' objects are invisible (404), viewers cannot change
anything (403), and tokens act within their scopes."""

from __future__ import annotations

import pytest

from launchbay.http.native import ROUTES
from launchbay.operations import CATALOG
from launchbay.store.models import (
    ApiToken,
    AutoDeployPolicy,
    Backup,
    BackupDestination,
    BackupPolicy,
    CredentialRotation,
    PreviewEnvironment,
    ScheduledTask,
    ScheduledTaskRun,
    SourceEvent,
    SshCredential,
    utcnow,
)

from support import Api, add_member, snapshot


@pytest.fixture
def world(admin: Api, cp):
    """Organization A (the admin's) with a project, an environment and a secret; organization
    B whose only member is Bob."""
    project = admin.post("/projects", {"name": "alpha"})["id"]
    env = admin.post("/environments", {"projectId": project, "name": "prod"})["id"]
    other_env = admin.post("/environments", {"projectId": project, "name": "stage"})["id"]
    admin.post(f"/environments/{env}/variables", {"key": "TOKEN", "value": "a-secret",
                                                  "kind": "secret"})
    resource = admin.post("/resources", {
        "projectId": project, "environmentId": env, "name": "web",
        "source": {"kind": "docker-image", "imageName": "lbtest/hello", "imageTag": "v1"},
        "networkProfile": {"internalPort": 8080}})["id"]
    admin.post(f"/resources/{resource}/variables", {"key": "TOKEN", "value": "x"})
    volume = admin.post("/storage-volumes", {"projectId": project, "environmentId": env,
                                             "name": "data"})["id"]
    attachment = admin.post(f"/resources/{resource}/storage-attachments",
                            {"storageVolumeId": volume, "destinationPath": "/data"})["id"]
    # No workers run here: the deployment stays `created`, its work item `pending`.
    deployment = admin.post("/deployments", {"projectId": project, "environmentId": env,
                                             "resourceId": resource})["id"]
    binding = admin.post("/domain-bindings", {
        "projectId": project, "environmentId": env, "resourceId": resource,
        "domainName": "shop.example.com", "tlsMode": "auto"})["id"]
    certificate = admin.get("/certificates")["items"][0]["id"]
    work = admin.get("/operator-work", params={"kind": "deployment"})["items"][0]["id"]
    database = admin.post("/dependency-resources/import", {
        "kind": "postgres", "projectId": project, "environmentId": env, "name": "ext",
        "connectionUrl": "postgresql://u:pw@db.example.com:5432/shop"})["id"]
    db_binding = admin.post(f"/resources/{resource}/dependency-bindings", {
        "dependencyResourceId": database, "targetName": "DATABASE_URL"})["id"]
    plan = admin.post("/dependency-resources/provisioning/plan", {"mode": "create", "create": {
        "kind": "redis", "projectId": project, "environmentId": env, "name": "cache"}})
    with cp.sessions() as s:  # a backup (of a managed database: no engine runs here)
        s.add(Backup(id="dbk_world", organization_id=admin.org_id,
                     database_id=database, kind="postgres", status="ready"))
        s.add(BackupDestination(id="dst_world", organization_id=admin.org_id, name="s3",
                                endpoint="https://s3.example.com", bucket="backups",
                                sealed_credentials="sealed"))
        s.add(BackupPolicy(id="dbp_world", organization_id=admin.org_id, database_id=database,
                           created_by=admin.user_id, interval_hours=24))
        s.add(Backup(id="vbk_world", organization_id=admin.org_id, storage_volume_id=volume,
                     kind="volume", status="ready"))
        s.add(ApiToken(id="tok_world", user_id=admin.user_id, organization_id=admin.org_id,
                       display_name="ci", scopes=["*"], kind="deploy", token_hash="0" * 64,
                       secret_suffix="abcd", targets={"resourceIds": [resource],
                                                      "workflowCommands": ["deploy"]}))
        s.add(AutoDeployPolicy(resource_id=resource, organization_id=admin.org_id,
                               fingerprint="src_world", repository="github.com/acme/web",
                               refs=["main"], event_kinds=["push"], include_paths=[],
                               exclude_paths=[], sealed_webhook_secret="sealed",
                               created_by=admin.user_id))
        s.add(SourceEvent(id="sev_world", organization_id=admin.org_id, project_id=project,
                          source_kind="github", event_kind="push", delivery_id="d-1",
                          repository="github.com/acme/web", ref="main", revision="a" * 40,
                          resource_ids=[resource]))
        s.add(PreviewEnvironment(id="pen_world", organization_id=admin.org_id,
                                 project_id=project, resource_id=resource,
                                 base_environment_id=env, server_id=admin.get("/servers")[
                                     "items"][0]["id"], fingerprint="pvw_world",
                                 provider="github", repository="github.com/acme/web",
                                 head_repository="github.com/acme/web", pull_request_number=1,
                                 base_ref="main", head_ref="fix", head_sha="b" * 40,
                                 created_by=admin.user_id))
        s.add(SshCredential(id="ssh_world", organization_id=admin.org_id, name="deploy",
                            key_type="ed25519", key_bits=256, fingerprint="SHA256:x",
                            public_key="ssh-ed25519 AAAA", sealed_private_key="sealed",
                            created_by=admin.user_id))
        s.add(CredentialRotation(id="rot_world", organization_id=admin.org_id,
                                 database_id=database, binding_id=db_binding,
                                 requested_by=admin.user_id, version=2, status="redeploying"))
        s.add(ScheduledTask(id="tsk_world", organization_id=admin.org_id, project_id=project,
                            environment_id=env, resource_id=resource, created_by=admin.user_id,
                            name="report", schedule="@daily", command_kind="shell",
                            command=["echo report"]))
        s.flush()
        s.add(ScheduledTaskRun(id="run_world", organization_id=admin.org_id,
                               task_id="tsk_world", resource_id=resource, server_id="srv_x",
                               trigger_kind="manual", scheduled_for=utcnow(),
                               status="succeeded"))
        s.commit()
    org_b = admin.post("/organizations", {"name": "Beta"})["organizationId"]
    bob = add_member(admin, org_b, "bob@example.com", "admin")
    return {"database": database, "db_binding": db_binding, "backup": "dbk_world",
            "plan": plan["plan"]["id"],
            "project": project, "env": env, "other_env": other_env, "org_b": org_b, "bob": bob,
            "resource": resource, "volume": volume, "attachment": attachment,
            "deployment": deployment, "work": work, "binding": binding,
            "certificate": certificate}


def _member_id(api: Api, org_id: str, user_id: str) -> str:
    return next(m["memberId"] for m in api.get(f"/organizations/{org_id}/members")["items"]
                if m["userId"] == user_id)


def test_user_of_another_organization_gets_404_and_changes_nothing(admin, world, cp):
    bob: Api = world["bob"]
    assert bob.get("/organizations/current-context")["currentOrganization"]["name"] == "Beta"
    assert bob.get("/projects")["items"] == []
    before = snapshot(cp)
    p, e = world["project"], world["env"]
    attempts = [
        ("GET", f"/projects/{p}", None),
        ("GET", f"/projects/{p}/delete-check", None),
        ("POST", f"/projects/{p}/rename", {"name": "stolen"}),
        ("POST", f"/projects/{p}/archive", {}),
        ("DELETE", f"/projects/{p}", {"confirmation": {"projectId": p}}),
        ("GET", f"/environments/{e}", None),
        ("GET", f"/environments/{e}/effective-precedence", None),
        ("GET", f"/environments/{e}/diff/{world['other_env']}", None),
        ("POST", f"/environments/{e}/variables", {"key": "X", "value": "1"}),
        ("DELETE", f"/environments/{e}/variables/TOKEN", {"exposure": "runtime"}),
        ("POST", f"/environments/{e}/clone", {"targetName": "mine"}),
        ("POST", f"/environments/{e}/rename", {"name": "mine"}),
        ("POST", f"/environments/{e}/lock", {}),
        ("DELETE", f"/environments/{world['other_env']}",
         {"confirmation": {"environmentName": "stage"}}),
        ("POST", "/environments", {"projectId": p, "name": "mine"}),
        ("GET", f"/organizations/{admin.org_id}/members", None),
        ("POST", f"/organizations/{admin.org_id}/profile", {"name": "stolen"}),
        ("POST", f"/organizations/{admin.org_id}/invitations",
         {"email": "evil@example.com", "role": "admin"}),
        ("GET", f"/resources/{world['resource']}", None),
        ("GET", f"/resources/{world['resource']}/effective-config", None),
        ("GET", f"/resources/{world['resource']}/secrets", None),
        ("GET", f"/resources/{world['resource']}/health", None),
        ("GET", f"/resources/{world['resource']}/health-history", None),
        ("POST", f"/resources/{world['resource']}/scale", {"replicas": 1}),
        ("POST", f"/resources/{world['resource']}/source",
         {"source": {"kind": "docker-image", "imageName": "evil"}}),
        ("DELETE", f"/resources/{world['resource']}", {"confirmation": {"resourceSlug": "web"}}),
        ("GET", f"/deployments/{world['deployment']}", None),
        ("GET", f"/deployments/{world['deployment']}/events", None),
        ("POST", f"/deployments/{world['deployment']}/cancel",
         {"confirm": world["deployment"]}),
        ("GET", f"/dependency-resources/{world['database']}", None),
        ("POST", f"/dependency-resources/{world['database']}/rename", {"name": "mine"}),
        ("DELETE", f"/dependency-resources/{world['database']}", None),
        ("GET", f"/dependency-resources/{world['database']}/backups", None),
        ("POST", f"/dependency-resources/{world['database']}/backups", {}),
        ("GET", f"/dependency-resources/backups/{world['backup']}", None),
        ("GET", "/dependency-resources/backup-policies/dbp_world", None),
        ("DELETE", "/backup-destinations/dst_world", None),
        ("GET", f"/dependency-resources/provisioning/{world['plan']}", None),
        ("POST", f"/dependency-resources/provisioning/{world['plan']}/accept",
         {"acknowledgeMutation": True}),
        ("POST", "/dependency-resources/backup-policies/dbp_world/runs", {}),
        ("POST", "/dependency-resources/backup-policies", {
            "dependencyResourceId": world["database"], "scheduleIntervalHours": 1}),
        ("POST", f"/dependency-resources/backups/{world['backup']}/restore",
         {"acknowledgeDataOverwrite": True}),
        ("GET", f"/resources/{world['resource']}/dependency-bindings", None),
        ("GET", f"/resources/{world['resource']}/dependency-bindings/{world['db_binding']}",
         None),
        ("DELETE", f"/resources/{world['resource']}/dependency-bindings/{world['db_binding']}",
         None),
        ("POST", f"/resources/{world['resource']}/dependency-bindings",
         {"dependencyResourceId": world["database"], "targetName": "STOLEN_URL"}),
        ("POST", f"/resources/{world['resource']}/dependency-bindings/{world['db_binding']}"
         "/secret-rotations", {"confirmHistoricalSnapshotsRemainUnchanged": True}),
        ("POST", "/dependency-resources/credential-rotations/rot_world/advance", {}),
        ("POST", f"/resources/{world['resource']}/auto-deploy", {"mode": "disable"}),
        ("POST", "/deploy-tokens", {"displayName": "ci", "scope": {
            "resourceIds": [world["resource"]], "workflowCommands": ["deploy"]}}),
        ("GET", "/deploy-tokens/tok_world", None),
        ("POST", "/deploy-tokens/tok_world/rotate", {}),
        ("GET", "/source-events/sev_world", None),
        ("GET", "/source-links/src_world", None),
        ("DELETE", "/source-links/src_world", None),
        ("POST", "/source-links/relink", {"sourceFingerprint": "src_world", "projectId": p,
                                          "environmentId": e, "resourceId": world["resource"]}),
        ("GET", f"/resources/{world['resource']}/auto-deploy", None),
        ("GET", "/preview-environments/pen_world", None),
        ("GET", "/credentials/ssh/ssh_world", None),
        ("DELETE", "/credentials/ssh/ssh_world", {"confirmation": {"credentialId": "ssh_world"}}),
        ("GET", "/scheduled-tasks/tsk_world", None),
        ("POST", "/scheduled-tasks/tsk_world", {"status": "disabled"}),
        ("DELETE", "/scheduled-tasks/tsk_world", {}),
        ("POST", "/scheduled-tasks/tsk_world/runs", {}),
        ("POST", "/scheduled-tasks/tsk_world/fires", {}),
        ("POST", "/scheduled-tasks", {"resourceId": world["resource"], "schedule": "@daily",
                                      "commandIntent": "echo bob"}),
        ("GET", "/scheduled-task-runs/run_world", None),
        ("GET", "/scheduled-task-runs/run_world/logs", None),
        ("GET", "/scheduled-task-runs/run_world/logs/stream", None),
        ("POST", "/preview-environments/pen_world/expire", {}),
        ("DELETE", f"/resources/{world['resource']}/preview-environments/pen_world", None),
        ("POST", "/deployments/cleanup-preview", {"sourceFingerprint": "pvw_world"}),
        ("POST", "/preview-policies", {"scope": {"kind": "project", "projectId": p}}),
        ("POST", "/preview-policies/show", {"scope": {"kind": "resource", "projectId": p,
                                                      "resourceId": world["resource"]}}),
        ("POST", "/source-events/sev_world/replay", {}),
        ("POST", "/source-events/sev_world/dispatches", {"resourceId": world["resource"]}),
        ("POST", "/dependency-resources/provision", {"kind": "postgres", "projectId": p,
                                                      "environmentId": e, "name": "mine"}),
        ("GET", f"/storage-volumes/{world['volume']}", None),
        ("DELETE", f"/storage-volumes/{world['volume']}", None),
        ("GET", f"/storage-volumes/{world['volume']}/backups", None),
        ("POST", f"/storage-volumes/{world['volume']}/backups", {}),
        ("POST", f"/storage-volumes/{world['volume']}/runtime-cleanup",
         {"serverId": admin.get("/servers")["items"][0]["id"],
          "before": "2100-01-01T00:00:00Z", "dryRun": False,
          "acknowledgeDataLoss": True}),
        ("GET", "/storage-volume-backups/vbk_world", None),
        ("POST", "/storage-volume-backups/vbk_world/restore", {"environmentId": e}),
        ("GET", f"/operator-work/{world['work']}", None),
        ("GET", f"/operator-work/{world['work']}/events/stream", None),
        ("POST", f"/operator-work/{world['work']}/cancel", {}),
        ("GET", f"/domain-bindings/{world['binding']}", None),
        ("POST", f"/domain-bindings/{world['binding']}/route", {"routeBehavior": "serve"}),
        ("GET", f"/certificates/{world['certificate']}", None),
        ("POST", "/certificates/import", {"domainBindingId": world["binding"],
                                          "certificateChain": "x", "privateKey": "y"}),
    ]
    for method, path, body in attempts:
        response = bob.request(method, path, body)
        assert response.status_code == 404, (method, path, response.status_code, response.text)
        assert set(response.json()) == {"error", "code", "details"}
    assert bob.get("/environments/count")["count"] == 0
    assert bob.get("/resources")["items"] == [] and bob.get("/deployments")["items"] == []
    assert bob.get("/operator-work")["items"] == []
    assert bob.get("/dependency-resources")["items"] == []
    assert bob.get("/dependency-resources/count")["count"] == 0
    assert bob.get("/dependency-resources/backup-policies")["items"] == []
    assert bob.get("/backup-destinations")["items"] == []
    assert bob.get("/preview-environments")["items"] == []
    assert snapshot(cp) == before
    assert admin.get(f"/projects/{p}")["name"] == "alpha"


def test_switching_into_a_foreign_organization_is_404(admin, world):
    bob: Api = world["bob"]
    response = bob.request("POST", "/organizations/current-context/switch",
                           {"organizationId": admin.org_id})
    assert response.status_code == 404


# A valid input for every mutating operation of an organization, so that a 403 is the role's.
def _bodies(ids: dict[str, str]) -> dict[str, dict]:
    return {
        "organizations.update": {"name": "renamed"},
        "organizations.delete": {"confirmation": {"organizationId": ids["organizationId"]}},
        "organizations.members.role": {"role": "admin"},
        "organizations.members.remove": {},
        "organizations.owner-transfer": {"fromMemberId": ids["ownerMemberId"],
                                         "toMemberId": ids["memberId"]},
        "organizations.invitations.create": {"email": "new@example.com", "role": "viewer"},
        "projects.create": {"name": "new"},
        "projects.delete": {"confirmation": {"projectId": ids["projectId"]}},
        "projects.rename": {"name": "renamed"},
        "projects.describe": {"description": "d"},
        "projects.archive": {},
        "projects.restore": {},
        "environments.create": {"projectId": ids["projectId"], "name": "new"},
        "environments.lock": {},
        "environments.unlock": {},
        "environments.archive": {},
        "environments.delete": {"confirmation": {"environmentName": "renamed"}},
        "environments.clone": {"targetName": "copy"},
        "environments.rename": {"name": "renamed"},
        "environments.variables.set": {"key": "A", "value": "1"},
        "environments.variables.delete": {"exposure": "runtime"},
        "environments.promote": {"targetName": "next"},
        "resources.create": {"projectId": ids["projectId"], "environmentId": ids["environmentId"],
                             "name": "new"},
        "resources.archive": {},
        "resources.delete": {"confirmation": {"resourceSlug": "web"}},
        "resources.configure-source": {"source": {"kind": "docker-image", "imageName": "x"}},
        "resources.configure-runtime": {"runtimeProfile": {}},
        "resources.configure-network": {"networkProfile": {"internalPort": 80}},
        "resources.configure-access": {"accessProfile": {}},
        "resources.configure-health": {"healthCheck": {}},
        "resources.reset-health": {},
        "resources.variables.set": {"key": "A", "value": "1"},
        "resources.variables.delete": {"exposure": "runtime"},
        "resources.variables.import": {"content": "A=1"},
        "resources.secrets.create": {"key": "B", "value": "x"},
        "resources.secrets.rotate": {"value": "y"},
        "resources.secrets.delete": {},
        "resources.storage.attach": {"storageVolumeId": ids["storageVolumeId"],
                                     "destinationPath": "/other"},
        "resources.storage.detach": {},
        "resources.runtime.stop": {},
        "resources.runtime.start": {},
        "resources.runtime.restart": {},
        "resources.scale": {"replicas": 1},
        "deployments.create": {"projectId": ids["projectId"],
                               "environmentId": ids["environmentId"],
                               "resourceId": ids["resourceId"]},
        "deployments.cancel": {"confirm": ids["deploymentId"]},
        "deployments.retry": {},
        "deployments.redeploy": {},
        "deployments.rollback": {},
        "deployments.archive": {"confirm": ids["deploymentId"]},
        "deployments.prune": {"before": "2030-01-01T00:00:00Z"},
        "storage-volumes.create": {"projectId": ids["projectId"],
                                   "environmentId": ids["environmentId"], "name": "more"},
        "storage-volumes.rename": {"name": "renamed"},
        "dependency-resources.provision": {"kind": "postgres", "projectId": ids["projectId"],
                                           "environmentId": ids["environmentId"],
                                           "name": "new-db"},
        "dependency-resources.import": {"kind": "redis", "projectId": ids["projectId"],
                                        "environmentId": ids["environmentId"], "name": "cache",
                                        "connectionUrl": "redis://:pw@cache.example.com:6379/0"},
        "dependency-resources.rename": {"name": "renamed"},
        "dependency-resources.provisioning.plan": {"mode": "create", "create": {
            "kind": "postgres", "projectId": ids["projectId"],
            "environmentId": ids["environmentId"], "name": "planned"}},
        "dependency-resources.provisioning.accept": {"acknowledgeMutation": True},
        "dependency-resources.delete": {},
        "dependency-resources.backups.create": {},
        "dependency-resources.backup-policies.configure": {
            "dependencyResourceId": ids["dependencyResourceId"], "scheduleIntervalHours": 6,
            "retentionCount": 3},
        "dependency-resources.backup-policies.run": {},
        "backup-destinations.create": {"name": "s3", "endpoint": "https://s3.example.com",
                                       "bucket": "backups", "accessKeyId": "k",
                                       "secretAccessKey": "s"},
        "backup-destinations.delete": {},
        "dependency-resources.backups.restore": {"acknowledgeDataOverwrite": True},
        "resources.dependency-bindings.create": {
            "dependencyResourceId": ids["dependencyResourceId"], "targetName": "OTHER_URL",
            "discreteVariables": False},
        "resources.dependency-bindings.delete": {},
        "resources.dependency-bindings.secret-rotations.create": {
            "confirmHistoricalSnapshotsRemainUnchanged": True},
        "dependency-resources.credential-rotations.advance": {},
        "resources.auto-deploy.configure": {"mode": "disable"},
        "deploy-tokens.create": {"displayName": "ci", "scope": {
            "resourceIds": [ids["resourceId"]], "workflowCommands": ["deploy"]}},
        "deploy-tokens.rotate": {},
        "deploy-tokens.revoke": {},
        "source-events.replay": {},
        "preview-policies.configure": {"scope": {"kind": "project",
                                                 "projectId": ids["projectId"]}},
        "preview-environments.delete": {},
        "credentials.ssh.create": {"name": "key"},
        "servers.register": {"name": "srv", "host": "10.251.9.2", "credentialId": "ssh_world",
                             "hostKeyFingerprint": "SHA256:abcdefgh"},
        "servers.connectivity.test": {},
        "servers.host-key.pin": {"hostKeyFingerprint": "SHA256:abcdefgh"},
        "servers.rename": {"name": "renamed"},
        "servers.credentials.configure": {"credential": {"credentialId": "ssh_world"}},
        "servers.deactivate": {},
        "servers.delete": {"confirmation": {"serverId": ids["serverId"]}},
        "credentials.ssh.delete": {"confirmation": {"credentialId": "ssh_world"}},
        "credentials.ssh.rotate": {"privateKey": "x", "confirmation": {
            "credentialId": "ssh_world", "acknowledgeServerUsage": True}},
        "integrations.github.app-connection.configure": {
            "appId": "1", "installationId": "2", "privateKey": "x"},
        "integrations.github.app-connection.delete": {},
        "integrations.github.commit-statuses.report": {},
        "preview-environments.expire": {},
        "preview-environments.reconcile": {},
        "deployments.cleanup-preview": {"sourceFingerprint": "pvw_world"},
        "source-links.delete": {},
        "source-links.relink": {"sourceFingerprint": "src_world", "projectId": ids["projectId"],
                                "environmentId": ids["environmentId"],
                                "resourceId": ids["resourceId"]},
        "source-events.dispatch": {"resourceId": ids["resourceId"]},
        "source-events.prune": {"before": "2100-01-01T00:00:00Z", "dryRun": False},
        "storage-volumes.delete": {},
        "storage-volumes.backups.create": {},
        "storage-volumes.backups.restore": {},
        "storage-volumes.runtime-cleanup": {"serverId": ids["serverId"],
                                            "before": "2100-01-01T00:00:00Z", "dryRun": False},
        "operator-work.retry": {},
        "operator-work.cancel": {},
        "operator-work.dead-letter": {},
        "operator-work.mark-recovered": {},
        "operator-work.prune": {"before": "2030-01-01T00:00:00Z"},
        "domain-bindings.create": {"projectId": ids["projectId"],
                                   "environmentId": ids["environmentId"],
                                   "resourceId": ids["resourceId"],
                                   "domainName": "viewer.example.com", "tlsMode": "disabled"},
        "domain-bindings.delete": {"confirmation": {"domainBindingId": ids["domainBindingId"]}},
        "domain-bindings.route": {"routeBehavior": "serve"},
        "domain-bindings.confirm-ownership": {},
        "domain-bindings.retry-verification": {},
        "certificates.import": {"domainBindingId": ids["domainBindingId"],
                                "certificateChain": "x", "privateKey": "y"},
        "certificates.issue-or-renew": {"domainBindingId": ids["domainBindingId"]},
        "certificates.retry": {},
        "certificates.revoke": {},
        "certificates.delete": {},
        "servers.edge-proxy.configure": {"proxyKind": "caddy"},
        "servers.edge-proxy.bootstrap": {},
        "default-access-domain-policies.configure": {"mode": "disabled"},
        "servers.capacity.prune": {},
        "blueprints.deploy": {"name": "x", "source": "image", "runtime": {"type": "docker"},
                              "image": "lbtest/hello:v1"},
        "blueprints.services.update": {"port": 8081},
        "blueprints.services.delete": {},
        "proxy.restart": {},
        "proxy.routes.add": {"domain": "viewer.example.com", "upstream": "http://10.0.0.1:80"},
        "proxy.routes.remove": {},
        "system.doctor": {},
        "system.install": {},
        "instance-claims.issue": {"instanceId": "inst_1"},
        "plans.assign": {"targetOrganizationId": ids["organizationId"], "plan": "enterprise"},
        "usage-intents.record": {"idempotencyKey": "k", "capabilityKey": "c", "source": "s"},
        "deployments.hosted.deploy-image": {"image": "lbtest/hello:v1"},
        "deployments.hosted.delete": {},
        "deployments.hosted.restart": {},
        "deployments.hosted.configure": {"configData": {"A": "1"}},
        "deployments.hosted.create": {"template": "hello"},
        "deployments.hosted.auto-update.configure": {"enabled": True},
        "deployments.hosted.auto-update.apply": {},
        "templates.create": {"name": "viewer-made", "blueprint": {"image": "lbtest/hello:v1"}},
        "templates.update": {"description": "changed"},
        "templates.disable": {},
        "instances.run": {"template": "hello"},
        "instances.extend": {},
        "instances.delete": {},
        "instances.expire": {},
        "instances.pool.fill": {},
        "scheduled-tasks.create": {"resourceId": ids["resourceId"], "schedule": "@daily",
                                   "commandIntent": "echo viewer"},
        "scheduled-tasks.configure": {"status": "disabled"},
        "scheduled-tasks.delete": {},
        "scheduled-tasks.run-now": {},
        "scheduled-tasks.fire": {},
    }


def test_viewer_gets_403_on_every_mutating_operation(admin, world, cp):
    viewer = add_member(admin, admin.org_id, "viola@example.com", "viewer")
    ids = {"projectId": world["project"], "environmentId": world["env"],
           "organizationId": admin.org_id, "memberId": viewer.member_id,
           "ownerMemberId": _member_id(admin, admin.org_id, admin.user_id), "key": "TOKEN",
           "resourceId": world["resource"], "deploymentId": world["deployment"],
           "storageVolumeId": world["volume"], "attachmentId": world["attachment"],
           "workId": world["work"], "domainBindingId": world["binding"],
           "certificateId": world["certificate"], "serviceId": world["resource"],
           "serverId": admin.get("/servers")["items"][0]["id"],
           "domain": "viewer.example.com", "name": "some-app", "deploymentName": "some-app",
           "template": "hello", "uuid": "0000abcd", "dependencyResourceId": world["database"],
           "backupId": world["backup"], "bindingId": world["db_binding"],
           "policyId": "dbp_world", "destinationId": "dst_world", "planId": world["plan"],
           "rotationId": "rot_world", "sourceEventId": "sev_world", "tokenId": "tok_world",
           "sourceFingerprint": "src_world", "previewEnvironmentId": "pen_world",
           "credentialId": "ssh_world", "taskId": "tsk_world"}
    bodies = _bodies(ids)
    mutating = [(m, p, k) for m, p, k, _ in ROUTES
                if CATALOG[k].mutates and CATALOG[k].scope == "organization"]
    assert {k for _, _, k in mutating} == set(bodies), "every mutating operation needs a body here"
    before = snapshot(cp)
    for method, path, key in mutating:
        response = viewer.request(method, path.format(**ids), bodies[key])
        assert response.status_code == 403, (key, response.status_code, response.text)
        assert response.json()["code"] == "forbidden"
    assert snapshot(cp) == before
    # ...while reading works.
    assert viewer.get(f"/projects/{world['project']}")["name"] == "alpha"
    assert viewer.get(f"/environments/{world['env']}")["maskedVariables"][0]["value"] == "****"


def test_developer_deploys_but_does_not_manage_secrets_or_members(admin, world):
    dev = add_member(admin, admin.org_id, "dev@example.com", "developer")
    env = world["env"]
    dev.post(f"/environments/{env}/variables", {"key": "PLAIN", "value": "1"})
    assert dev.request("POST", f"/environments/{env}/variables",
                       {"key": "S", "value": "x", "kind": "secret"}).status_code == 403
    assert dev.request("DELETE", f"/environments/{env}/variables/TOKEN",
                       {"exposure": "runtime"}).status_code == 403
    # Replacing a secret with a plain value would be a way around that.
    assert dev.request("POST", f"/environments/{env}/variables",
                       {"key": "TOKEN", "value": "plain"}).status_code == 403
    assert dev.request("POST", f"/organizations/{admin.org_id}/invitations",
                       {"email": "x@example.com", "role": "viewer"}).status_code == 403
    assert dev.post("/projects", {"name": "dev-project"})["id"]


def test_token_scopes_and_organization_binding(admin, world, client):
    reader = admin.post("/account/tokens", {"displayName": "ci-read", "scopes": ["projects:read"]})
    assert reader["token"].startswith("lbt_") and reader["status"] == "active"
    assert "token" not in admin.get(f"/account/tokens/{reader['tokenId']}") or \
        admin.get(f"/account/tokens/{reader['tokenId']}")["token"] is None
    ro = Api(client, reader["token"])
    assert ro.get("/projects")["items"][0]["name"] == "alpha"
    denied = ro.request("POST", "/projects", {"name": "nope"})
    assert denied.status_code == 403 and denied.json()["code"] == "insufficient_scope"
    assert ro.request("GET", f"/environments/{world['env']}").status_code == 403
    # A token cannot mint a wider one.
    wider = ro.request("POST", "/account/tokens", {"displayName": "x", "scopes": ["*"]})
    assert wider.status_code == 403
    # The token is bound to its organization: B's objects are 404 even though its user is in B.
    beta_project = admin.post("/projects", {"name": "in-a"})  # still in A
    assert beta_project
    writer = admin.post("/account/tokens", {"displayName": "deploy", "scopes": ["*"],
                                            "organizationId": world["org_b"]})
    in_b = Api(client, writer["token"])
    assert in_b.request("GET", f"/projects/{world['project']}").status_code == 404
    assert in_b.post("/projects", {"name": "beta-app"})["id"]
    # Rotation kills the old secret; revocation kills the token.
    rotated = admin.post(f"/account/tokens/{writer['tokenId']}/rotate")
    assert in_b.request("GET", "/projects").status_code == 401
    assert Api(client, rotated["token"]).get("/projects")["items"][0]["name"] == "beta-app"
    admin.post(f"/account/tokens/{writer['tokenId']}/revoke")
    assert Api(client, rotated["token"]).request("GET", "/projects").status_code == 401
    listed = {t["tokenId"]: t["status"] for t in admin.get("/account/tokens")["items"]}
    assert listed[writer["tokenId"]] == "revoked" and listed[reader["tokenId"]] == "active"


def test_token_loses_rights_with_its_creator(admin, world, client):
    dev = add_member(admin, admin.org_id, "dev2@example.com", "developer")
    token = dev.post("/account/tokens", {"displayName": "t", "scopes": ["*"]})["token"]
    assert Api(client, token).post("/projects", {"name": "by-token"})
    admin.post(f"/organizations/{admin.org_id}/members/{dev.member_id}/role", {"role": "viewer"})
    assert Api(client, token).request("POST", "/projects", {"name": "x"}).status_code == 403
    admin.ok("DELETE", f"/organizations/{admin.org_id}/members/{dev.member_id}", {})
    assert Api(client, token).request("GET", "/projects").status_code == 404


def test_unknown_scope_is_rejected(admin):
    response = admin.request("POST", "/account/tokens",
                             {"displayName": "t", "scopes": ["rockets:launch"]})
    assert response.status_code == 400 and response.json()["error"] == "Validation failed"
    assert response.json()["details"][0]["field"] == "scopes"
