"""servers that are swarm managers: the host keys of the swarm's other nodes, pinned with the
manager's (images are copied to the nodes through the manager)

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-07 19:10:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0030'
down_revision = '0029'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("servers") as batch:
        batch.add_column(sa.Column("node_host_keys", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("servers") as batch:
        batch.drop_column("node_host_keys")
