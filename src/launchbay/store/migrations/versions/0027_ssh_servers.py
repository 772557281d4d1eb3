"""servers reached over SSH: their user, pinned host key, last connectivity, deactivation;
one server per provider, host and port in an organization

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-07 14:20:00
"""
import sqlalchemy as sa
from alembic import op

from launchbay.store.models import UTCDateTime

revision = '0027'
down_revision = '0026'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("servers") as batch:
        batch.add_column(sa.Column("ssh_username", sa.String(100), nullable=True))
        batch.add_column(sa.Column("host_public_key", sa.Text(), nullable=True))
        batch.add_column(sa.Column("host_key_fingerprint", sa.String(100), nullable=True))
        batch.add_column(sa.Column("connectivity_status", sa.String(20), nullable=True))
        batch.add_column(sa.Column("connectivity_checked_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("deactivated_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("deactivation_reason", sa.String(500), nullable=True))
        batch.create_unique_constraint("uq_servers_org_provider_host_port",
                                       ["organization_id", "provider_key", "host", "port"])


def downgrade() -> None:
    with op.batch_alter_table("servers") as batch:
        batch.drop_constraint("uq_servers_org_provider_host_port", type_="unique")
        for column in ("deactivation_reason", "deactivated_at", "connectivity_checked_at",
                       "connectivity_status", "host_key_fingerprint", "host_public_key",
                       "ssh_username"):
            batch.drop_column(column)
