"""Indexes for a project's runs listed with a filter (status, branch, event, workflow),
newest first: with thousands of runs the list reads one index range instead of scanning
the project's runs (or every run of a status, across projects).

Revision ID: 0006
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0003"
branch_labels = None
depends_on = None

# (index name, the filtered column): each index is (project_id, column, id DESC).
INDEXES = [
    ("ix_runs_project_id_status_id", "status"),
    ("ix_runs_project_id_ref_id", "ref"),
    ("ix_runs_project_id_event_id", "event"),
    ("ix_runs_project_id_workflow_file_id", "workflow_file"),
]


def upgrade() -> None:
    for name, column in INDEXES:
        op.create_index(name, "runs", ["project_id", column, sa.column("id").desc()])


def downgrade() -> None:
    for name, _ in INDEXES:
        op.drop_index(name, table_name="runs")
