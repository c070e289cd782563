"""Release history per environment: one row per finished rollout (which release, when, by
whom, from which run and commit, the outcome and why).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

When = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "release_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("environment", sa.String(255), nullable=False),
        sa.Column("deployment_id", sa.Integer(), nullable=False),
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("ref", sa.String(255), nullable=False),
        sa.Column("sha", sa.String(64), nullable=False),
        sa.Column("artifact", sa.String(255), nullable=False),
        sa.Column("digest", sa.String(80), nullable=False),
        sa.Column("cause", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("rolled_back_to", sa.Integer(), nullable=True),
        sa.Column("started_at", When, nullable=True),
        sa.Column("finished_at", When, nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name="fk_release_history_project_id_projects",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployments.id"],
            name="fk_release_history_deployment_id_deployments",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["release_id"],
            ["releases.id"],
            name="fk_release_history_release_id_releases",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_release_history"),
        sa.UniqueConstraint("deployment_id", name="uq_release_history_deployment_id"),
    )
    op.create_index(
        "ix_release_history_project_id_environment_id",
        "release_history",
        ["project_id", "environment", "id"],
    )
    # Rollouts that finished before this revision: their deployments are the history.
    op.execute(
        """
        INSERT INTO release_history (
            project_id, environment, deployment_id, release_id, kind, outcome, actor,
            run_id, ref, sha, artifact, digest, cause, reason, rolled_back_to,
            started_at, finished_at)
        SELECT d.project_id, d.environment, d.id, d.release_id, d.kind, d.state, d.actor,
            r.run_id, r.ref, r.sha, r.artifact, r.digest, '', d.reason,
            CASE WHEN d.state = 'rolled_back' THEN d.previous_release_id END,
            d.started_at, COALESCE(d.finished_at, d.created_at)
        FROM deployments d JOIN releases r ON r.id = d.release_id
        WHERE d.state IN ('success', 'rolled_back', 'failure')
        ORDER BY d.finished_at, d.id
        """
    )


def downgrade() -> None:
    op.drop_index("ix_release_history_project_id_environment_id", "release_history")
    op.drop_table("release_history")
