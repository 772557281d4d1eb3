"""previews of pull requests: preview policies, preview environments, and the pull request
facts of source events; where a token was last used from

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07 13:00:00
"""
import sqlalchemy as sa
from alembic import op

from launchbay.store.models import UTCDateTime

revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "preview_policies",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("organization_id", sa.String(40),
                  sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False),
        sa.Column("project_id", sa.String(40), sa.ForeignKey("projects.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("resource_id", sa.String(40),
                  sa.ForeignKey("resources.id", ondelete="CASCADE"), nullable=True),
        sa.Column("same_repository", sa.Boolean(), nullable=False),
        sa.Column("fork_previews", sa.String(20), nullable=False),
        sa.Column("secret_backed", sa.Boolean(), nullable=False),
        sa.Column("max_active", sa.Integer(), nullable=False),
        sa.Column("ttl_hours", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(40), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("project_id", "resource_id"),
    )
    op.create_index("ix_preview_policies_organization_id", "preview_policies",
                    ["organization_id"])
    op.create_table(
        "preview_environments",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("organization_id", sa.String(40),
                  sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False),
        sa.Column("project_id", sa.String(40), sa.ForeignKey("projects.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("resource_id", sa.String(40),
                  sa.ForeignKey("resources.id", ondelete="CASCADE"), nullable=False),
        sa.Column("base_environment_id", sa.String(40), nullable=False),
        sa.Column("environment_id", sa.String(40), nullable=True),
        sa.Column("preview_resource_id", sa.String(40), nullable=True),
        sa.Column("server_id", sa.String(40), nullable=False),
        sa.Column("fingerprint", sa.String(40), nullable=False, unique=True),
        sa.Column("provider", sa.String(20), nullable=False),
        sa.Column("repository", sa.String(500), nullable=False),
        sa.Column("head_repository", sa.String(500), nullable=False),
        sa.Column("pull_request_number", sa.Integer(), nullable=False),
        sa.Column("base_ref", sa.String(500), nullable=False),
        sa.Column("head_ref", sa.String(500), nullable=False),
        sa.Column("head_sha", sa.String(64), nullable=False),
        sa.Column("fork", sa.Boolean(), nullable=False),
        sa.Column("with_secrets", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("cleanup_reason", sa.String(40), nullable=True),
        sa.Column("last_deployment_id", sa.String(40), nullable=True),
        sa.Column("created_by", sa.String(40), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("cleaned_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("resource_id", "repository", "pull_request_number"),
    )
    for name, columns in (
            ("ix_preview_environments_org_created", ["organization_id", "created_at"]),
            ("ix_preview_environments_org_resource",
             ["organization_id", "resource_id", "created_at"]),
            ("ix_preview_environments_org_project",
             ["organization_id", "project_id", "created_at"]),
            ("ix_preview_environments_due", ["status", "expires_at"])):
        op.create_index(name, "preview_environments", columns)
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("last_used_address", sa.String(64), nullable=True))
    with op.batch_alter_table("source_events") as batch:
        batch.add_column(sa.Column("pull_request_number", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("pull_request_action", sa.String(20), nullable=True))
        batch.add_column(sa.Column("base_ref", sa.String(500), nullable=True))
        batch.add_column(sa.Column("head_repository", sa.String(500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("source_events") as batch:
        for column in ("head_repository", "base_ref", "pull_request_action",
                       "pull_request_number"):
            batch.drop_column(column)
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("last_used_address")
    op.drop_table("preview_environments")
    op.drop_table("preview_policies")
