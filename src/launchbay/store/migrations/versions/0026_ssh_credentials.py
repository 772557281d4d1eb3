"""SSH credentials of organizations, and the credential each server is reached with

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-07 13:45:00
"""
import sqlalchemy as sa
from alembic import op

from launchbay.store.models import UTCDateTime

revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ssh_credentials",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("organization_id", sa.String(40),
                  sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("username", sa.String(100), nullable=True),
        sa.Column("key_type", sa.String(20), nullable=False),
        sa.Column("key_bits", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(100), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("sealed_private_key", sa.Text(), nullable=False),
        sa.Column("generated", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(40), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("rotated_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_ssh_credentials_org_created", "ssh_credentials",
                    ["organization_id", "created_at"])
    with op.batch_alter_table("servers") as batch:
        batch.add_column(sa.Column("credential_id", sa.String(40), nullable=True))
        batch.create_foreign_key("fk_servers_credential_id", "ssh_credentials",
                                 ["credential_id"], ["id"], ondelete="RESTRICT")
        batch.create_index("ix_servers_credential_id", ["credential_id"])


def downgrade() -> None:
    with op.batch_alter_table("servers") as batch:
        batch.drop_index("ix_servers_credential_id")
        batch.drop_constraint("fk_servers_credential_id", type_="foreignkey")
        batch.drop_column("credential_id")
    op.drop_table("ssh_credentials")
