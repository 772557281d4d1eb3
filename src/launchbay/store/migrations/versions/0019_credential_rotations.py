"""database logins and their rotations

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02 00:30:00
"""
import sqlalchemy as sa
from alembic import op

from launchbay.store.models import UTCDateTime

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("databases") as table:
        table.add_column(sa.Column("login", sa.String(200)))
        table.add_column(sa.Column("secret_version", sa.Integer(), nullable=False,
                                   server_default="1"))
        table.add_column(sa.Column("sealed_admin_secret", sa.Text()))
    op.create_table(
        "database_credential_rotations",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("organization_id", sa.String(40),
                  sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False),
        sa.Column("database_id", sa.String(40), sa.ForeignKey("databases.id"), nullable=False),
        sa.Column("binding_id", sa.String(40), nullable=False),
        sa.Column("requested_by", sa.String(40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("new_login", sa.String(200)),
        sa.Column("sealed_new_secret", sa.Text()),
        sa.Column("old_login", sa.String(200)),
        sa.Column("sealed_old_secret", sa.Text()),
        sa.Column("deployment_ids", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("swapped_at", UTCDateTime()),
        sa.Column("completed_at", UTCDateTime()))
    for column in ("organization_id", "database_id", "status"):
        op.create_index(f"ix_database_credential_rotations_{column}",
                        "database_credential_rotations", [column])


def downgrade() -> None:
    op.drop_table("database_credential_rotations")
    with op.batch_alter_table("databases") as table:
        table.drop_column("sealed_admin_secret")
        table.drop_column("secret_version")
        table.drop_column("login")
