"""The native API under `/api`: seed 004's paths, each bound to one catalog operation.

Every route is a row of `ROUTES`. The input of the operation is built from the path
parameters (which win), the query string and the JSON body, and validated by the operation's
own input model; the OpenAPI document is generated from the same models.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute
from pydantic import BaseModel, create_model
from pydantic.json_schema import models_json_schema

from launchbay.control_plane import ControlPlane
from launchbay.http import bodies
from launchbay.http.common import (
    AFTER,
    actor_of,
    credentials,
    encoded,
    meta_of,
    run_as_caller,
)
from launchbay.operations import CATALOG
from launchbay.operations.catalog import Operation
from launchbay.operations.schemas import Schema

# (method, path, operation key, success status)
ROUTES: list[tuple[str, str, str, int]] = [
    ("GET", "/bootstrap/auth/status", "bootstrap.status", 200),
    ("POST", "/bootstrap/auth/first-admin", "bootstrap.first-admin", 201),
    ("POST", "/capabilities/query", "capabilities.query", 200),
    ("POST", "/auth/login", "auth.login", 200),
    ("POST", "/auth/logout", "auth.logout", 200),
    ("POST", "/auth/oidc/start", "auth.oidc.start", 200),
    ("POST", "/auth/oidc/callback", "auth.oidc.callback", 200),
    ("POST", "/auth/oidc/sign-in", "auth.oidc.sign-in", 200),
    ("GET", "/account/profile", "account.profile.show", 200),
    ("POST", "/account/profile", "account.profile.update", 200),
    ("POST", "/account/password", "account.password.change", 200),
    ("GET", "/account/sessions", "account.sessions.list", 200),
    ("POST", "/account/sessions/{sessionId}/revoke", "account.sessions.revoke", 200),
    ("GET", "/account/tokens", "tokens.list", 200),
    ("POST", "/account/tokens", "tokens.create", 201),
    ("GET", "/account/tokens/{tokenId}", "tokens.show", 200),
    ("POST", "/account/tokens/{tokenId}/rotate", "tokens.rotate", 200),
    ("POST", "/account/tokens/{tokenId}/revoke", "tokens.revoke", 200),
    ("GET", "/organizations/current-context", "organizations.current-context", 200),
    ("POST", "/organizations/current-context/switch", "organizations.switch", 200),
    ("POST", "/organizations", "organizations.create", 201),
    ("GET", "/organizations/{organizationId}/profile", "organizations.show", 200),
    ("POST", "/organizations/{organizationId}/profile", "organizations.update", 200),
    ("DELETE", "/organizations/{organizationId}", "organizations.delete", 200),
    ("GET", "/organizations/{organizationId}/members", "organizations.members.list", 200),
    ("POST", "/organizations/{organizationId}/members/{memberId}/role",
     "organizations.members.role", 200),
    ("DELETE", "/organizations/{organizationId}/members/{memberId}",
     "organizations.members.remove", 200),
    ("POST", "/organizations/{organizationId}/owner-transfer", "organizations.owner-transfer",
     200),
    ("GET", "/organizations/{organizationId}/invitations", "organizations.invitations.list",
     200),
    ("POST", "/organizations/{organizationId}/invitations", "organizations.invitations.create",
     201),
    ("POST", "/invitations/accept", "organizations.invitations.accept", 200),
    ("GET", "/projects/count", "projects.count", 200),
    ("GET", "/projects", "projects.list", 200),
    ("POST", "/projects", "projects.create", 201),
    ("GET", "/projects/{projectId}", "projects.show", 200),
    ("DELETE", "/projects/{projectId}", "projects.delete", 200),
    ("POST", "/projects/{projectId}/rename", "projects.rename", 200),
    ("POST", "/projects/{projectId}/description", "projects.describe", 200),
    ("POST", "/projects/{projectId}/archive", "projects.archive", 200),
    ("POST", "/projects/{projectId}/restore", "projects.restore", 200),
    ("GET", "/projects/{projectId}/delete-check", "projects.delete-check", 200),
    ("GET", "/environments/count", "environments.count", 200),
    ("GET", "/environments", "environments.list", 200),
    ("POST", "/environments", "environments.create", 201),
    ("GET", "/environments/{environmentId}", "environments.show", 200),
    ("DELETE", "/environments/{environmentId}", "environments.delete", 200),
    ("POST", "/environments/{environmentId}/lock", "environments.lock", 200),
    ("POST", "/environments/{environmentId}/unlock", "environments.unlock", 200),
    ("POST", "/environments/{environmentId}/archive", "environments.archive", 200),
    ("POST", "/environments/{environmentId}/clone", "environments.clone", 201),
    ("POST", "/environments/{environmentId}/rename", "environments.rename", 200),
    ("POST", "/environments/{environmentId}/variables", "environments.variables.set", 200),
    ("DELETE", "/environments/{environmentId}/variables/{key}",
     "environments.variables.delete", 200),
    ("GET", "/environments/{environmentId}/effective-precedence",
     "environments.effective-precedence", 200),
    ("POST", "/environments/{environmentId}/promote", "environments.promote", 200),
    ("GET", "/environments/{environmentId}/diff/{otherEnvironmentId}", "environments.diff", 200),
    ("GET", "/audit-events", "audit-events.list", 200),
    ("GET", "/audit-events/{auditEventId}", "audit-events.show", 200),
    ("GET", "/credentials/ssh", "credentials.ssh.list", 200),
    ("POST", "/credentials/ssh", "credentials.ssh.create", 201),
    ("GET", "/credentials/ssh/{credentialId}", "credentials.ssh.show", 200),
    ("DELETE", "/credentials/ssh/{credentialId}", "credentials.ssh.delete", 200),
    ("POST", "/credentials/ssh/{credentialId}/rotate", "credentials.ssh.rotate", 200),
    ("GET", "/servers/count", "servers.count", 200),
    ("GET", "/servers", "servers.list", 200),
    ("GET", "/servers/{serverId}", "servers.show", 200),
    ("POST", "/servers", "servers.register", 201),
    ("POST", "/servers/connectivity-tests", "servers.connectivity.test-draft", 200),
    ("POST", "/servers/{serverId}/connectivity-tests", "servers.connectivity.test", 200),
    ("POST", "/servers/{serverId}/host-key", "servers.host-key.pin", 200),
    ("POST", "/servers/{serverId}/rename", "servers.rename", 200),
    ("POST", "/servers/{serverId}/credentials", "servers.credentials.configure", 200),
    ("POST", "/servers/{serverId}/deactivate", "servers.deactivate", 200),
    ("GET", "/servers/{serverId}/delete-check", "servers.delete-check", 200),
    ("DELETE", "/servers/{serverId}", "servers.delete", 200),
    ("GET", "/servers/{serverId}/capacity", "servers.capacity", 200),
    ("POST", "/servers/{serverId}/capacity/prune", "servers.capacity.prune", 200),
    ("POST", "/servers/{serverId}/edge-proxy/configuration", "servers.edge-proxy.configure", 200),
    ("POST", "/servers/{serverId}/edge-proxy/bootstrap", "servers.edge-proxy.bootstrap", 202),
    ("GET", "/resources/count", "resources.count", 200),
    ("GET", "/resources", "resources.list", 200),
    ("POST", "/resources", "resources.create", 201),
    ("GET", "/resources/{resourceId}", "resources.show", 200),
    ("GET", "/projects/{projectId}/resource-urls", "resources.urls", 200),
    ("DELETE", "/resources/{resourceId}", "resources.delete", 200),
    ("POST", "/resources/{resourceId}/archive", "resources.archive", 200),
    ("POST", "/resources/{resourceId}/source", "resources.configure-source", 200),
    ("POST", "/resources/{resourceId}/runtime-profile", "resources.configure-runtime", 200),
    ("POST", "/resources/{resourceId}/network-profile", "resources.configure-network", 200),
    ("POST", "/resources/{resourceId}/access-profile", "resources.configure-access", 200),
    ("POST", "/resources/{resourceId}/health-policy", "resources.configure-health", 200),
    ("POST", "/resources/{resourceId}/health-policy/reset", "resources.reset-health", 200),
    ("POST", "/resources/{resourceId}/variables", "resources.variables.set", 200),
    ("POST", "/resources/{resourceId}/variables/import", "resources.variables.import", 200),
    ("DELETE", "/resources/{resourceId}/variables/{key}", "resources.variables.delete", 200),
    ("GET", "/resources/{resourceId}/secrets", "resources.secrets.list", 200),
    ("POST", "/resources/{resourceId}/secrets", "resources.secrets.create", 201),
    ("GET", "/resources/{resourceId}/secrets/{key}", "resources.secrets.show", 200),
    ("POST", "/resources/{resourceId}/secrets/{key}", "resources.secrets.rotate", 200),
    ("DELETE", "/resources/{resourceId}/secrets/{key}", "resources.secrets.delete", 200),
    ("GET", "/resources/{resourceId}/effective-config", "resources.effective-config", 200),
    ("POST", "/resources/{resourceId}/storage-attachments", "resources.storage.attach", 201),
    ("DELETE", "/resources/{resourceId}/storage-attachments/{attachmentId}",
     "resources.storage.detach", 200),
    ("POST", "/resources/{resourceId}/runtime/stop", "resources.runtime.stop", 202),
    ("POST", "/resources/{resourceId}/runtime/start", "resources.runtime.start", 202),
    ("POST", "/resources/{resourceId}/runtime/restart", "resources.runtime.restart", 202),
    ("POST", "/resources/{resourceId}/scale", "resources.scale", 202),
    ("GET", "/resources/{resourceId}/runtime-logs", "resources.runtime-logs", 200),
    ("POST", "/resources/{resourceId}/redeploy", "deployments.redeploy", 201),
    ("GET", "/resources/{resourceId}/proxy-configuration", "resources.proxy-configuration", 200),
    ("GET", "/resources/{resourceId}/health", "resources.health", 200),
    ("GET", "/resources/{resourceId}/health-history", "resources.health-history", 200),
    ("POST", "/dependency-resources/provisioning/plan", "dependency-resources.provisioning.plan",
     201),
    ("POST", "/dependency-resources/provisioning/{planId}/accept",
     "dependency-resources.provisioning.accept", 200),
    ("GET", "/dependency-resources/provisioning/{planId}",
     "dependency-resources.provisioning.show", 200),
    ("POST", "/dependency-resources/provision", "dependency-resources.provision", 201),
    ("POST", "/dependency-resources/import", "dependency-resources.import", 201),
    ("GET", "/dependency-resources/count", "dependency-resources.count", 200),
    ("GET", "/dependency-resources", "dependency-resources.list", 200),
    ("GET", "/backup-destinations", "backup-destinations.list", 200),
    ("POST", "/backup-destinations", "backup-destinations.create", 201),
    ("DELETE", "/backup-destinations/{destinationId}", "backup-destinations.delete", 200),
    ("GET", "/dependency-resources/backup-policies", "dependency-resources.backup-policies.list",
     200),
    ("POST", "/dependency-resources/backup-policies",
     "dependency-resources.backup-policies.configure", 201),
    ("GET", "/dependency-resources/backup-policies/{policyId}",
     "dependency-resources.backup-policies.show", 200),
    ("POST", "/dependency-resources/backup-policies/{policyId}/runs",
     "dependency-resources.backup-policies.run", 202),
    ("GET", "/dependency-resources/backups/{backupId}", "dependency-resources.backups.show",
     200),
    ("POST", "/dependency-resources/backups/{backupId}/restore",
     "dependency-resources.backups.restore", 202),
    ("GET", "/dependency-resources/{dependencyResourceId}", "dependency-resources.show", 200),
    ("DELETE", "/dependency-resources/{dependencyResourceId}", "dependency-resources.delete",
     202),
    ("POST", "/dependency-resources/{dependencyResourceId}/rename",
     "dependency-resources.rename", 200),
    ("GET", "/dependency-resources/{dependencyResourceId}/backups",
     "dependency-resources.backups.list", 200),
    ("POST", "/dependency-resources/{dependencyResourceId}/backups",
     "dependency-resources.backups.create", 202),
    ("GET", "/resources/{resourceId}/dependency-bindings", "resources.dependency-bindings.list",
     200),
    ("POST", "/resources/{resourceId}/dependency-bindings",
     "resources.dependency-bindings.create", 201),
    ("GET", "/resources/{resourceId}/dependency-bindings/{bindingId}",
     "resources.dependency-bindings.show", 200),
    ("DELETE", "/resources/{resourceId}/dependency-bindings/{bindingId}",
     "resources.dependency-bindings.delete", 200),
    ("POST", "/resources/{resourceId}/dependency-bindings/{bindingId}/secret-rotations",
     "resources.dependency-bindings.secret-rotations.create", 202),
    ("POST", "/dependency-resources/credential-rotations/{rotationId}/advance",
     "dependency-resources.credential-rotations.advance", 200),
    ("GET", "/storage-volumes", "storage-volumes.list", 200),
    ("POST", "/storage-volumes", "storage-volumes.create", 201),
    ("GET", "/storage-volumes/{storageVolumeId}", "storage-volumes.show", 200),
    ("DELETE", "/storage-volumes/{storageVolumeId}", "storage-volumes.delete", 200),
    ("POST", "/storage-volumes/{storageVolumeId}/rename", "storage-volumes.rename", 200),
    ("GET", "/deploy-tokens", "deploy-tokens.list", 200),
    ("POST", "/deploy-tokens", "deploy-tokens.create", 201),
    ("GET", "/deploy-tokens/{tokenId}", "deploy-tokens.show", 200),
    ("POST", "/deploy-tokens/{tokenId}/rotate", "deploy-tokens.rotate", 200),
    ("POST", "/deploy-tokens/{tokenId}/revoke", "deploy-tokens.revoke", 200),
    ("GET", "/resources/{resourceId}/auto-deploy", "resources.auto-deploy.show", 200),
    ("POST", "/resources/{resourceId}/auto-deploy", "resources.auto-deploy.configure", 200),
    ("GET", "/source-links", "source-links.list", 200),
    ("POST", "/source-links/relink", "source-links.relink", 200),
    ("GET", "/source-links/{sourceFingerprint}", "source-links.show", 200),
    ("DELETE", "/source-links/{sourceFingerprint}", "source-links.delete", 200),
    ("GET", "/source-events", "source-events.list", 200),
    ("POST", "/source-events/prune", "source-events.prune", 200),
    ("GET", "/source-events/{sourceEventId}", "source-events.show", 200),
    ("POST", "/source-events/{sourceEventId}/replay", "source-events.replay", 202),
    ("POST", "/source-events/{sourceEventId}/dispatches", "source-events.dispatch", 200),
    ("GET", "/integrations", "integrations.list", 200),
    ("GET", "/integrations/github/app-connection", "integrations.github.app-connection.show",
     200),
    ("POST", "/integrations/github/app-connection",
     "integrations.github.app-connection.configure", 200),
    ("DELETE", "/integrations/github/app-connection",
     "integrations.github.app-connection.delete", 200),
    ("GET", "/integrations/github/repositories", "integrations.github.repositories", 200),
    ("POST", "/integrations/github/commit-statuses/report",
     "integrations.github.commit-statuses.report", 200),
    ("POST", "/preview-policies", "preview-policies.configure", 200),
    ("POST", "/preview-policies/show", "preview-policies.show", 200),
    ("GET", "/preview-environments", "preview-environments.list", 200),
    ("GET", "/preview-environments/{previewEnvironmentId}", "preview-environments.show", 200),
    ("DELETE", "/resources/{resourceId}/preview-environments/{previewEnvironmentId}",
     "preview-environments.delete", 200),
    ("POST", "/preview-environments/{previewEnvironmentId}/expire", "preview-environments.expire",
     200),
    ("POST", "/preview-environments/reconcile", "preview-environments.reconcile", 200),
    ("POST", "/storage-volumes/{storageVolumeId}/runtime-cleanup",
     "storage-volumes.runtime-cleanup", 200),
    ("POST", "/storage-volumes/{storageVolumeId}/backups", "storage-volumes.backups.create", 202),
    ("GET", "/storage-volumes/{storageVolumeId}/backups", "storage-volumes.backups.list", 200),
    ("GET", "/storage-volume-backups/{backupId}", "storage-volumes.backups.show", 200),
    ("POST", "/storage-volume-backups/{backupId}/restore", "storage-volumes.backups.restore",
     202),
    ("GET", "/deployments/count", "deployments.count", 200),
    ("GET", "/deployments/plan", "deployments.plan", 200),
    ("GET", "/deployments", "deployments.list", 200),
    ("POST", "/deployments", "deployments.create", 201),
    ("POST", "/deployments/prune", "deployments.prune", 200),
    ("POST", "/deployments/cleanup-preview", "deployments.cleanup-preview", 200),
    ("GET", "/deployments/{deploymentId}", "deployments.show", 200),
    ("GET", "/deployments/{deploymentId}/logs", "deployments.logs", 200),
    ("GET", "/deployments/{deploymentId}/events", "deployments.events", 200),
    ("GET", "/deployments/{deploymentId}/recovery-readiness", "deployments.recovery-readiness",
     200),
    ("POST", "/deployments/{deploymentId}/cancel", "deployments.cancel", 200),
    ("POST", "/deployments/{deploymentId}/retry", "deployments.retry", 201),
    ("POST", "/deployments/{deploymentId}/rollback", "deployments.rollback", 201),
    ("POST", "/deployments/{deploymentId}/archive", "deployments.archive", 200),
    ("GET", "/default-access-domain-policies", "default-access-domain-policies.list", 200),
    ("POST", "/default-access-domain-policies", "default-access-domain-policies.configure", 200),
    ("GET", "/default-access-domain-policies/show", "default-access-domain-policies.show", 200),
    ("GET", "/domain-bindings", "domain-bindings.list", 200),
    ("POST", "/domain-bindings", "domain-bindings.create", 201),
    ("GET", "/domain-bindings/{domainBindingId}", "domain-bindings.show", 200),
    ("DELETE", "/domain-bindings/{domainBindingId}", "domain-bindings.delete", 200),
    ("GET", "/domain-bindings/{domainBindingId}/delete-check", "domain-bindings.delete-check",
     200),
    ("POST", "/domain-bindings/{domainBindingId}/route", "domain-bindings.route", 200),
    ("POST", "/domain-bindings/{domainBindingId}/ownership-confirmations",
     "domain-bindings.confirm-ownership", 202),
    ("POST", "/domain-bindings/{domainBindingId}/verification-retries",
     "domain-bindings.retry-verification", 202),
    ("POST", "/certificates/import", "certificates.import", 201),
    ("POST", "/certificates/issue-or-renew", "certificates.issue-or-renew", 202),
    ("GET", "/certificates", "certificates.list", 200),
    ("GET", "/certificates/{certificateId}", "certificates.show", 200),
    ("DELETE", "/certificates/{certificateId}", "certificates.delete", 200),
    ("POST", "/certificates/{certificateId}/retries", "certificates.retry", 202),
    ("POST", "/certificates/{certificateId}/revoke", "certificates.revoke", 200),
    ("GET", "/scheduled-tasks", "scheduled-tasks.list", 200),
    ("POST", "/scheduled-tasks", "scheduled-tasks.create", 201),
    ("GET", "/scheduled-tasks/{taskId}", "scheduled-tasks.show", 200),
    ("POST", "/scheduled-tasks/{taskId}", "scheduled-tasks.configure", 200),
    ("DELETE", "/scheduled-tasks/{taskId}", "scheduled-tasks.delete", 200),
    ("POST", "/scheduled-tasks/{taskId}/runs", "scheduled-tasks.run-now", 202),
    ("POST", "/scheduled-tasks/{taskId}/fires", "scheduled-tasks.fire", 200),
    ("GET", "/scheduled-task-runs", "scheduled-task-runs.list", 200),
    ("GET", "/scheduled-task-runs/{runId}", "scheduled-task-runs.show", 200),
    ("GET", "/scheduled-task-runs/{runId}/logs", "scheduled-task-runs.logs", 200),
    ("GET", "/operator-work", "operator-work.list", 200),
    ("POST", "/operator-work/prune", "operator-work.prune", 200),
    ("GET", "/operator-work/{workId}", "operator-work.show", 200),
    ("POST", "/operator-work/{workId}/retry", "operator-work.retry", 201),
    ("POST", "/operator-work/{workId}/cancel", "operator-work.cancel", 200),
    ("POST", "/operator-work/{workId}/dead-letter", "operator-work.dead-letter", 200),
    ("POST", "/operator-work/{workId}/mark-recovered", "operator-work.mark-recovered", 200),
    ("POST", "/blueprints/deploy", "blueprints.deploy", 201),
    ("GET", "/blueprints/deployments", "blueprints.deployments", 200),
    ("GET", "/blueprints/services", "blueprints.services", 200),
    ("GET", "/blueprints/services/{serviceId}", "blueprints.services.show", 200),
    ("POST", "/blueprints/services/{serviceId}", "blueprints.services.update", 200),
    ("DELETE", "/blueprints/services/{serviceId}", "blueprints.services.delete", 200),
    ("GET", "/proxy/status", "proxy.status", 200),
    ("POST", "/proxy/restart", "proxy.restart", 200),
    ("GET", "/proxy/routes", "proxy.routes.list", 200),
    ("POST", "/proxy/routes", "proxy.routes.add", 201),
    ("DELETE", "/proxy/routes/{domain}", "proxy.routes.remove", 200),
    ("GET", "/system/status", "system.status", 200),
    ("GET", "/system/info", "system.info", 200),
    ("POST", "/system/doctor", "system.doctor", 200),
    ("POST", "/system/install", "system.install", 200),
    ("POST", "/system/register", "system.register", 200),
    ("POST", "/system/domain", "system.domain", 200),
    ("GET", "/plans", "plans.list", 200),
    ("POST", "/plans/assignments", "plans.assign", 200),
    ("GET", "/usage-intents", "usage-intents.list", 200),
    ("POST", "/usage-intents", "usage-intents.record", 201),
    ("GET", "/hosted-deployments", "deployments.hosted.list", 200),
    ("POST", "/hosted-deployments/images", "deployments.hosted.deploy-image", 201),
    ("GET", "/hosted-deployments/{name}", "deployments.hosted.status", 200),
    ("POST", "/hosted-deployments/{deploymentName}/delete", "deployments.hosted.delete", 200),
    ("POST", "/hosted-deployments/{deploymentName}/restart", "deployments.hosted.restart", 200),
    ("GET", "/hosted-deployments/{name}/config", "deployments.hosted.config", 200),
    ("PUT", "/hosted-deployments/{deploymentName}/config", "deployments.hosted.configure", 200),
    ("GET", "/hosted-deployments/{name}/logs", "deployments.hosted.logs", 200),
    ("GET", "/hosted-deployments/{name}/metrics", "deployments.hosted.metrics", 200),
    ("POST", "/hosted-deployments", "deployments.hosted.create", 201),
    ("GET", "/hosted-deployments/{name}/history", "deployments.hosted.history", 200),
    ("GET", "/hosted-deployments/{name}/events", "deployments.hosted.events", 200),
    ("GET", "/hosted-deployments/{name}/auto-update", "deployments.hosted.auto-update", 200),
    ("PUT", "/hosted-deployments/{deploymentName}/auto-update",
     "deployments.hosted.auto-update.configure", 200),
    ("POST", "/hosted-deployments/{deploymentName}/auto-update/apply",
     "deployments.hosted.auto-update.apply", 201),
    ("GET", "/instance-templates", "instances.available", 200),
    ("GET", "/instances", "instances.list", 200),
    ("POST", "/instances", "instances.run", 200),
    ("GET", "/instances/{template}", "instances.status", 200),
    ("POST", "/instances/{template}/extend", "instances.extend", 200),
    ("DELETE", "/instances/{template}", "instances.delete", 204),
    ("POST", "/instances/{uuid}/expire", "instances.expire", 200),
    ("POST", "/instance-pools/{template}/fill", "instances.pool.fill", 200),
    ("GET", "/instance-identity", "instances.me", 200),
    ("GET", "/instance-admin/instances", "instances.admin.list", 200),
    ("GET", "/instance-admin/templates", "instances.admin.templates", 200),
    ("GET", "/templates", "templates.list", 200),
    ("POST", "/templates", "templates.create", 201),
    ("GET", "/templates/{name}", "templates.show", 200),
    ("PATCH", "/templates/{name}", "templates.update", 200),
    ("POST", "/templates/{name}/disable", "templates.disable", 200),
    ("GET", "/instance-claims/issuer", "instance-claims.issuer", 200),
    ("POST", "/instance-claims", "instance-claims.issue", 201),
]


# Routes whose body is not JSON: the raw bytes become the operation's `content`.
UPLOADS = [("POST", "/resources/{resourceId}/source/archive", "resources.upload-archive", 201)]
# Git hosts' webhooks (the delivery's signature is their credential, checked against each
# policy's secret by the operation): (path, provider).
WEBHOOKS = [("/integrations/github/source-events", "github"),
            ("/integrations/gitlab/source-events", "gitlab"),
            ("/integrations/gitea/source-events", "gitea"),
            ("/resources/{resourceId}/source-events/generic-signed", "generic")]
WEBHOOK_HEADERS = ("x-github-event", "x-github-delivery", "x-hub-signature-256",
                   "x-gitlab-event", "x-gitlab-token", "x-gitlab-event-uuid", "idempotency-key",
                   "x-gitea-event", "x-gitea-delivery", "x-gitea-signature", "x-forgejo-event",
                   "x-forgejo-delivery", "x-forgejo-signature", "x-launchbay-event",
                   "x-launchbay-delivery", "x-launchbay-signature")
WEBHOOK_MAX_BYTES = 1 << 20  # GitHub's push payloads are far smaller


def router(cp: ControlPlane) -> APIRouter:
    api = APIRouter()
    for method, path, key, status in ROUTES:
        _add(api, cp, method, path, CATALOG[key], status)
    for method, path, key, status in UPLOADS:
        _add(api, cp, method, path, CATALOG[key], status, raw=True)
    for path, provider in WEBHOOKS:
        _add_webhook(api, cp, path, provider)
    return api


def _add_webhook(api: APIRouter, cp: ControlPlane, path: str, provider: str) -> None:
    """A git host's webhook: the raw body and its signature headers go to the operation (which
    verifies them); 202 once kept, 200 for a ping or a delivery already received."""
    op = CATALOG["source-events.ingest"]

    async def endpoint(request: Request) -> Response:
        data = {"provider": provider, "content": await bodies.read(request, WEBHOOK_MAX_BYTES),
                "headers": {h: request.headers[h] for h in WEBHOOK_HEADERS
                            if h in request.headers}, **request.path_params}
        result = await run_in_threadpool(cp.ops.run, op.key, None, data, meta_of(request))
        return Response(encoded(result), media_type="application/json",
                        status_code=200 if result.status in ("ping", "deduped") else 202)

    params = [{"name": p, "in": "path", "required": True,
               "schema": {"type": "string", "minLength": 1, "maxLength": 200}}
              for p in re.findall(r"{(\w+)}", path)]
    api.add_api_route(path, endpoint, methods=["POST"], status_code=202,
                      name=f"{op.key}.{provider}", operation_id=f"{op.key}.{provider}",
                      summary=f"A {provider} webhook delivery (signed) for push to deploy.",
                      tags=["source-events"], openapi_extra={"parameters": params})


def _add(api: APIRouter, cp: ControlPlane, method: str, path: str, op: Operation,
         status: int, raw: bool = False) -> None:
    after = AFTER.get(op.key)

    async def endpoint(request: Request) -> Response:
        secret = credentials(request, op.changes_as_caller)
        data: dict[str, Any] = {**request.query_params, **request.path_params}
        if method == "GET":  # one trip to a worker thread: who asks, then the answer
            result = await run_in_threadpool(run_as_caller, cp, secret, op, data,
                                             meta_of(request))
        else:  # who asks is known before a body is read
            actor = await run_in_threadpool(actor_of, cp, secret, op, None,
                                            meta_of(request).ip_address)
            if raw:
                data["content"] = await bodies.read(request, cp.settings.upload_max_mb << 20)
            else:
                data.update(await bodies.json_body(request))
            data.update(request.path_params)
            result = await run_in_threadpool(cp.ops.run, op.key, actor, data, meta_of(request))
        response = Response(status_code=204) if status == 204 else \
            Response(encoded(result), status_code=status, media_type="application/json")
        if after:
            after(request, response, result)
        return response

    api.add_api_route(path, endpoint, methods=[method], status_code=status, name=op.key,
                      operation_id=op.key, summary=op.description.splitlines()[0],
                      description=op.description, tags=[op.family],
                      openapi_extra={})  # filled in place by `document`


def document(routes: list[Any], schemas: dict[str, Any]) -> None:
    """Fills the OpenAPI entries of the native routes from their operations' models (done when
    the document is first asked for, not at start-up). All models are rendered in one pass, so
    two of the same class name (`PruneOut` of servers and of deployments) get a name each."""
    documented = []
    for route in routes:
        op = CATALOG.get(getattr(route, "name", ""))
        if op is None or not isinstance(route, APIRoute):
            continue
        in_path = set(re.findall(r"{(\w+)}", route.path))
        fields = {name: (f.annotation, f) for name, f in op.input.model_fields.items()
                  if (f.alias or name) not in in_path}
        body = create_model(  # type: ignore[call-overload]  # create_model with fields computed at run time
            "".join(p.capitalize() for p in re.split(r"[.-]", op.key)) + "Input",
            __base__=Schema, **fields) if fields else None
        documented.append((route, op, in_path, body))
    wanted: list[tuple[type[BaseModel], Literal["validation", "serialization"]]] = [
        *{(op.output, "serialization") for _, op, _, _ in documented if op.output},
        *((body, "validation") for *_, body in documented if body)]
    refs, defs = models_json_schema(wanted, by_alias=True,
                                    ref_template="#/components/schemas/{model}")
    schemas.update(defs.get("$defs", {}))
    for route, op, in_path, body in documented:
        method, status = next(iter(route.methods or ())), route.status_code or 200
        params: list[dict[str, Any]] = [
            {"name": p, "in": "path", "required": True,
             "schema": {"type": "string", "minLength": 1, "maxLength": 200}}
            for p in in_path]
        extra: dict[str, Any] = {"parameters": params}
        if op.output is not None:
            extra["responses"] = {str(status): {"description": "OK", "content": {
                "application/json": {"schema": refs[(op.output, "serialization")]}}}}
        if body is not None:
            ref = refs[(body, "validation")]["$ref"]
            schema = schemas[ref.rsplit("/", 1)[1]]
            if method == "GET":
                params += [{"name": name, "in": "query",
                            "required": name in schema.get("required", []), "schema": prop}
                           for name, prop in schema.get("properties", {}).items()]
            else:
                extra["requestBody"] = {"content": {"application/json": {
                    "schema": {"$ref": ref}}}}
        # In place: FastAPI serves requests through copies of the routes that share it.
        assert route.openapi_extra is not None  # made with the route by `_add`
        route.openapi_extra.update(extra)
