"""Protection gates of jobs and reviewers' decisions in the SQL store."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from shipline.domain.deployments import DecisionRecord, GateRecord, GateState
from shipline.domain.transitions import InvalidTransition
from shipline.store.ports import NewGate, NotFound
from shipline.store.sql._common import guarded, utc
from shipline.store.sql.schema import gate_decisions, gates

_G = gates
_D = gate_decisions


def _gate(row: Row[Any]) -> GateRecord:
    return GateRecord(
        id=row.id,
        project_id=row.project_id,
        run_id=row.run_id,
        job_id=row.job_id,
        environment=row.environment,
        state=GateState(row.state),
        actor=row.actor,
        ref=row.ref,
        sha=row.sha,
        required=row.required,
        reason=row.reason,
        wait_until=row.wait_until,
        created_at=row.created_at,
        decided_at=row.decided_at,
    )


class SqlGateStore:
    """One gate per job; a gate leaves `waiting` once, for good."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def create(self, gate: NewGate, *, now: datetime) -> GateRecord:
        with guarded(self._conn, f"gate of job {gate.job_id}"):
            new_id = self._conn.execute(
                insert(_G).values(
                    project_id=gate.project_id,
                    run_id=gate.run_id,
                    job_id=gate.job_id,
                    environment=gate.environment,
                    state=gate.state.value,
                    actor=gate.actor,
                    ref=gate.ref,
                    sha=gate.sha,
                    required=gate.required,
                    reason=gate.reason,
                    wait_until=utc(gate.wait_until) if gate.wait_until else None,
                    created_at=utc(now),
                    decided_at=None if gate.state is GateState.WAITING else utc(now),
                )
            ).inserted_primary_key
        assert new_id is not None
        found = self.get(int(new_id[0]))
        assert found is not None
        return found

    def get(self, gate_id: int) -> GateRecord | None:
        row = self._conn.execute(select(_G).where(_G.c.id == gate_id)).first()
        return None if row is None else _gate(row)

    def for_job(self, job_id: int) -> GateRecord | None:
        row = self._conn.execute(select(_G).where(_G.c.job_id == job_id)).first()
        return None if row is None else _gate(row)

    def for_run(self, run_id: int) -> list[GateRecord]:
        rows = self._conn.execute(select(_G).where(_G.c.run_id == run_id).order_by(_G.c.id))
        return [_gate(r) for r in rows]

    def waiting(self, project_ids: Sequence[int] | None = None) -> list[GateRecord]:
        query = select(_G).where(_G.c.state == GateState.WAITING.value)
        if project_ids is not None:
            query = query.where(_G.c.project_id.in_(list(project_ids)))
        return [_gate(r) for r in self._conn.execute(query.order_by(_G.c.id))]

    def set_state(
        self, gate_id: int, state: GateState, *, now: datetime, reason: str = ""
    ) -> GateRecord:
        current = self.get(gate_id)
        if current is None:
            raise NotFound(f"no gate {gate_id}")
        if current.state is not GateState.WAITING or state is GateState.WAITING:
            raise InvalidTransition(f"gate {gate_id}: cannot go from {current.state} to {state}")
        self._conn.execute(
            update(_G)
            .where(_G.c.id == gate_id)
            .values(state=state.value, reason=reason, decided_at=utc(now))
        )
        found = self.get(gate_id)
        assert found is not None
        return found

    def set_wait(self, gate_id: int, until: datetime) -> None:
        self._conn.execute(update(_G).where(_G.c.id == gate_id).values(wait_until=utc(until)))

    def decide(
        self, gate_id: int, user: str, decision: str, comment: str, *, now: datetime
    ) -> DecisionRecord:
        with guarded(self._conn, f"decision of {user!r} on gate {gate_id}"):
            new_id = self._conn.execute(
                insert(_D).values(
                    gate_id=gate_id, user=user, decision=decision, comment=comment, at=utc(now)
                )
            ).inserted_primary_key
        assert new_id is not None
        return DecisionRecord(int(new_id[0]), gate_id, user, decision, comment, utc(now))

    def decisions(self, gate_id: int) -> list[DecisionRecord]:
        rows = self._conn.execute(select(_D).where(_D.c.gate_id == gate_id).order_by(_D.c.id))
        return [DecisionRecord(r.id, r.gate_id, r.user, r.decision, r.comment, r.at) for r in rows]
