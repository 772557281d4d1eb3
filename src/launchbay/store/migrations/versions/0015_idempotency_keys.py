"""idempotency keys

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 14:30:00
"""
import sqlalchemy as sa
from alembic import op

from launchbay.store.models import UTCDateTime

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'idempotency_keys',
        sa.Column('organization_id', sa.String(length=40), nullable=False),
        sa.Column('operation', sa.String(length=100), nullable=False),
        sa.Column('key', sa.String(length=200), nullable=False),
        sa.Column('fingerprint', sa.String(length=64), nullable=False),
        sa.Column('result', sa.JSON(), nullable=True),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('organization_id', 'operation', 'key'),
    )
    op.create_index('ix_idempotency_keys_created_at', 'idempotency_keys', ['created_at'])


def downgrade() -> None:
    op.drop_table('idempotency_keys')
