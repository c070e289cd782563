"""Remote runners: registered runners, the jobs handed to them, claimed schedule firings.

Revision ID: 0004
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0006"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _at(name: str, *, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "runners",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=True),
        sa.Column("paused", sa.Boolean(), nullable=False),
        _at("created_at", nullable=False),
        _at("last_seen_at"),
        _at("removed_at"),
        sa.PrimaryKeyConstraint("id", name="pk_runners"),
        sa.ForeignKeyConstraint(
            ["token_id"], ["tokens.id"], name="fk_runners_token_id_tokens", ondelete="SET NULL"
        ),
    )
    op.create_index("ix_runners_token_id", "runners", ["token_id"])
    op.create_table(
        "runner_jobs",
        sa.Column("id", BigId, nullable=False),
        sa.Column("runner_id", sa.Integer(), nullable=False),
        sa.Column("job_id", BigId, nullable=False),
        sa.Column("try_number", sa.Integer(), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        _at("claimed_at", nullable=False),
        _at("ended_at"),
        sa.PrimaryKeyConstraint("id", name="pk_runner_jobs"),
        sa.ForeignKeyConstraint(
            ["runner_id"],
            ["runners.id"],
            name="fk_runner_jobs_runner_id_runners",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_runner_jobs_job_id_jobs", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("token_id", name="uq_runner_jobs_token_id"),
    )
    op.create_index("ix_runner_jobs_runner_id_state", "runner_jobs", ["runner_id", "state"])
    op.create_index("ix_runner_jobs_job_id", "runner_jobs", ["job_id"])
    op.create_table(
        "schedule_fires",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("workflow", sa.String(1024), nullable=False),
        sa.Column("cron", sa.String(255), nullable=False),
        _at("due_at", nullable=False),
        sa.PrimaryKeyConstraint(
            "project_id", "workflow", "cron", "due_at", name="pk_schedule_fires"
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name="fk_schedule_fires_project_id_projects",
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    for table in ("schedule_fires", "runner_jobs", "runners"):
        op.drop_table(table)
