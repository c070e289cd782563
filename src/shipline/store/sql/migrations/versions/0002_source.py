"""Source: branch and tag protection rules, webhook keys, webhook deliveries, hosted pull
requests.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0004"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _at(name: str, *, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _project_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["project_id"],
        ["projects.id"],
        name=f"fk_{table}_project_id_projects",
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "protection_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("pattern", sa.String(255), nullable=False),
        sa.Column("push_role", sa.String(16), nullable=False),
        sa.Column("allow_force_push", sa.Boolean(), nullable=False),
        sa.Column("allow_deletion", sa.Boolean(), nullable=False),
        _at("created_at", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_protection_rules"),
        _project_fk("protection_rules"),
        sa.UniqueConstraint(
            "project_id", "kind", "pattern", name="uq_protection_rules_project_id_kind_pattern"
        ),
    )
    op.create_table(
        "webhook_keys",
        sa.Column("project_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("salt", sa.String(64), nullable=False),
        _at("created_at", nullable=False),
        sa.PrimaryKeyConstraint("project_id", name="pk_webhook_keys"),
        _project_fk("webhook_keys"),
    )
    op.create_table(
        "deliveries",
        sa.Column("id", BigId, nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("forge", sa.String(16), nullable=False),
        sa.Column("delivery_id", sa.String(255), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        _at("received_at", nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("runs", sa.JSON(), nullable=False),
        sa.Column("redeliveries", sa.Integer(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_deliveries"),
        _project_fk("deliveries"),
        sa.UniqueConstraint(
            "project_id", "forge", "delivery_id", name="uq_deliveries_project_id_forge_delivery_id"
        ),
    )
    op.create_index(
        "ix_deliveries_project_id_id", "deliveries", ["project_id", sa.column("id").desc()]
    )
    op.create_table(
        "pull_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(1024), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("author", sa.String(255), nullable=False),
        sa.Column("head", sa.String(255), nullable=False),
        sa.Column("base", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("head_sha", sa.String(64), nullable=False),
        sa.Column("base_sha", sa.String(64), nullable=False),
        _at("created_at", nullable=False),
        _at("updated_at", nullable=False),
        _at("closed_at"),
        sa.PrimaryKeyConstraint("id", name="pk_pull_requests"),
        _project_fk("pull_requests"),
        sa.UniqueConstraint("project_id", "number", name="uq_pull_requests_project_id_number"),
    )
    op.create_index("ix_pull_requests_project_id_head", "pull_requests", ["project_id", "head"])


def downgrade() -> None:
    op.drop_table("pull_requests")
    op.drop_table("deliveries")
    op.drop_table("webhook_keys")
    op.drop_table("protection_rules")
