"""Source records in the SQL store: protection rules, webhook keys, deliveries and hosted
pull requests (`ProtectionStore`, `WebhookStore`, `DeliveryStore`, `PullRequestStore`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, func, insert, select, update

from shipline.domain.records import Role
from shipline.domain.source import (
    DeliveryRecord,
    Forge,
    ProtectionRule,
    PullRequestRecord,
    PullState,
    RefKind,
)
from shipline.store.ports import NotFound, Page
from shipline.store.sql._common import guarded, newest_first, one_or_missing
from shipline.store.sql.schema import deliveries, protection_rules, pull_requests, webhook_keys


def _rule(row: Row[Any]) -> ProtectionRule:
    return ProtectionRule(
        id=row.id,
        project_id=row.project_id,
        kind=RefKind(row.kind),
        pattern=row.pattern,
        push_role=Role(row.push_role),
        allow_force_push=bool(row.allow_force_push),
        allow_deletion=bool(row.allow_deletion),
        created_at=row.created_at,
    )


class SqlProtectionStore:
    """Protection rules, unique per (project, kind, pattern)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def put(
        self,
        project_id: int,
        kind: RefKind,
        pattern: str,
        *,
        push_role: Role,
        allow_force_push: bool,
        allow_deletion: bool,
        now: datetime,
    ) -> ProtectionRule:
        settings = {
            "push_role": push_role.value,
            "allow_force_push": allow_force_push,
            "allow_deletion": allow_deletion,
        }
        where = (
            protection_rules.c.project_id == project_id,
            protection_rules.c.kind == kind.value,
            protection_rules.c.pattern == pattern,
        )
        changed = self._conn.execute(update(protection_rules).where(*where).values(settings))
        if changed.rowcount == 0:
            with guarded(self._conn, f"protection rule {kind} {pattern!r}"):
                self._conn.execute(
                    insert(protection_rules).values(
                        project_id=project_id,
                        kind=kind.value,
                        pattern=pattern,
                        created_at=now,
                        **settings,
                    )
                )
        row = self._conn.execute(select(protection_rules).where(*where)).one()
        return _rule(row)

    def for_project(self, project_id: int) -> list[ProtectionRule]:
        query = (
            select(protection_rules)
            .where(protection_rules.c.project_id == project_id)
            .order_by(protection_rules.c.id)
        )
        return [_rule(row) for row in self._conn.execute(query)]

    def delete(self, project_id: int, rule_id: int) -> None:
        result = self._conn.execute(
            delete(protection_rules).where(
                protection_rules.c.project_id == project_id, protection_rules.c.id == rule_id
            )
        )
        if result.rowcount != 1:
            raise NotFound(f"protection rule {rule_id} does not exist")


class SqlWebhookStore:
    """The salt of each project's webhook secret."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def set_salt(self, project_id: int, salt: str, *, now: datetime) -> None:
        changed = self._conn.execute(
            update(webhook_keys)
            .where(webhook_keys.c.project_id == project_id)
            .values(salt=salt, created_at=now)
        )
        if changed.rowcount == 0:
            with guarded(self._conn, f"webhook key of project {project_id}"):
                self._conn.execute(
                    insert(webhook_keys).values(project_id=project_id, salt=salt, created_at=now)
                )

    def salt(self, project_id: int) -> str | None:
        found = self._conn.execute(
            select(webhook_keys.c.salt).where(webhook_keys.c.project_id == project_id)
        ).scalar_one_or_none()
        return None if found is None else str(found)


_DELIVERY_COLUMNS = [c for c in deliveries.c if c.name != "body"]


def _delivery(row: Row[Any]) -> DeliveryRecord:
    return DeliveryRecord(
        id=row.id,
        project_id=row.project_id,
        forge=Forge(row.forge),
        delivery_id=row.delivery_id,
        event=row.event,
        received_at=row.received_at,
        outcome=row.outcome,
        detail=row.detail,
        runs=tuple(int(r) for r in row.runs or ()),
        redeliveries=row.redeliveries,
    )


class SqlDeliveryStore:
    """Verified webhook deliveries; the delivery id is unique per project and forge."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def create(
        self,
        project_id: int,
        forge: Forge,
        delivery_id: str,
        event: str,
        body: bytes,
        *,
        now: datetime,
    ) -> DeliveryRecord:
        query = insert(deliveries).values(
            project_id=project_id,
            forge=forge.value,
            delivery_id=delivery_id,
            event=event,
            received_at=now,
            outcome="received",
            detail="",
            runs=[],
            redeliveries=0,
            body=body,
        )
        with guarded(self._conn, f"delivery {delivery_id!r}"):
            new_id = self._conn.execute(query.returning(deliveries.c.id)).scalar_one()
        return DeliveryRecord(new_id, project_id, forge, delivery_id, event, now)

    def get(self, delivery_id: int) -> DeliveryRecord | None:
        row = self._conn.execute(
            select(*_DELIVERY_COLUMNS).where(deliveries.c.id == delivery_id)
        ).first()
        return None if row is None else _delivery(row)

    def find(self, project_id: int, forge: Forge, delivery_id: str) -> DeliveryRecord | None:
        row = self._conn.execute(
            select(*_DELIVERY_COLUMNS).where(
                deliveries.c.project_id == project_id,
                deliveries.c.forge == forge.value,
                deliveries.c.delivery_id == delivery_id,
            )
        ).first()
        return None if row is None else _delivery(row)

    def body(self, delivery_id: int) -> bytes:
        found = self._conn.execute(
            select(deliveries.c.body).where(deliveries.c.id == delivery_id)
        ).scalar_one_or_none()
        return bytes(one_or_missing(found, f"delivery {delivery_id}"))

    def set_outcome(
        self,
        delivery_id: int,
        outcome: str,
        detail: str = "",
        runs: tuple[int, ...] = (),
        *,
        redelivered: bool = False,
    ) -> DeliveryRecord:
        values: dict[str, object] = {"outcome": outcome, "detail": detail, "runs": list(runs)}
        if redelivered:
            values["redeliveries"] = deliveries.c.redeliveries + 1
        result = self._conn.execute(
            update(deliveries).where(deliveries.c.id == delivery_id).values(values)
        )
        if result.rowcount != 1:
            raise NotFound(f"delivery {delivery_id} does not exist")
        found = self.get(delivery_id)
        assert found is not None
        return found

    def page(
        self, project_id: int, *, limit: int = 50, cursor: str | None = None
    ) -> Page[DeliveryRecord]:
        query = select(*_DELIVERY_COLUMNS).where(deliveries.c.project_id == project_id)
        return newest_first(
            self._conn, query, deliveries.c.id, _delivery, limit=limit, cursor=cursor
        )


