"""`SqlStore`: the store on SQLite (embedded default) or PostgreSQL (many servers)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Connection

from shipline.store.ports import (
    AuditStore,
    DeploymentStore,
    EnvironmentStore,
    EventStore,
    GateStore,
    JobStore,
    LogStore,
    MembershipStore,
    ProjectStore,
    ReleaseStore,
    RunStore,
    SecretStore,
    StepStore,
    Store,
    TokenStore,
    UserStore,
)
from shipline.store.sql.audit import SqlAuditStore, SqlEventStore
from shipline.store.sql.deployments import (
    SqlDeploymentStore,
    SqlEnvironmentStore,
    SqlReleaseStore,
)
from shipline.store.sql.engine import WRITE_OPTION, make_engine
from shipline.store.sql.gates import SqlGateStore
from shipline.store.sql.jobs import SqlJobStore
from shipline.store.sql.logs import SqlLogStore
from shipline.store.sql.migrations import upgrade
from shipline.store.sql.projects import SqlProjectStore
from shipline.store.sql.runs import SqlRunStore
from shipline.store.sql.secrets import SqlSecretStore
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
    environments: EnvironmentStore
    releases: ReleaseStore
    deployments: DeploymentStore
    gates: GateStore

    @classmethod
    def on(cls, conn: Connection) -> SqlTransaction:
        return cls(
            projects=SqlProjectStore(conn),
            runs=SqlRunStore(conn),
            jobs=SqlJobStore(conn),
            steps=SqlStepStore(conn),
            logs=SqlLogStore(conn),
            users=SqlUserStore(conn),
            members=SqlMembershipStore(conn),
            tokens=SqlTokenStore(conn),
            audit=SqlAuditStore(conn),
            events=SqlEventStore(conn),
            secrets=SqlSecretStore(conn),
            environments=SqlEnvironmentStore(conn),
            releases=SqlReleaseStore(conn),
            deployments=SqlDeploymentStore(conn),
            gates=SqlGateStore(conn),
        )


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

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[SqlTransaction]:
        """One connection and one transaction: committed when the block ends, rolled back
        when it raises. `write=False` (reads only) lets SQLite readers run alongside the
        writer instead of queueing for its lock."""
        conn = self.engine.connect().execution_options(**{WRITE_OPTION: write})
        with conn, conn.begin():
            yield SqlTransaction.on(conn)

    def close(self) -> None:
        self.engine.dispose()


if TYPE_CHECKING:

    def _is_a_store(store: SqlStore) -> Store:
        return store  # mypy checks that SqlStore implements the port
