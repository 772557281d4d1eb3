"""indexes for every sort and filter the lists offer (each led by what a list filters on
and followed by what it sorts by), so that a page reads its rows in order from an index

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07 11:48:10
"""
from alembic import op

revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None

# (table, index, columns)
ADDED = [
    ("organizations", "ix_organizations_created", ["created_at"]),
    ("sessions", "ix_sessions_user_created", ["user_id", "created_at"]),
    ("api_tokens", "ix_api_tokens_user_kind_created", ["user_id", "kind", "created_at"]),
    ("api_tokens", "ix_api_tokens_org_kind_created", ["organization_id", "kind", "created_at"]),
    ("projects", "ix_projects_org_name", ["organization_id", "name"]),
    ("environments", "ix_environments_org_created", ["organization_id", "created_at"]),
    ("environments", "ix_environments_org_project_created",
     ["organization_id", "project_id", "created_at"]),
    ("audit_events", "ix_audit_org_created", ["organization_id", "created_at"]),
    ("audit_events", "ix_audit_org_type", ["organization_id", "event_type", "created_at"]),
    ("storage_volumes", "ix_storage_volumes_org_name", ["organization_id", "name"]),
    ("storage_volumes", "ix_storage_volumes_org_project_name",
     ["organization_id", "project_id", "name"]),
    ("storage_volumes", "ix_storage_volumes_org_env_name",
     ["organization_id", "environment_id", "name"]),
    ("databases", "ix_databases_org_name", ["organization_id", "name"]),
    ("databases", "ix_databases_org_project_name", ["organization_id", "project_id", "name"]),
    ("databases", "ix_databases_org_env_name", ["organization_id", "environment_id", "name"]),
    ("databases", "ix_databases_org_kind_name", ["organization_id", "kind", "name"]),
    ("auto_deploy_policies", "ix_auto_deploy_policies_org_updated",
     ["organization_id", "updated_at"]),
    ("domain_bindings", "ix_domain_bindings_org_name",
     ["organization_id", "domain_name", "path_prefix"]),
    ("domain_bindings", "ix_domain_bindings_org_project_name",
     ["organization_id", "project_id", "domain_name", "path_prefix"]),
    ("domain_bindings", "ix_domain_bindings_org_env_name",
     ["organization_id", "environment_id", "domain_name", "path_prefix"]),
    ("domain_bindings", "ix_domain_bindings_org_resource_name",
     ["organization_id", "resource_id", "domain_name", "path_prefix"]),
    ("certificates", "ix_certificates_org_expires",
     ["organization_id", "expires_at", "created_at"]),
    ("usage_intents", "ix_usage_intents_org_recorded", ["organization_id", "recorded_at"]),
    ("instances", "ix_instances_org_created", ["organization_id", "created_at"]),
    ("resources", "ix_resources_org_env_name", ["organization_id", "environment_id", "name"]),
    ("resources", "ix_resources_org_project_created",
     ["organization_id", "project_id", "created_at"]),
    ("deployments", "ix_deployments_org_project_created",
     ["organization_id", "project_id", "created_at"]),
    ("deployments", "ix_deployments_org_resource_created",
     ["organization_id", "resource_id", "created_at"]),
    ("operator_work", "ix_operator_work_org_resource",
     ["organization_id", "resource_id", "created_at"]),
    ("operator_work", "ix_operator_work_org_deployment",
     ["organization_id", "deployment_id", "created_at"]),
    ("operator_work", "ix_operator_work_org_server", ["organization_id", "server_id", "created_at"]),
    ("source_events", "ix_source_events_org_project",
     ["organization_id", "project_id", "received_at"]),
]
# Indexes the new ones make redundant (their columns lead a new one, or a list no longer
# filters by them alone): (table, index, columns).
REPLACED = [
    ("sessions", "ix_sessions_user_id", ["user_id"]),
    ("api_tokens", "ix_api_tokens_user_id", ["user_id"]),
    ("deployments", "ix_deployments_project_created", ["project_id", "created_at"]),
    ("audit_events", "ix_audit_org_aggregate", ["organization_id", "aggregate_id"]),
]


def upgrade() -> None:
    for table, name, _ in REPLACED:
        op.drop_index(name, table_name=table)
    for table, name, columns in ADDED:
        op.create_index(name, table, columns)
    op.create_index("ix_audit_org_aggregate", "audit_events",
                    ["organization_id", "aggregate_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_audit_org_aggregate", table_name="audit_events")
    for table, name, _ in ADDED:
        op.drop_index(name, table_name=table)
    for table, name, columns in REPLACED:
        op.create_index(name, table, columns)
