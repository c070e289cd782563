"""The deployment control plane: environments, releases, deployments and their progress,
protection gates of jobs and reviewers' decisions.

Revision ID: 0008
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0002"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = sa.DateTime(timezone=True)


def _project_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["project_id"], ["projects.id"], name=f"fk_{table}_project_id_projects", ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "environments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("source_sha", sa.String(64), nullable=False),
        sa.Column("read_at", When, nullable=False),
        _project_fk("environments"),
        sa.PrimaryKeyConstraint("id", name="pk_environments"),
        sa.UniqueConstraint("project_id", "name", name="uq_environments_project_id_name"),
    )
    op.create_table(
        "releases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("artifact", sa.String(255), nullable=False),
        sa.Column("digest", sa.String(80), nullable=False),
        sa.Column("provenance", sa.String(80), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("job_key", sa.String(255), nullable=False),
        sa.Column("ref", sa.String(255), nullable=False),
        sa.Column("sha", sa.String(64), nullable=False),
        sa.Column("builder", sa.String(255), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_at", When, nullable=False),
        _project_fk("releases"),
        sa.PrimaryKeyConstraint("id", name="pk_releases"),
        sa.UniqueConstraint(
            "project_id",
            "run_id",
            "artifact",
            "digest",
            name="uq_releases_project_id_run_id_artifact_digest",
        ),
    )
    op.create_table(
        "deployments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("environment", sa.String(255), nullable=False),
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("ref", sa.String(255), nullable=False),
        sa.Column("sha", sa.String(64), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("job_id", sa.BigInteger(), nullable=True),
        sa.Column("previous_release_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", When, nullable=False),
        sa.Column("started_at", When, nullable=True),
        sa.Column("finished_at", When, nullable=True),
        _project_fk("deployments"),
        sa.ForeignKeyConstraint(
            ["release_id"],
            ["releases.id"],
            name="fk_deployments_release_id_releases",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_deployments"),
    )
    op.create_index(
        "ix_deployments_project_id_environment_id",
        "deployments",
        ["project_id", "environment", "id"],
    )
    op.create_index("ix_deployments_state_id", "deployments", ["state", "id"])
    op.create_table(
        "deployment_progress",
        sa.Column("id", BigId, nullable=False),
        sa.Column("deployment_id", sa.Integer(), nullable=False),
        sa.Column("at", When, nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployments.id"],
            name="fk_deployment_progress_deployment_id_deployments",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_deployment_progress"),
    )
    op.create_index(
        "ix_deployment_progress_deployment_id_id",
        "deployment_progress",
        ["deployment_id", "id"],
    )
    op.create_table(
        "gates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.BigInteger(), nullable=False),
        sa.Column("environment", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("ref", sa.String(255), nullable=False),
        sa.Column("sha", sa.String(64), nullable=False),
        sa.Column("required", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("wait_until", When, nullable=True),
        sa.Column("created_at", When, nullable=False),
        sa.Column("decided_at", When, nullable=True),
        _project_fk("gates"),
        sa.PrimaryKeyConstraint("id", name="pk_gates"),
        sa.UniqueConstraint("job_id", name="uq_gates_job_id"),
    )
    op.create_index("ix_gates_state_id", "gates", ["state", "id"])
    op.create_index("ix_gates_run_id", "gates", ["run_id"])
    op.create_table(
        "gate_decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("gate_id", sa.Integer(), nullable=False),
        sa.Column("user", sa.String(255), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("at", When, nullable=False),
        sa.ForeignKeyConstraint(
            ["gate_id"], ["gates.id"], name="fk_gate_decisions_gate_id_gates", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_gate_decisions"),
        sa.UniqueConstraint("gate_id", "user", name="uq_gate_decisions_gate_id_user"),
    )


def downgrade() -> None:
    op.drop_table("gate_decisions")
    op.drop_table("gates")
    op.drop_table("deployment_progress")
    op.drop_table("deployments")
    op.drop_table("environments")
    op.drop_table("releases")
