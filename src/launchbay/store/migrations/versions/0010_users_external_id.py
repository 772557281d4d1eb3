"""users external id

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-22 21:43:23.138576
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('external_id', sa.String(length=500), nullable=True))
        batch_op.create_unique_constraint('uq_users_external_id', ['external_id'])


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_constraint('uq_users_external_id', type_='unique')
        batch_op.drop_column('external_id')
