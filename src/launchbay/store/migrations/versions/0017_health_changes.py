"""health history as changes of state plus per-minute rollups; lists by project

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01 18:50:00
"""
import sqlalchemy as sa
from alembic import op

from launchbay.store.models import UTCDateTime

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("health_observations") as table:
        table.add_column(sa.Column("state", sa.String(300), nullable=True))
    op.create_table(
        "health_rollups",
        sa.Column("resource_id", sa.String(40),
                  sa.ForeignKey("resources.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("hour", UTCDateTime(), primary_key=True),
        sa.Column("minutes", sa.String(60), nullable=False))
    op.create_index("ix_health_rollups_hour", "health_rollups", ["hour"])
    op.create_index("ix_resources_project_name", "resources", ["project_id", "name"])
    op.create_index("ix_deployments_project_created", "deployments", ["project_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_deployments_project_created", table_name="deployments")
    op.drop_index("ix_resources_project_name", table_name="resources")
    op.drop_index("ix_health_rollups_hour", table_name="health_rollups")
    op.drop_table("health_rollups")
    with op.batch_alter_table("health_observations") as table:
        table.drop_column("state")
