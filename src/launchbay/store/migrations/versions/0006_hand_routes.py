"""routes added by hand (domain bindings with a raw upstream), instance registration

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 09:10:00
"""
import sqlalchemy as sa
from alembic import op

import launchbay.store.models

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('domain_bindings') as batch:
        batch.alter_column('resource_id', existing_type=sa.String(length=40), nullable=True)
        batch.add_column(sa.Column('upstream', sa.String(length=500), nullable=True))
    op.create_table('instance_registrations',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('instance_id', sa.String(length=200), nullable=False),
    sa.Column('issuer', sa.String(length=500), nullable=False),
    sa.Column('domain', sa.String(length=253), nullable=True),
    sa.Column('registered_at', launchbay.store.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )


def downgrade() -> None:
    op.drop_table('instance_registrations')
    op.execute("DELETE FROM domain_bindings WHERE resource_id IS NULL")
    with op.batch_alter_table('domain_bindings') as batch:
        batch.drop_column('upstream')
        batch.alter_column('resource_id', existing_type=sa.String(length=40), nullable=False)
