"""Business operations. Importing this package fills the catalog.

Each family of operation keys has one home (`HOMES`; a test holds every handler to it)."""

from launchbay.operations import (  # noqa: F401  (each module registers its operations)
    audit,
    capabilities,
    credential_rotations,
    credentials,
    databases,
    deployments,
    environments,
    instances,
    integrations,
    operator_work,
    organizations,
    plans,
    previews,
    projects,
    remote_servers,
    resources,
    scheduled_tasks,
    servers,
    source_events,
    storage,
    templates,
    usage,
)
from launchbay.operations.catalog import CATALOG, Actor, Meta, Operations, Visit
from launchbay.operations.compat import (  # noqa: F401
    blueprints,
    hosted,
    proxy,
    system,
)
from launchbay.operations.edge import (  # noqa: F401
    access_policies,
    certificates,
    domains,
)
from launchbay.operations.identity import (  # noqa: F401
    accounts,
    deploy_tokens,
    oidc_login,
    tokens,
)

# Where the operations of each key prefix live (the longest prefix wins).
HOMES = {
    "account": "identity", "auth": "identity", "bootstrap": "identity", "tokens": "identity",
    "deploy-tokens": "identity", "credentials": "credentials",
    "servers.register": "remote_servers", "servers.connectivity": "remote_servers",
    "servers.host-key": "remote_servers", "servers.rename": "remote_servers",
    "servers.credentials": "remote_servers", "servers.deactivate": "remote_servers",
    "servers.delete": "remote_servers", "servers.delete-check": "remote_servers",
    "organizations": "organizations", "plans": "plans", "usage-intents": "usage",
    "capabilities": "capabilities", "audit-events": "audit",
    "projects": "projects", "environments": "environments",
    "resources": "resources", "storage-volumes": "storage",
    "dependency-resources": "databases", "resources.dependency-bindings": "databases",
    "backup-destinations": "databases",
    "resources.dependency-bindings.secret-rotations": "credential_rotations",
    "dependency-resources.credential-rotations": "credential_rotations",
    "resources.auto-deploy": "source_events", "source-events": "source_events",
    "source-links": "source_events",
    "preview-policies": "previews", "preview-environments": "previews",
    "deployments.cleanup-preview": "previews", "integrations": "integrations",
    "deployments": "deployments", "servers": "servers", "operator-work": "operator_work",
    "domain-bindings": "edge", "certificates": "edge", "default-access-domain-policies": "edge",
    "templates": "templates", "instances": "instances",
    "scheduled-tasks": "scheduled_tasks", "scheduled-task-runs": "scheduled_tasks",
    # The document models of the compatible APIs: Dployr's, and Shipyard's hosted deployments.
    "blueprints": "compat", "proxy": "compat", "system": "compat", "instance-claims": "compat",
    "deployments.hosted": "compat",
}

__all__ = ["CATALOG", "HOMES", "Actor", "Meta", "Operations", "Visit"]
