"""databases, their bindings to resources and their backups

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-01 21:30:00
"""
import sqlalchemy as sa
from alembic import op

from launchbay.store.models import UTCDateTime

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "databases",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("organization_id", sa.String(40),
                  sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False),
        sa.Column("project_id", sa.String(40), sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("environment_id", sa.String(40), sa.ForeignKey("environments.id"),
                  nullable=False),
        sa.Column("server_id", sa.String(40), sa.ForeignKey("servers.id"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("slug", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("source_mode", sa.String(20), nullable=False),
        sa.Column("description", sa.Text()),
        sa.Column("image", sa.String(300)),
        sa.Column("host", sa.String(300), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("database_name", sa.String(200)),
        sa.Column("username", sa.String(200)),
        sa.Column("sealed_secret", sa.Text(), nullable=False),
        sa.Column("volume_name", sa.String(200)),
        sa.Column("container_id", sa.String(80)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("failure_code", sa.String(80)),
        sa.Column("failure_message", sa.Text()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("realized_at", UTCDateTime()),
        sa.Column("deleted_at", UTCDateTime()),
        sa.UniqueConstraint("environment_id", "slug"))
    op.create_index("ix_databases_organization_id", "databases", ["organization_id"])
    op.create_index("ix_databases_environment_id", "databases", ["environment_id"])
    op.create_table(
        "database_bindings",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("organization_id", sa.String(40),
                  sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False),
        sa.Column("resource_id", sa.String(40),
                  sa.ForeignKey("resources.id", ondelete="CASCADE"), nullable=False),
        sa.Column("database_id", sa.String(40), sa.ForeignKey("databases.id"), nullable=False),
        sa.Column("target_name", sa.String(200), nullable=False),
        sa.Column("discrete", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("resource_id", "target_name"))
    for column in ("organization_id", "resource_id", "database_id"):
        op.create_index(f"ix_database_bindings_{column}", "database_bindings", [column])
    op.create_table(
        "database_backups",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("organization_id", sa.String(40),
                  sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False),
        sa.Column("database_id", sa.String(40), sa.ForeignKey("databases.id"), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(40), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("phase", sa.String(40)),
        sa.Column("failure_code", sa.String(80)),
        sa.Column("failure_message", sa.Text()),
        sa.Column("file_name", sa.String(300)),
        sa.Column("size_bytes", sa.BigInteger()),
        sa.Column("sha256", sa.String(64)),
        sa.Column("policy_id", sa.String(40)),
        sa.Column("destination_ids", sa.JSON(), nullable=False),
        sa.Column("work_id", sa.String(40)),
        sa.Column("restore_work_id", sa.String(40)),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("completed_at", UTCDateTime()),
        sa.Column("restored_at", UTCDateTime()))
    op.create_table(
        "database_backup_policies",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("organization_id", sa.String(40),
                  sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False),
        sa.Column("database_id", sa.String(40), sa.ForeignKey("databases.id"), nullable=False,
                  unique=True),
        sa.Column("created_by", sa.String(40), nullable=False),
        sa.Column("schedule", sa.String(100)),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("interval_hours", sa.Integer()),
        sa.Column("retention_days", sa.Integer()),
        sa.Column("retention_count", sa.Integer()),
        sa.Column("retry_on_failure", sa.Boolean(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("destination_ids", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("last_run_at", UTCDateTime()),
        sa.Column("next_run_at", UTCDateTime()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False))
    op.create_index("ix_database_backup_policies_organization_id", "database_backup_policies",
                    ["organization_id"])
    op.create_index("ix_database_backup_policies_due", "database_backup_policies",
                    ["enabled", "next_run_at"])
    op.create_table(
        "database_plans",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("organization_id", sa.String(40),
                  sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False),
        sa.Column("mode", sa.String(20), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("project_id", sa.String(40), nullable=False),
        sa.Column("environment_id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("server_id", sa.String(40)),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("database_id", sa.String(40)),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("accepted_at", UTCDateTime()))
    op.create_index("ix_database_plans_organization_id", "database_plans", ["organization_id"])
    op.create_table(
        "backup_destinations",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("organization_id", sa.String(40),
                  sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("endpoint", sa.String(500), nullable=False),
        sa.Column("bucket", sa.String(200), nullable=False),
        sa.Column("prefix", sa.String(500), nullable=False),
        sa.Column("region", sa.String(100)),
        sa.Column("sealed_credentials", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("organization_id", "name"))
    op.create_index("ix_backup_destinations_organization_id", "backup_destinations",
                    ["organization_id"])
    op.create_table(
        "database_backup_copies",
        sa.Column("backup_id", sa.String(40),
                  sa.ForeignKey("database_backups.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("destination_id", sa.String(40), sa.ForeignKey("backup_destinations.id"),
                  primary_key=True),
        sa.Column("object_key", sa.String(1000), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("size_bytes", sa.BigInteger()),
        sa.Column("failure_message", sa.Text()),
        sa.Column("uploaded_at", UTCDateTime()))
    op.create_index("ix_database_backups_organization_id", "database_backups",
                    ["organization_id"])
    op.create_index("ix_database_backups_database_created", "database_backups",
                    ["database_id", "created_at"])


def downgrade() -> None:
    op.drop_table("database_plans")
    op.drop_table("database_backup_copies")
    op.drop_table("backup_destinations")
    op.drop_table("database_backup_policies")
    op.drop_table("database_backups")
    op.drop_table("database_bindings")
    op.drop_table("databases")
