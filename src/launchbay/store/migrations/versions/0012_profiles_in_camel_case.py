"""profiles in camelCase

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 13:00:00

A resource's profiles were written in snake_case by some writers and camelCase by others,
and read in camelCase by the edge proxy (so a disabled generated access or a path prefix had
no effect). They are all camelCase now, as on the wire.
"""
import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

PROFILES = ('source', 'runtime_profile', 'network_profile', 'health_policy', 'access_profile')


def _camel(key: str) -> str:
    first, *rest = key.split('_')
    return first + ''.join(part.capitalize() for part in rest)


def _camelized(profile: dict) -> dict:
    """Its keys in camelCase; a health policy's `http` check too; never the user's own keys
    (a source's `metadata`)."""
    return {_camel(k): _camelized(v) if k == 'http' and isinstance(v, dict) else v
            for k, v in profile.items()}


def upgrade() -> None:
    conn = op.get_bind()
    resources = sa.table('resources', sa.column('id', sa.String),
                         *(sa.column(c, sa.JSON) for c in PROFILES))
    for row in conn.execute(sa.select(resources)).mappings().all():
        changed = {c: _camelized(row[c]) for c in PROFILES
                   if isinstance(row[c], dict) and _camelized(row[c]) != row[c]}
        if changed:
            conn.execute(resources.update().where(resources.c.id == row['id']).values(**changed))


def downgrade() -> None:
    pass  # camelCase profiles read as well as snake_case ones did
