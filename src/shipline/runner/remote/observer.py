"""A `JobObserver` that sends what a job does to the server: steps, and log lines in
numbered batches.

Messages are queued in order and sent by one task (`pump`), each retried until the server
takes it: log lines are never dropped because the network failed for a while. A step's
start is held back up to `STEP_GRACE`: when the step ends meanwhile (most steps of a
build are short), its end, which carries its start time, reports both in one request. Log chunks
carry sequence numbers, so a batch resent after a lost reply is stored once. When the
server refuses (the try's lease was lost, the job has ended), nothing more is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from shipline.domain.status import Status
from shipline.runner.model import JobResult, StepResult
from shipline.runner.remote.connection import Connection, Refused
from shipline.runner.remote.protocol import JobOut, LogChunkIn, StepIn

log = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024
FLUSH_DELAY = 0.2
# Log chunks sent in one request at most.
BATCH = 100
# How long a step's start waits for its end before it is sent on its own.
STEP_GRACE = 0.2
_GRACE_TICK = 0.02


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
        self.queue: asyncio.Queue[LogChunkIn | StepIn | None] = asyncio.Queue()
        self.refused: Refused | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._pump: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._pump = asyncio.ensure_future(self.pump())

    async def close(self) -> None:
        """Send everything queued, then stop."""
        self.flush()
        self.queue.put_nowait(None)
        if self._pump is not None:
            await self._pump

    # -- JobObserver -------------------------------------------------------------------

    def job_started(self, job_key: str, name: str) -> None:
        return None

    def step_started(self, job_key: str, step_key: str, name: str) -> None:
        self.flush()
        index = self.first_step + len(self.step_index)
        self.step_index[step_key] = index
        self.current_step = index
        self.started_at[index] = _now()
        self.queue.put_nowait(
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
        self.queue.put_nowait(
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

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.buffer:
            return
        text = "\n".join(self.buffer) + "\n"
        self.buffer = []
        self.size = 0
        self.queue.put_nowait(LogChunkIn(seq=self.seq, step=self.current_step, text=text))
        self.seq += 1

    async def pump(self) -> None:
        """Send queued messages in order (consecutive log chunks in one request)."""
        while True:
            item = await self.queue.get()
            if item is None:
                return
            if self.refused is not None:
                continue
            try:
                if isinstance(item, StepIn):
                    if item.status is Status.IN_PROGRESS and await self._ends_soon(item.index):
                        continue  # its end, queued already, reports the start too
                    await self._send("steps", item.model_dump(mode="json"))
                    continue
                chunks = [item]
                while len(chunks) < BATCH and isinstance(self._peek(), LogChunkIn):
                    chunks.append(self.queue.get_nowait())  # type: ignore[arg-type]
                body = {"chunks": [c.model_dump(mode="json") for c in chunks]}
                await self._send("logs", body)
            except Refused as exc:
                log.warning("job %s: the server refused a message: %s", self.job.job_id, exc)
                self.refused = exc

    async def _ends_soon(self, index: int) -> bool:
        """Whether step `index` ends within `STEP_GRACE` (its end is then in the queue)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STEP_GRACE
        while True:
            items = self.queue._queue  # type: ignore[attr-defined]
            for queued in items:
                if queued is None:  # closing: the job is over, send what there is
                    return False
                if (
                    isinstance(queued, StepIn)
                    and queued.index == index
                    and queued.status is Status.COMPLETED
                ):
                    return True
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(_GRACE_TICK)

    def _peek(self) -> LogChunkIn | StepIn | None:
        # asyncio.Queue has no peek: look at its deque (stable since Python 3.4).
        items = self.queue._queue  # type: ignore[attr-defined]
        return items[0] if items else None

    async def _send(self, what: str, body: object) -> None:
        await self.conn.call(
            "POST", f"/runner/jobs/{self.job.job_id}/{what}", token=self.job.token, json=body
        )
