"""project kinds: the features' own projects are marked as theirs

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 14:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('projects') as batch:
        batch.add_column(sa.Column('kind', sa.String(length=20), nullable=False,
                                   server_default='user'))
    # Until now a feature found its project by slug alone: whatever held the slug was its.
    projects = sa.table('projects', sa.column('slug', sa.String), sa.column('kind', sa.String))
    for kind, slug in (('dployr', projects.c.slug == 'services'),
                       ('dploy', projects.c.slug == 'ephemeral'),
                       ('shipyard', projects.c.slug.like('hosted-%'))):
        op.execute(projects.update().where(slug).values(kind=kind))


def downgrade() -> None:
    with op.batch_alter_table('projects') as batch:
        batch.drop_column('kind')