def _pull(row: Row[Any]) -> PullRequestRecord:
    return PullRequestRecord(
        id=row.id,
        project_id=row.project_id,
        number=row.number,
        title=row.title,
        author=row.author,
        head=row.head,
        base=row.base,
        state=PullState(row.state),
        head_sha=row.head_sha,
        base_sha=row.base_sha,
        created_at=row.created_at,
        updated_at=row.updated_at,
        closed_at=row.closed_at,
        body=row.body,
    )


class SqlPullRequestStore:
    """Hosted pull requests, numbered per project."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def create(
        self,
        project_id: int,
        *,
        title: str,
        body: str,
        author: str,
        head: str,
        base: str,
        head_sha: str,
        base_sha: str,
        now: datetime,
    ) -> PullRequestRecord:
        # The unique (project, number) constraint turns a concurrent creation's duplicate
        # number into a Conflict rather than two pull requests with one number.
        last = self._conn.execute(
            select(func.max(pull_requests.c.number)).where(pull_requests.c.project_id == project_id)
        ).scalar_one_or_none()
        with guarded(self._conn, f"pull request of project {project_id}"):
            new_id = self._conn.execute(
                insert(pull_requests)
                .values(
                    project_id=project_id,
                    number=(last or 0) + 1,
                    title=title,
                    body=body,
                    author=author,
                    head=head,
                    base=base,
                    state=PullState.OPEN.value,
                    head_sha=head_sha,
                    base_sha=base_sha,
                    created_at=now,
                    updated_at=now,
                )
                .returning(pull_requests.c.id)
            ).scalar_one()
        return self._by_id(new_id)

    def _by_id(self, pull_id: int) -> PullRequestRecord:
        row = self._conn.execute(select(pull_requests).where(pull_requests.c.id == pull_id)).first()
        return _pull(one_or_missing(row, f"pull request {pull_id}"))

    def get(self, project_id: int, number: int) -> PullRequestRecord | None:
        row = self._conn.execute(
            select(pull_requests).where(
                pull_requests.c.project_id == project_id, pull_requests.c.number == number
            )
        ).first()
        return None if row is None else _pull(row)

    def open_for_head(self, project_id: int, head: str) -> list[PullRequestRecord]:
        query = (
            select(pull_requests)
            .where(
                pull_requests.c.project_id == project_id,
                pull_requests.c.head == head,
                pull_requests.c.state == PullState.OPEN.value,
            )
            .order_by(pull_requests.c.id)
        )
        return [_pull(row) for row in self._conn.execute(query)]

    def update(
        self,
        pull_id: int,
        *,
        now: datetime,
        head_sha: str | None = None,
        base_sha: str | None = None,
        state: PullState | None = None,
    ) -> PullRequestRecord:
        values: dict[str, object] = {"updated_at": now}
        if head_sha is not None:
            values["head_sha"] = head_sha
        if base_sha is not None:
            values["base_sha"] = base_sha
        if state is not None:
            values["state"] = state.value
            values["closed_at"] = now if state is PullState.CLOSED else None
        result = self._conn.execute(
            update(pull_requests).where(pull_requests.c.id == pull_id).values(values)
        )
        if result.rowcount != 1:
            raise NotFound(f"pull request {pull_id} does not exist")
        return self._by_id(pull_id)

    def page(
        self, project_id: int, *, limit: int = 50, cursor: str | None = None
    ) -> Page[PullRequestRecord]:
        query = select(pull_requests).where(pull_requests.c.project_id == project_id)
        return newest_first(
            self._conn, query, pull_requests.c.id, _pull, limit=limit, cursor=cursor
        )
