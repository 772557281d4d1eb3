"""auto-deploy policies, the source events they act on, and deploy tokens

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-02 01:10:00
"""
import sqlalchemy as sa
from alembic import op

from launchbay.store.models import UTCDateTime

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "auto_deploy_policies",
        sa.Column("resource_id", sa.String(40),
                  sa.ForeignKey("resources.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("organization_id", sa.String(40),
                  sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False),
        sa.Column("fingerprint", sa.String(40), nullable=False, unique=True),
        sa.Column("repository", sa.String(500), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("trigger_kind", sa.String(40), nullable=False),
        sa.Column("refs", sa.JSON(), nullable=False),
        sa.Column("event_kinds", sa.JSON(), nullable=False),
        sa.Column("include_paths", sa.JSON(), nullable=False),
        sa.Column("exclude_paths", sa.JSON(), nullable=False),
        sa.Column("dedupe_window_seconds", sa.Integer(), nullable=False),
        sa.Column("sealed_webhook_secret", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(40), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False))
    op.create_index("ix_auto_deploy_policies_organization_id", "auto_deploy_policies",
                    ["organization_id"])
    op.create_index("ix_auto_deploy_policies_repository", "auto_deploy_policies", ["repository"])
    op.create_table(
        "source_events",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("organization_id", sa.String(40),
                  sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False),
        sa.Column("project_id", sa.String(40)),
        sa.Column("source_kind", sa.String(20), nullable=False),
        sa.Column("event_kind", sa.String(20), nullable=False),
        sa.Column("delivery_id", sa.String(200), nullable=False),
        sa.Column("repository", sa.String(500), nullable=False),
        sa.Column("ref", sa.String(500), nullable=False),
        sa.Column("revision", sa.String(64), nullable=False),
        sa.Column("before_revision", sa.String(64)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("dedupe_of_id", sa.String(40)),
        sa.Column("resource_ids", sa.JSON(), nullable=False),
        sa.Column("policy_results", sa.JSON(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("dispatched_at", UTCDateTime()),
        sa.UniqueConstraint("organization_id", "source_kind", "delivery_id"))
    op.create_index("ix_source_events_org_received", "source_events",
                    ["organization_id", "received_at"])
    op.create_index("ix_source_events_facts", "source_events",
                    ["organization_id", "repository", "ref", "revision"])
    with op.batch_alter_table("api_tokens") as table:
        table.add_column(sa.Column("kind", sa.String(20), nullable=False, server_default="api"))
        table.add_column(sa.Column("targets", sa.JSON()))


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as table:
        table.drop_column("targets")
        table.drop_column("kind")
    op.drop_table("source_events")
    op.drop_table("auto_deploy_policies")
