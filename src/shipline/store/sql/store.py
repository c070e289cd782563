"""`SqlStore`: the store on SQLite (embedded default) or PostgreSQL (many servers)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Connection

from shipline.store.ports import (
    AuditStore,
    CacheIndexStore,
    DeliveryStore,
    DeploymentStore,
    EnvironmentStore,
    EventStore,
    GateStore,
    JobStore,
    LogStore,
    MembershipStore,
    PollStore,
    ProjectStore,
    ProtectionStore,
    PullRequestStore,
    ReleaseHistoryStore,
    ReleaseStore,
    RunnerStore,
    RunStore,
    ScheduleStore,
    SecretStore,
    StepStore,
    Store,
    TokenStore,
    UserStore,
    WebhookStore,
)
from shipline.store.sql.audit import SqlAuditStore, SqlEventStore
from shipline.store.sql.caches import SqlCacheIndexStore
from shipline.store.sql.deployments import (
    SqlDeploymentStore,
    SqlEnvironmentStore,
    SqlReleaseStore,
)
from shipline.store.sql.engine import WRITE_OPTION, is_sqlite, make_engine
from shipline.store.sql.gates import SqlGateStore
from shipline.store.sql.jobs import SqlJobStore
from shipline.store.sql.logs import SqlLogStore
from shipline.store.sql.migrations import upgrade
from shipline.store.sql.polls import SqlPollStore
from shipline.store.sql.projects import SqlProjectStore
from shipline.store.sql.release_history import SqlReleaseHistoryStore
from shipline.store.sql.runners import SqlRunnerStore, SqlScheduleStore
from shipline.store.sql.runs import SqlRunStore
from shipline.store.sql.secrets import SqlSecretStore
from shipline.store.sql.signals import SqlQueueSignals
from shipline.store.sql.source import (
    SqlDeliveryStore,
    SqlProtectionStore,
    SqlPullRequestStore,
    SqlWebhookStore,
)
from shipline.store.sql.steps import SqlStepStore
from shipline.store.sql.users import SqlMembershipStore, SqlTokenStore, SqlUserStore


@dataclass(slots=True)
class SqlTransaction:
    """The repositories of one database transaction (see `store.ports.Transaction`).

    Typed by their ports, so that mypy checks each implementation against its protocol.
    """

    projects: ProjectStore
    runs: RunStore
    jobs: JobStore
    steps: StepStore
    logs: LogStore
    users: UserStore
    members: MembershipStore
    tokens: TokenStore
    audit: AuditStore
    events: EventStore
    secrets: SecretStore
    runners: RunnerStore
    schedules: ScheduleStore
    polls: PollStore
    protections: ProtectionStore
    webhooks: WebhookStore
    deliveries: DeliveryStore
    pulls: PullRequestStore
    environments: EnvironmentStore
    releases: ReleaseStore
    deployments: DeploymentStore
    history: ReleaseHistoryStore
    gates: GateStore
    caches: CacheIndexStore

    @classmethod
    def on(cls, conn: Connection, events: SqlEventStore, audit: SqlAuditStore) -> SqlTransaction:
        """The repositories on `conn`, with `events` and `audit` (the caller writes what
        they hold at the transaction's end: `_repositories`)."""
        return cls(
            projects=SqlProjectStore(conn),
            runs=SqlRunStore(conn),
            jobs=SqlJobStore(conn),
            steps=SqlStepStore(conn),
            logs=SqlLogStore(conn),
            users=SqlUserStore(conn),
            members=SqlMembershipStore(conn),
            tokens=SqlTokenStore(conn),
            audit=audit,
            events=events,
            secrets=SqlSecretStore(conn),
            runners=SqlRunnerStore(conn, events.flush),
            schedules=SqlScheduleStore(conn),
            polls=SqlPollStore(conn),
            protections=SqlProtectionStore(conn),
            webhooks=SqlWebhookStore(conn),
            deliveries=SqlDeliveryStore(conn),
            pulls=SqlPullRequestStore(conn),
            environments=SqlEnvironmentStore(conn),
            releases=SqlReleaseStore(conn),
            deployments=SqlDeploymentStore(conn),
            history=SqlReleaseHistoryStore(conn),
            gates=SqlGateStore(conn),
            caches=SqlCacheIndexStore(conn),
        )


@contextmanager
def _repositories(
    conn: Connection, *, writes: bool, pending: set[str] | None = None
) -> Iterator[SqlTransaction]:
    """The repositories of the transaction on `conn`; when the block ends without an
    error, its audit records and events are written, one statement each, before the
    commit: the feed's lock they take is the transaction's last. `pending`: where its
    events' queue signals are collected."""
    events = SqlEventStore(conn, pending, writes=writes)
    audit = SqlAuditStore(conn, writes=writes)
    yield SqlTransaction.on(conn, events, audit)
    audit.flush()
    events.flush()


class SqlStore:
    """The `Store` on a SQL database.

    `url`: `sqlite:///path/to/shipline.db` or `postgresql+psycopg://user@host/db`.
    `create`: bring the schema to the newest migration on open (idempotent; servers
    starting together migrate once).
    """

    def __init__(self, url: str, *, create: bool = True) -> None:
        if create:
            upgrade(url)
        self.url = url
        self.engine = make_engine(url)
        self._local = threading.local()
        # SQLite has one writer at a time: this process's writing transactions queue here,
        # in order, instead of in SQLite's busy handler, which lets a waiter sleep up to
        # 100 ms after the lock is free. (Other processes still meet the busy timeout.)
        self._writer = threading.RLock() if is_sqlite(url) else None
        # What a read-only transaction's connection runs with. On PostgreSQL, autocommit:
        # under READ COMMITTED each statement of a transaction reads its own snapshot
        # anyway, so BEGIN and COMMIT would add two round trips and nothing else (a
        # request's authentication and query, a runner's claim, each read transaction).
        self._reading: dict[str, object] = {WRITE_OPTION: False}
        if not is_sqlite(url):
            self._reading["isolation_level"] = "AUTOCOMMIT"
        # Wake-ups after commits that queued jobs or stopped them (`QueueSignals`).
        self.signals = SqlQueueSignals(url)

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[SqlTransaction]:
        """One connection and one transaction: committed when the block ends, rolled back
        when it raises. `write=False` (reads only) lets SQLite readers run alongside the
        writer instead of queueing for its lock; inside `reading()` it is the block's
        transaction."""
        shared: SqlTransaction | None = getattr(self._local, "reading", None)
        if shared is not None and not write:
            yield shared
            return
        if write and self._writer is not None:
            with self._writer:
                yield from self._begin(write=True)
        else:
            yield from self._begin(write=write)

    def _connect(self, *, write: bool) -> Connection:
        options = {WRITE_OPTION: True} if write else self._reading
        return self.engine.connect().execution_options(**options)

    def _begin(self, *, write: bool) -> Iterator[SqlTransaction]:
        conn = self._connect(write=write)
        pending: set[str] = set()
        with conn, conn.begin(), _repositories(conn, writes=write, pending=pending) as tx:
            yield tx
        if pending:  # committed: tell this process (PostgreSQL told the others at commit)
            self.signals.fire(sorted(pending))

    @contextmanager
    def reading(self) -> Iterator[None]:
        """The read-only transactions this thread opens inside the block are one: a
        request's authentication, access check and query take one connection and one
        snapshot. Writing transactions stay separate."""
        if getattr(self._local, "reading", None) is not None:
            yield
            return
        conn = self._connect(write=False)
        with conn, conn.begin(), _repositories(conn, writes=False) as tx:
            self._local.reading = tx
            try:
                yield
            finally:
                self._local.reading = None

    def close(self) -> None:
        self.signals.close()
        self.engine.dispose()


if TYPE_CHECKING:

    def _is_a_store(store: SqlStore) -> Store:
        return store  # mypy checks that SqlStore implements the port
