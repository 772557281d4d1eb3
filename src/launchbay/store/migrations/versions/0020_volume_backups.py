"""backups of storage volumes beside those of databases

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-02 01:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("database_backups") as table:
        table.alter_column("database_id", existing_type=sa.String(40), nullable=True)
        table.add_column(sa.Column("storage_volume_id", sa.String(40)))
    op.create_index("ix_database_backups_volume_created", "database_backups",
                    ["storage_volume_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_database_backups_volume_created", "database_backups")
    op.execute("DELETE FROM database_backups WHERE database_id IS NULL")
    with op.batch_alter_table("database_backups") as table:
        table.drop_column("storage_volume_id")
        table.alter_column("database_id", existing_type=sa.String(40), nullable=False)
