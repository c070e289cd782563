"""The initial schema: projects, runs, jobs, steps, logs, users, tokens, audit, events.

Revision ID: 0001
Revises: none
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _at(name: str, *, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("repository", sa.Text(), nullable=False),
        sa.Column("default_branch", sa.String(255), nullable=False),
        sa.Column("last_run_number", sa.Integer(), nullable=False),
        _at("created_at", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_projects"),
        sa.UniqueConstraint("name", name="uq_projects_name"),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("workflow_file", sa.String(1024), nullable=False),
        sa.Column("workflow_name", sa.String(1024), nullable=False),
        sa.Column("workflow_text", sa.Text(), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("ref", sa.String(1024), nullable=False),
        sa.Column("sha", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("conclusion", sa.String(16), nullable=True),
        sa.Column("trust", sa.String(16), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("event_payload", sa.JSON(), nullable=False),
        sa.Column("concurrency_group", sa.String(1024), nullable=True),
        sa.Column("plan_digest", sa.String(128), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        _at("created_at", nullable=False),
        _at("started_at"),
        _at("finished_at"),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name="fk_runs_project_id_projects",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("project_id", "number", name="uq_runs_project_id_number"),
    )
    op.create_index("ix_runs_project_id_id", "runs", ["project_id", sa.column("id").desc()])
    op.create_index("ix_runs_status_id", "runs", ["status", "id"])
    op.create_index(
        "ix_runs_project_id_concurrency_group", "runs", ["project_id", "concurrency_group"]
    )
    op.create_table(
        "jobs",
        sa.Column("id", BigId, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(1024), nullable=False),
        sa.Column("job_id", sa.String(255), nullable=False),
        sa.Column("name", sa.String(1024), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("conclusion", sa.String(16), nullable=True),
        sa.Column("matrix", sa.JSON(), nullable=False),
        sa.Column("needs", sa.JSON(), nullable=False),
        sa.Column("outputs", sa.JSON(), nullable=False),
        sa.Column("runs_on", sa.JSON(), nullable=False),
        sa.Column("timeout_minutes", sa.Float(), nullable=False),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(255), nullable=True),
        _at("lease_expires_at"),
        sa.Column("error", sa.Text(), nullable=True),
        _at("created_at", nullable=False),
        _at("started_at"),
        _at("finished_at"),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_jobs_run_id_runs", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("run_id", "attempt", "key", name="uq_jobs_run_id_attempt_key"),
    )
    op.create_index("ix_jobs_status_id", "jobs", ["status", "id"])
    op.create_table(
        "steps",
        sa.Column("job_id", BigId, nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(1024), nullable=False),
        sa.Column("name", sa.String(1024), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("conclusion", sa.String(16), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        _at("started_at"),
        _at("finished_at"),
        sa.PrimaryKeyConstraint("job_id", "index", name="pk_steps"),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_steps_job_id_jobs", ondelete="CASCADE"
        ),
    )
    op.create_table(
        "log_chunks",
        sa.Column("id", BigId, nullable=False),
        sa.Column("job_id", BigId, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_log_chunks"),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_log_chunks_job_id_jobs", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("job_id", "seq", name="uq_log_chunks_job_id_seq"),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("password_hash", sa.String(512), nullable=True),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        _at("created_at", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("name", name="uq_users_name"),
    )
    op.create_table(
        "memberships",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "user_id", name="pk_memberships"),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name="fk_memberships_project_id_projects",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_memberships_user_id_users", ondelete="CASCADE"
        ),
    )
    op.create_table(
        "tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("secret_hash", sa.String(128), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("job_id", BigId, nullable=True),
        sa.Column("scopes", sa.JSON(), nullable=False),
        _at("created_at", nullable=False),
        _at("expires_at"),
        _at("revoked_at"),
        _at("last_used_at"),
        sa.PrimaryKeyConstraint("id", name="pk_tokens"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_tokens_user_id_users", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_tokens_job_id_jobs", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("secret_hash", name="uq_tokens_secret_hash"),
    )
    op.create_index("ix_tokens_user_id", "tokens", ["user_id"])
    op.create_index("ix_tokens_job_id", "tokens", ["job_id"])
    op.create_table(
        "audit_events",
        sa.Column("id", BigId, nullable=False, autoincrement=False),
        _at("at", nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("action", sa.String(255), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("request_id", sa.String(255), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_events"),
    )
    op.create_index("ix_audit_events_project_id_id", "audit_events", ["project_id", "id"])
    op.create_index("ix_audit_events_action_id", "audit_events", ["action", "id"])
    op.create_table(
        "events",
        sa.Column("id", BigId, nullable=False),
        _at("at", nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("job_id", sa.BigInteger(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
    )
    op.create_index("ix_events_run_id_id", "events", ["run_id", "id"])
    op.create_index("ix_events_job_id_id", "events", ["job_id", "id"])


def downgrade() -> None:
    for table in (
        "events",
        "audit_events",
        "tokens",
        "memberships",
        "users",
        "log_chunks",
        "steps",
        "jobs",
        "runs",
        "projects",
    ):
        op.drop_table(table)
