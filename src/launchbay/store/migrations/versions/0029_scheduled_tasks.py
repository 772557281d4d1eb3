"""scheduled tasks of resources, their runs (one per fire time) and the lines runs wrote

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-07 15:30:00
"""
import sqlalchemy as sa
from alembic import op

from launchbay.store.models import UTCDateTime

revision = '0029'
down_revision = '0028'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scheduled_tasks",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("organization_id", sa.String(40),
                  sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False),
        sa.Column("project_id", sa.String(40), nullable=False),
        sa.Column("environment_id", sa.String(40), nullable=False),
        sa.Column("resource_id", sa.String(40),
                  sa.ForeignKey("resources.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_by", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("schedule", sa.String(100), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("command_kind", sa.String(10), nullable=False),
        sa.Column("command", sa.JSON(), nullable=False),
        sa.Column("timeout_seconds", sa.Integer(), nullable=False),
        sa.Column("retry_limit", sa.Integer(), nullable=False),
        sa.Column("concurrency_policy", sa.String(10), nullable=False),
        sa.Column("misfire_policy", sa.String(10), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("next_fire_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_scheduled_tasks_due", "scheduled_tasks", ["status", "next_fire_at"])
    op.create_index("ix_scheduled_tasks_org", "scheduled_tasks",
                    ["organization_id", "created_at", "id"])
    op.create_index("ix_scheduled_tasks_org_resource", "scheduled_tasks",
                    ["organization_id", "resource_id", "created_at", "id"])
    op.create_table(
        "scheduled_task_runs",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("organization_id", sa.String(40), nullable=False),
        sa.Column("task_id", sa.String(40),
                  sa.ForeignKey("scheduled_tasks.id", ondelete="CASCADE"), nullable=False),
        sa.Column("resource_id", sa.String(40), nullable=False),
        sa.Column("server_id", sa.String(40), nullable=False),
        sa.Column("trigger_kind", sa.String(10), nullable=False),
        sa.Column("scheduled_for", UTCDateTime(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("skipped_reason", sa.String(40), nullable=True),
        sa.Column("stop_reason", sa.String(20), nullable=True),
        sa.Column("deployment_id", sa.String(40), nullable=True),
        sa.Column("container_id", sa.String(80), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("failure_summary", sa.Text(), nullable=True),
        sa.Column("not_before", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("task_id", "scheduled_for", "attempt"),
    )
    op.create_index("ix_scheduled_task_runs_task", "scheduled_task_runs",
                    ["task_id", "created_at", "id"])
    op.create_index("ix_scheduled_task_runs_org", "scheduled_task_runs",
                    ["organization_id", "created_at", "id"])
    op.create_index("ix_scheduled_task_runs_org_task", "scheduled_task_runs",
                    ["organization_id", "task_id", "created_at", "id"])
    op.create_index("ix_scheduled_task_runs_org_resource", "scheduled_task_runs",
                    ["organization_id", "resource_id", "created_at", "id"])
    op.create_index("ix_scheduled_task_runs_status", "scheduled_task_runs", ["status"])
    op.create_table(
        "scheduled_task_run_lines",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(40),
                  sa.ForeignKey("scheduled_task_runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("stream", sa.String(6), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
    )
    op.create_index("ix_scheduled_task_run_lines_run", "scheduled_task_run_lines",
                    ["run_id", "id"])


def downgrade() -> None:
    op.drop_table("scheduled_task_run_lines")
    op.drop_table("scheduled_task_runs")
    op.drop_table("scheduled_tasks")
