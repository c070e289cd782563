"""The cache index in the database (it was a JSON file beside the blobs, which two server
processes could not share safely): one row per saved cache entry, unique per scope, key
and version.

Revision ID: 0010
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "cache_entries",
        sa.Column("id", BigId, nullable=False),
        sa.Column("scope", sa.String(1024), nullable=False),
        sa.Column("key", sa.String(512), nullable=False),
        sa.Column("version", sa.String(255), nullable=False),
        sa.Column("blob", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_cache_entries"),
        sa.UniqueConstraint("scope", "key", "version", name="uq_cache_entries_scope_key_version"),
    )


def downgrade() -> None:
    op.drop_table("cache_entries")
