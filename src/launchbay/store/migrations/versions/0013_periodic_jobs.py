"""periodic jobs

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 13:30:00
"""
import sqlalchemy as sa
from alembic import op

from launchbay.store.models import UTCDateTime

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'periodic_jobs',
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('holder', sa.String(length=200), nullable=True),
        sa.Column('last_started_at', UTCDateTime(), nullable=True),
        sa.Column('runs', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )


def downgrade() -> None:
    op.drop_table('periodic_jobs')
