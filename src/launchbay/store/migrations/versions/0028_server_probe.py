"""servers reached over SSH: failed background probes in a row (two make one unreachable),
and the public address their domains should point at

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-07 15:10:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0028'
down_revision = '0027'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("servers") as batch:
        batch.add_column(sa.Column("probe_failures", sa.Integer(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("public_address", sa.String(300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("servers") as batch:
        batch.drop_column("public_address")
        batch.drop_column("probe_failures")
