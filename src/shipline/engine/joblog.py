"""A `JobObserver` that stores what a running job does: its steps and its log.

Log lines are gathered into chunks (sequence numbers make appends idempotent) and written
when a chunk is large, a step changes, or 200 ms after the first unwritten line, so a live
follower sees output promptly without one write per line.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime

from shipline.domain.clock import Clock
from shipline.domain.records import StepRecord
from shipline.domain.status import Status
from shipline.runner.model import JobResult, StepResult
from shipline.security.masking import Masker
from shipline.store.ports import Store

CHUNK_BYTES = 64 * 1024
FLUSH_DELAY = 0.2


class StoreObserver:
    """Writes one job's steps and log lines to the store."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        job_id: int,
        run_id: int,
        *,
        masker: Masker | None = None,
    ) -> None:
        self.store = store
        # Lines arrive masked by the runner; the server masks its secrets again.
        self.masker = masker if masker else None
        self.clock = clock
        self.job_id = job_id
        self.run_id = run_id
        self.seq = self._last_seq() + 1
        self.step_index: dict[str, int] = {}
        self.started_at: dict[int, datetime] = {}
        self.current_step: int | None = None
        self.buffer: list[str] = []
        self.size = 0
        self._timer: asyncio.TimerHandle | None = None

    def _last_seq(self) -> int:
        with self.store.transaction() as tx:
            return tx.logs.last_seq(self.job_id)

    # -- JobObserver -----------------------------------------------------------------------

    def job_started(self, job_key: str, name: str) -> None:
        return None

    def step_started(self, job_key: str, step_key: str, name: str) -> None:
        self.flush()
        index = len(self.step_index)
        self.step_index[step_key] = index
        self.current_step = index
        self.started_at[index] = self.clock.now()
        with self.store.transaction() as tx:
            tx.steps.upsert(
                StepRecord(
                    self.job_id,
                    index,
                    step_key,
                    name,
                    Status.IN_PROGRESS,
                    started_at=self.started_at[index],
                )
            )
            tx.events.publish(
                "step.started",
                now=self.clock.now(),
                run_id=self.run_id,
                job_id=self.job_id,
                data={"step": index, "name": name},
            )

    def output(self, job_key: str, step_key: str, lines: list[str]) -> None:
        index = self.step_index.get(step_key, self.current_step)
        if index != self.current_step:
            self.flush()
            self.current_step = index
        self.buffer.extend(lines)
        self.size += sum(len(line) + 1 for line in lines)
        if self.size >= CHUNK_BYTES:
            self.flush()
        elif self._timer is None:
            with contextlib.suppress(RuntimeError):  # no running loop: flushed at the end
                self._timer = asyncio.get_running_loop().call_later(FLUSH_DELAY, self.flush)

    def step_finished(self, job_key: str, result: StepResult) -> None:
        self.flush()
        index = self.step_index.get(result.key)
        if index is None:  # a skipped step never started: give it its place now
            index = len(self.step_index)
            self.step_index[result.key] = index
        now = self.clock.now()
        with self.store.transaction() as tx:
            tx.steps.upsert(
                StepRecord(
                    self.job_id,
                    index,
                    result.key,
                    result.name,
                    Status.COMPLETED,
                    result.conclusion,
                    result.exit_code,
                    started_at=self.started_at.get(index, now),
                    finished_at=now,
                )
            )
            tx.events.publish(
                "step.completed",
                now=now,
                run_id=self.run_id,
                job_id=self.job_id,
                data={"step": index, "conclusion": str(result.conclusion)},
            )

    def job_finished(self, result: JobResult) -> None:
        self.flush()

    # -- writing -------------------------------------------------------------------------

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.buffer:
            return
        lines = [self.masker.mask(line) for line in self.buffer] if self.masker else self.buffer
        data = ("\n".join(lines) + "\n").encode("utf-8", errors="replace")
        self.buffer = []
        self.size = 0
        with self.store.transaction() as tx:
            tx.logs.append(self.job_id, self.seq, data, self.current_step)
            tx.events.publish(
                "log",
                now=self.clock.now(),
                run_id=self.run_id,
                job_id=self.job_id,
                data={"seq": self.seq},
            )
        self.seq += 1
