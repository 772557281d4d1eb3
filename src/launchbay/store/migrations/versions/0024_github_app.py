"""an organization's GitHub App connection, and the commit statuses it reports

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07 13:10:00
"""
import sqlalchemy as sa
from alembic import op

from launchbay.store.models import UTCDateTime

revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "github_connections",
        sa.Column("organization_id", sa.String(40),
                  sa.ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("app_id", sa.String(40), nullable=False),
        sa.Column("installation_id", sa.String(40), nullable=False),
        sa.Column("api_url", sa.String(500), nullable=False),
        sa.Column("sealed_private_key", sa.Text(), nullable=False),
        sa.Column("account_login", sa.String(200), nullable=True),
        sa.Column("account_type", sa.String(40), nullable=True),
        sa.Column("repositories_selection", sa.String(20), nullable=True),
        sa.Column("suspended_at", sa.String(40), nullable=True),
        sa.Column("report_statuses", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(40), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "commit_statuses",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("organization_id", sa.String(40),
                  sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False),
        sa.Column("deployment_id", sa.String(40),
                  sa.ForeignKey("deployments.id", ondelete="CASCADE"), nullable=False,
                  unique=True),
        sa.Column("repository", sa.String(500), nullable=False),
        sa.Column("sha", sa.String(64), nullable=False),
        sa.Column("context", sa.String(200), nullable=False),
        sa.Column("reported_state", sa.String(20), nullable=True),
        sa.Column("done", sa.Boolean(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_commit_statuses_due", "commit_statuses", ["done", "next_attempt_at"])


def downgrade() -> None:
    op.drop_table("commit_statuses")
    op.drop_table("github_connections")
