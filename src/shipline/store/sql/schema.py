"""The tables of the SQL store, in SQLAlchemy Core, portable between SQLite and PostgreSQL.

The migrations (`store/sql/migrations/versions`) are written by hand to match this module;
a test compares the migrated database with `metadata` on both databases. Names of
constraints and indexes come from `NAMING` so both places spell them the same.

Times are stored as UTC (`UtcDateTime`); JSON values in `sqlalchemy.JSON` columns.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import DateTime, TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)

# 64-bit ids where rows accumulate; SQLite only auto-numbers a column typed INTEGER.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every database.

    SQLite keeps no offset and returns naive values: they are written in UTC and read back
    as aware UTC. A naive value written is taken to be UTC already.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


projects = Table(
    "projects",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("repository", Text, nullable=False),
    Column("default_branch", String(255), nullable=False),
    # The number of the project's latest run; incremented in the run's transaction.
    Column("last_run_number", Integer, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("name"),
)

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("workflow_file", String(1024), nullable=False),
    Column("workflow_name", String(1024), nullable=False),
    Column("workflow_text", Text, nullable=False),
    Column("event", String(64), nullable=False),
    Column("ref", String(1024), nullable=False),
    Column("sha", String(64), nullable=False),
    Column("actor", String(255), nullable=False),
    Column("status", String(16), nullable=False),
    Column("conclusion", String(16)),
    Column("trust", String(16), nullable=False),
    Column("inputs", JSON, nullable=False),
    Column("event_payload", JSON, nullable=False),
    Column("concurrency_group", String(1024)),
    Column("plan_digest", String(128), nullable=False),
    Column("error", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("started_at", UtcDateTime),
    Column("finished_at", UtcDateTime),
    UniqueConstraint("project_id", "number"),
)
# A project's runs, newest first.
Index("ix_runs_project_id_id", runs.c.project_id, runs.c.id.desc())
Index("ix_runs_status_id", runs.c.status, runs.c.id)
Index("ix_runs_project_id_concurrency_group", runs.c.project_id, runs.c.concurrency_group)
# A project's runs with a list filter, newest first (migration 0006).
Index("ix_runs_project_id_status_id", runs.c.project_id, runs.c.status, runs.c.id.desc())
Index("ix_runs_project_id_ref_id", runs.c.project_id, runs.c.ref, runs.c.id.desc())
Index("ix_runs_project_id_event_id", runs.c.project_id, runs.c.event, runs.c.id.desc())
Index(
    "ix_runs_project_id_workflow_file_id",
    runs.c.project_id,
    runs.c.workflow_file,
    runs.c.id.desc(),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("key", String(1024), nullable=False),
    Column("job_id", String(255), nullable=False),
    Column("name", String(1024), nullable=False),
    Column("status", String(16), nullable=False),
    Column("conclusion", String(16)),
    Column("matrix", JSON, nullable=False),
    Column("needs", JSON, nullable=False),
    Column("outputs", JSON, nullable=False),
    Column("runs_on", JSON, nullable=False),
    Column("timeout_minutes", Float, nullable=False),
    Column("tries", Integer, nullable=False),
    Column("lease_owner", String(255)),
    Column("lease_expires_at", UtcDateTime),
    Column("error", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("started_at", UtcDateTime),
    Column("finished_at", UtcDateTime),
    UniqueConstraint("run_id", "attempt", "key"),
)
# Claiming scans queued jobs oldest first; lease expiry scans in_progress ones.
Index("ix_jobs_status_id", jobs.c.status, jobs.c.id)

steps = Table(
    "steps",
    metadata,
    Column("job_id", BigId, ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("index", Integer, nullable=False),
    Column("key", String(1024), nullable=False),
    Column("name", String(1024), nullable=False),
    Column("status", String(16), nullable=False),
    Column("conclusion", String(16)),
    Column("exit_code", Integer),
    Column("started_at", UtcDateTime),
    Column("finished_at", UtcDateTime),
    PrimaryKeyConstraint("job_id", "index"),
)

log_chunks = Table(
    "log_chunks",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("job_id", BigId, ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("step_index", Integer),
    Column("data", LargeBinary, nullable=False),
    UniqueConstraint("job_id", "seq"),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("password_hash", String(512)),
    Column("is_admin", Boolean, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("name"),
)

memberships = Table(
    "memberships",
    metadata,
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("role", String(16), nullable=False),
    PrimaryKeyConstraint("project_id", "user_id"),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("name", String(255), nullable=False),
    Column("secret_hash", String(128), nullable=False),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE")),
    Column("job_id", BigId, ForeignKey("jobs.id", ondelete="CASCADE")),
    Column("scopes", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime),
    Column("revoked_at", UtcDateTime),
    Column("last_used_at", UtcDateTime),
    UniqueConstraint("secret_hash"),
)
Index("ix_tokens_user_id", tokens.c.user_id)
Index("ix_tokens_job_id", tokens.c.job_id)

# No foreign keys: the trail outlives the projects it mentions. Ids are assigned by the
# appender (last id + 1, under the chain's lock) because the hash covers the id.
audit_events = Table(
    "audit_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=False),
    Column("at", UtcDateTime, nullable=False),
    Column("actor", String(255), nullable=False),
    Column("action", String(255), nullable=False),
    Column("decision", String(16), nullable=False),
    Column("project_id", Integer),
    Column("target", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("request_id", String(255), nullable=False),
    Column("data", JSON, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)
Index("ix_audit_events_project_id_id", audit_events.c.project_id, audit_events.c.id)
Index("ix_audit_events_action_id", audit_events.c.action, audit_events.c.id)

events = Table(
    "events",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("at", UtcDateTime, nullable=False),
    Column("kind", String(64), nullable=False),
    Column("run_id", Integer),
    Column("job_id", BigInteger),
    Column("data", JSON, nullable=False),
)
Index("ix_events_run_id_id", events.c.run_id, events.c.id)
Index("ix_events_job_id_id", events.c.job_id, events.c.id)

# Sealed secrets (AES-256-GCM, see `security.sealing`); environment "" is the project scope.
sealed_secrets = Table(
    "secrets",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("environment", String(255), nullable=False),
    Column("name", String(255), nullable=False),
    Column("key_id", String(32), nullable=False),
    Column("nonce", LargeBinary, nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("updated_by", String(255), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("project_id", "environment", "name"),
)

# Remote runners (`shipline runner`): registered credentials and the jobs handed to them.
runners = Table(
    "runners",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(255), nullable=False),
    Column("labels", JSON, nullable=False),
    Column("version", String(64), nullable=False),
    Column("slots", Integer, nullable=False),
    Column("token_id", Integer, ForeignKey("tokens.id", ondelete="SET NULL")),
    Column("paused", Boolean, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_seen_at", UtcDateTime),
    Column("removed_at", UtcDateTime),
)
Index("ix_runners_token_id", runners.c.token_id)

# One try of a job on a runner, with the job token issued for it.
runner_jobs = Table(
    "runner_jobs",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("runner_id", Integer, ForeignKey("runners.id", ondelete="CASCADE"), nullable=False),
    Column("job_id", BigId, ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("try_number", Integer, nullable=False),
    Column("token_id", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("event_id", BigInteger, nullable=False),
    Column("claimed_at", UtcDateTime, nullable=False),
    Column("ended_at", UtcDateTime),
    UniqueConstraint("token_id"),
)
Index("ix_runner_jobs_runner_id_state", runner_jobs.c.runner_id, runner_jobs.c.state)
Index("ix_runner_jobs_job_id", runner_jobs.c.job_id)

# A schedule's firing, claimed by the first server to insert it: with many servers each
# cron tick starts one run.
schedule_fires = Table(
    "schedule_fires",
    metadata,
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("workflow", String(1024), nullable=False),
    Column("cron", String(255), nullable=False),
    Column("due_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("project_id", "workflow", "cron", "due_at"),
)
# Projects the servers poll (no webhooks): the refs seen at the last poll, replaced only
# by the poll that read them (`generation`), so a poll's events are raised once.
poll_states = Table(
    "poll_states",
    metadata,
    Column(
        "project_id",
        Integer,
        ForeignKey("projects.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("interval_seconds", Integer, nullable=False),
    Column("refs", JSON),
    Column("generation", Integer, nullable=False),
    Column("polled_at", UtcDateTime),
)
protection_rules = Table(
    "protection_rules",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(8), nullable=False),
    Column("pattern", String(255), nullable=False),
    Column("push_role", String(16), nullable=False),
    Column("allow_force_push", Boolean, nullable=False),
    Column("allow_deletion", Boolean, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("project_id", "kind", "pattern"),
)

# The salt of a project's webhook secret (the secret is derived from it and the server's
# webhook key, never stored).
webhook_keys = Table(
    "webhook_keys",
    metadata,
    Column(
        "project_id",
        Integer,
        ForeignKey("projects.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("salt", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("forge", String(16), nullable=False),
    Column("delivery_id", String(255), nullable=False),
    Column("event", String(64), nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("detail", Text, nullable=False),
    Column("runs", JSON, nullable=False),
    Column("redeliveries", Integer, nullable=False),
    Column("body", LargeBinary, nullable=False),
    UniqueConstraint("project_id", "forge", "delivery_id"),
)
Index("ix_deliveries_project_id_id", deliveries.c.project_id, deliveries.c.id.desc())

pull_requests = Table(
    "pull_requests",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("title", String(1024), nullable=False),
    Column("body", Text, nullable=False),
    Column("author", String(255), nullable=False),
    Column("head", String(255), nullable=False),
    Column("base", String(255), nullable=False),
    Column("state", String(16), nullable=False),
    Column("head_sha", String(64), nullable=False),
    Column("base_sha", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("closed_at", UtcDateTime),
    UniqueConstraint("project_id", "number"),
)
Index("ix_pull_requests_project_id_head", pull_requests.c.project_id, pull_requests.c.head)


# The deployment control plane (issue 8): environments read from the default branch,
# releases (verified artifacts), deployments queued per environment, protection gates of
# jobs and reviewers' decisions.
environments = Table(
    "environments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("source_sha", String(64), nullable=False),
    Column("read_at", UtcDateTime, nullable=False),
    UniqueConstraint("project_id", "name"),
)

releases = Table(
    "releases",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("artifact", String(255), nullable=False),
    Column("digest", String(80), nullable=False),
    Column("provenance", String(80), nullable=False),
    Column("run_id", Integer, nullable=False),
    Column("job_key", String(255), nullable=False),
    Column("ref", String(255), nullable=False),
    Column("sha", String(64), nullable=False),
    Column("builder", String(255), nullable=False),
    Column("created_by", String(255), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("project_id", "run_id", "artifact", "digest"),
)

deployments = Table(
    "deployments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("environment", String(255), nullable=False),
    Column("release_id", Integer, ForeignKey("releases.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("actor", String(255), nullable=False),
    Column("ref", String(255), nullable=False),
    Column("sha", String(64), nullable=False),
    Column("run_id", Integer),
    Column("job_id", BigInteger),
    Column("previous_release_id", Integer),
    Column("reason", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("started_at", UtcDateTime),
    Column("finished_at", UtcDateTime),
)
Index(
    "ix_deployments_project_id_environment_id",
    deployments.c.project_id,
    deployments.c.environment,
    deployments.c.id,
)
Index("ix_deployments_state_id", deployments.c.state, deployments.c.id)

# Release history per environment (revision 0009): one row per finished rollout.
release_history = Table(
    "release_history",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("environment", String(255), nullable=False),
    Column(
        "deployment_id",
        Integer,
        ForeignKey("deployments.id", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    ),
    Column("release_id", Integer, ForeignKey("releases.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("actor", String(255), nullable=False),
    Column("run_id", Integer, nullable=False),
    Column("ref", String(255), nullable=False),
    Column("sha", String(64), nullable=False),
    Column("artifact", String(255), nullable=False),
    Column("digest", String(80), nullable=False),
    Column("cause", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("rolled_back_to", Integer),
    Column("started_at", UtcDateTime),
    Column("finished_at", UtcDateTime, nullable=False),
)
Index(
    "ix_release_history_project_id_environment_id",
    release_history.c.project_id,
    release_history.c.environment,
    release_history.c.id,
)

deployment_progress = Table(
    "deployment_progress",
    metadata,
    Column("id", BigId, primary_key=True),
    Column(
        "deployment_id",
        Integer,
        ForeignKey("deployments.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("at", UtcDateTime, nullable=False),
    Column("message", Text, nullable=False),
)
Index(
    "ix_deployment_progress_deployment_id_id",
    deployment_progress.c.deployment_id,
    deployment_progress.c.id,
)

gates = Table(
    "gates",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("run_id", Integer, nullable=False),
    Column("job_id", BigInteger, nullable=False),
    Column("environment", String(255), nullable=False),
    Column("state", String(16), nullable=False),
    Column("actor", String(255), nullable=False),
    Column("ref", String(255), nullable=False),
    Column("sha", String(64), nullable=False),
    Column("required", Integer, nullable=False),
    Column("reason", Text, nullable=False),
    Column("wait_until", UtcDateTime),
    Column("created_at", UtcDateTime, nullable=False),
    Column("decided_at", UtcDateTime),
    UniqueConstraint("job_id"),
)
Index("ix_gates_state_id", gates.c.state, gates.c.id)
Index("ix_gates_run_id", gates.c.run_id)

gate_decisions = Table(
    "gate_decisions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("gate_id", Integer, ForeignKey("gates.id", ondelete="CASCADE"), nullable=False),
    Column("user", String(255), nullable=False),
    Column("decision", String(16), nullable=False),
    Column("comment", Text, nullable=False),
    Column("at", UtcDateTime, nullable=False),
    UniqueConstraint("gate_id", "user"),
)
cache_entries = Table(
    "cache_entries",
    metadata,
    # The insertion order: the newest entry of a prefix is the one with the highest id.
    Column("id", BigId, primary_key=True),
    Column("scope", String(1024), nullable=False),
    Column("key", String(512), nullable=False),
    Column("version", String(255), nullable=False),
    Column("blob", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("scope", "key", "version"),
)
