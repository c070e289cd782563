"""A `JobObserver` that sends what a job does to the server: steps, and log lines in
numbered chunks.

What the job does is queued in order and sent by one task (`pump`) in reports: the first
thing queued waits up to `LINGER` for what follows (a step's end, more lines), and all of
it goes in one request (`POST .../report`, one transaction on the server). What is still
queued when the job ends goes in the job's finish message instead: a short job (its steps
and log within `LINGER`) costs the claim and the finish, two requests. Every message is
retried until the server takes it, so log lines are never dropped because the network
failed for a while; log chunks carry sequence numbers, so a report resent after a lost
reply is stored once. When the server refuses (the try's lease was lost, the job has
ended), nothing more is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from datetime import UTC, datetime

from shipline.domain.status import Status
from shipline.runner.model import JobResult, StepResult
from shipline.runner.remote.connection import Connection, Refused
from shipline.runner.remote.protocol import JobOut, LogChunkIn, ReportIn, StepIn

log = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024
FLUSH_DELAY = 0.2
# Log chunks and steps sent in one message at most.
BATCH = 100
# How long the first message queued waits for more before a report is sent.
LINGER = 0.2

Item = LogChunkIn | StepIn


def _now() -> datetime:
    return datetime.now(UTC)


class RemoteObserver:
    """Sends one job's steps and log to the server with the job's token."""

    def __init__(self, conn: Connection, job: JobOut) -> None:
        self.conn = conn
        self.job = job
        self.seq = job.next_seq
        self.first_step = job.first_step
        self.step_index: dict[str, int] = {}
        self.started_at: dict[int, datetime] = {}
        self.current_step: int | None = None
        self.buffer: list[str] = []
        self.size = 0
        self.pending: deque[Item] = deque()
        self.closing = False
        self.refused: Refused | None = None
        self._arrived = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._pump: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._pump = asyncio.ensure_future(self.pump())

    async def close(self) -> ReportIn:
        """Stop sending; what was not sent (at most `BATCH` items), for the job's finish
        message (nothing once the server refused)."""
        self.flush()
        self.closing = True
        self._arrived.set()
        if self._pump is not None:
            await self._pump
        left = list(self.pending) if self.refused is None else []
        self.pending.clear()
        return _report(left)

    # -- JobObserver -------------------------------------------------------------------

    def job_started(self, job_key: str, name: str) -> None:
        return None

    def step_started(self, job_key: str, step_key: str, name: str) -> None:
        self.flush()
        index = self.first_step + len(self.step_index)
        self.step_index[step_key] = index
        self.current_step = index
        self.started_at[index] = _now()
        self._put(
            StepIn(
                index=index,
                key=step_key,
                name=name,
                status=Status.IN_PROGRESS,
                started_at=self.started_at[index],
            )
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
            with contextlib.suppress(RuntimeError):
                self._timer = asyncio.get_running_loop().call_later(FLUSH_DELAY, self.flush)

    def step_finished(self, job_key: str, result: StepResult) -> None:
        self.flush()
        index = self.step_index.get(result.key)
        if index is None:  # a skipped step never started: give it its place now
            index = self.first_step + len(self.step_index)
            self.step_index[result.key] = index
        now = _now()
        self._put(
            StepIn(
                index=index,
                key=result.key,
                name=result.name,
                status=Status.COMPLETED,
                conclusion=result.conclusion,
                exit_code=result.exit_code,
                started_at=self.started_at.get(index, now),
                finished_at=now,
            )
        )

    def job_finished(self, result: JobResult) -> None:
        self.flush()

    # -- sending -----------------------------------------------------------------------

    def _put(self, item: Item) -> None:
        self.pending.append(item)
        self._arrived.set()

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.buffer:
            return
        text = "\n".join(self.buffer) + "\n"
        self.buffer = []
        self.size = 0
        self._put(LogChunkIn(seq=self.seq, step=self.current_step, text=text))
        self.seq += 1

    async def pump(self) -> None:
        """Send what is queued in reports of at most `BATCH` items, in order; leave the
        rest to the finish message once the job is closing."""
        loop = asyncio.get_running_loop()
        while True:
            if self.refused is not None:
                self.pending.clear()
            if not self.pending:
                if self.closing:
                    return
                self._arrived.clear()
                await self._arrived.wait()
                continue
            deadline = loop.time() + LINGER
            while not self.closing and len(self.pending) < BATCH:
                left = deadline - loop.time()
                if left <= 0:
                    break
                self._arrived.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), left)
            if self.closing and len(self.pending) <= BATCH:
                return  # the finish message carries them
            items = [self.pending.popleft() for _ in range(min(BATCH, len(self.pending)))]
            try:
                await self.conn.call(
                    "POST",
                    f"/runner/jobs/{self.job.job_id}/report",
                    token=self.job.token,
                    json=_report(items).model_dump(mode="json"),
                )
            except Refused as exc:
                log.warning("job %s: the server refused a message: %s", self.job.job_id, exc)
                self.refused = exc


def _report(items: list[Item]) -> ReportIn:
    return ReportIn(
        chunks=[i for i in items if isinstance(i, LogChunkIn)],
        steps=[i for i in items if isinstance(i, StepIn)],
    )
