"""security: the first-admin claim, login throttle windows, image grants

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 10:00:00
"""
import re
import shutil
from pathlib import Path

import sqlalchemy as sa
from alembic import op

from launchbay.store.models import UTCDateTime

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'bootstrap',
        sa.Column('step', sa.String(length=40), nullable=False),
        sa.Column('user_id', sa.String(length=40), nullable=True),
        sa.Column('completed_at', UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('step'),
    )
    # An instance that already has its first admin has claimed the step.
    op.execute("INSERT INTO bootstrap (step, user_id, completed_at) "
               "SELECT 'first-admin', id, created_at FROM users ORDER BY created_at LIMIT 1")
    with op.batch_alter_table('login_throttle', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lockouts', sa.Integer(), nullable=False,
                                      server_default='0'))
        batch_op.add_column(sa.Column('updated_at', UTCDateTime(), nullable=False,
                                      server_default=sa.func.current_timestamp()))
    op.create_table(
        'image_grants',
        sa.Column('organization_id', sa.String(length=40), nullable=False),
        sa.Column('server_id', sa.String(length=40), nullable=False),
        sa.Column('image_id', sa.String(length=100), nullable=False),
        sa.Column('reference', sa.String(length=600), nullable=False),
        sa.Column('granted_at', UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['server_id'], ['servers.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('organization_id', 'server_id', 'image_id'),
    )
    _archive_locators_become_ids()


def _archive_locators_become_ids() -> None:
    """An archive source named its file by path; it now names an upload of its resource by
    id. A template's archive is copied among the resource's own uploads."""
    conn = op.get_bind()
    resources = sa.table('resources', sa.column('id', sa.String), sa.column('source', sa.JSON))
    for resource_id, source in conn.execute(sa.select(resources.c.id, resources.c.source)):
        locator = str((source or {}).get('locator') or '')
        if not source or source.get('kind') != 'archive' or \
                re.fullmatch('[0-9a-f]{40}', locator):
            continue
        path = Path(locator)
        own = path.parent.parent / resource_id / path.name
        if path.is_file() and path != own:
            own.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, own)
        conn.execute(resources.update().where(resources.c.id == resource_id).values(
            source={**source, 'locator': path.name.split('.', 1)[0]}))


def downgrade() -> None:
    op.drop_table('image_grants')
    with op.batch_alter_table('login_throttle', schema=None) as batch_op:
        batch_op.drop_column('updated_at')
        batch_op.drop_column('lockouts')
    op.drop_table('bootstrap')
