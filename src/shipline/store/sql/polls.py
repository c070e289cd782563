"""Polled projects (`PollStore`): the interval and the refs seen at the last poll."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select, update

from shipline.store.ports import Conflict, PollState
from shipline.store.sql._common import guarded
from shipline.store.sql.schema import poll_states


def _state(row: Row[Any]) -> PollState:
    refs = row.refs
    return PollState(
        project_id=int(row.project_id),
        interval=int(row.interval_seconds),
        refs={str(k): str(v) for k, v in refs.items()} if isinstance(refs, dict) else None,
        generation=int(row.generation),
        polled_at=row.polled_at,
    )


class SqlPollStore:
    """`poll_states`: one row per polled project; `save` is a compare-and-swap on
    `generation`, so of two servers polling at once only one raises the events."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def set_interval(self, project_id: int, seconds: int | None) -> None:
        if seconds is None:
            self._conn.execute(delete(poll_states).where(poll_states.c.project_id == project_id))
            return
        changed = self._conn.execute(
            update(poll_states)
            .where(poll_states.c.project_id == project_id)
            .values(interval_seconds=seconds)
        ).rowcount
        if changed:
            return
        try:
            with guarded(self._conn, f"polling of project {project_id}"):
                self._conn.execute(
                    insert(poll_states).values(
                        project_id=project_id, interval_seconds=seconds, refs=None, generation=0
                    )
                )
        except Conflict:  # another request started polling it meanwhile: set its interval
            self._conn.execute(
                update(poll_states)
                .where(poll_states.c.project_id == project_id)
                .values(interval_seconds=seconds)
            )

    def get(self, project_id: int) -> PollState | None:
        row = self._conn.execute(
            select(poll_states).where(poll_states.c.project_id == project_id)
        ).first()
        return _state(row) if row is not None else None

    def all(self) -> list[PollState]:
        rows = self._conn.execute(select(poll_states).order_by(poll_states.c.project_id))
        return [_state(row) for row in rows]

    def save(
        self, project_id: int, refs: dict[str, str], *, generation: int, now: datetime
    ) -> bool:
        changed = self._conn.execute(
            update(poll_states)
            .where(
                poll_states.c.project_id == project_id,
                poll_states.c.generation == generation,
            )
            .values(refs=refs, generation=generation + 1, polled_at=now)
        ).rowcount
        return bool(changed)
