"""Business operations. Importing this package fills the catalog."""

from launchbay.operations import (  # noqa: F401  (each module registers its operations)
    access_policies,
    audit,
    blueprints,
    capabilities,
    certificates,
    deployments,
    domains,
    environments,
    hosted,
    identity,
    instances,
    oidc_login,
    operator_work,
    organizations,
    plans,
    projects,
    proxy,
    resources,
    servers,
    storage,
    system,
    templates,
    tokens,
    usage,
)
from launchbay.operations.catalog import CATALOG, Actor, Meta, Operations

__all__ = ["CATALOG", "Actor", "Meta", "Operations"]
