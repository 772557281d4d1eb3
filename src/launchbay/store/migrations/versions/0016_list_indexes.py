"""indexes for the lists' sorts and the health prune

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01 17:05:00
"""
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

INDEXES = [
    ("ix_resources_org_name", "resources", ["organization_id", "name"]),
    ("ix_deployments_org_created", "deployments", ["organization_id", "created_at"]),
    ("ix_operator_work_org_created", "operator_work", ["organization_id", "created_at"]),
    ("ix_health_observed", "health_observations", ["observed_at"]),
]


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
