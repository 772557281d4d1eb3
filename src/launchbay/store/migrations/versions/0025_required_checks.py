"""the checks a pushed commit must have passed before an auto-deploy policy deploys it

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07 13:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("auto_deploy_policies") as batch:
        batch.add_column(sa.Column("required_checks", sa.JSON(), nullable=False,
                                   server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("auto_deploy_policies") as batch:
        batch.drop_column("required_checks")
