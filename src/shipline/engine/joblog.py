"""A `JobObserver` that stores what a running job does: its steps and its log.

What the job reports is kept in order and written in batches, one transaction each: 200 ms
after the first unwritten change (a step starting or ending, log lines), when a log chunk
is large, or — for whatever is left when the job ends — in the transaction that records the
job's end (`write_pending`, see `EmbeddedRunner`). A live follower sees output within about
200 ms; a short job costs no transaction of its own. Log lines are gathered into chunks
with sequence numbers (idempotent appends); a chunk ends at a step change or at 64 KiB.
Timed batches are written in a worker thread, so the event loop never waits for the
database.

Also here, for what the server does with a job's log: `JobMaskers` (masking again what
remote runners send) and `scan_log` (after the job, known credential shapes in its log
become warnings and an audit event: `security.scanner`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from shipline.domain.clock import Clock
from shipline.domain.records import StepRecord
from shipline.domain.status import Status
from shipline.runner.model import JobResult, StepResult
from shipline.security.masking import Masker
from shipline.security.scanner import Finding, scan
from shipline.store.ports import Store, Transaction

log = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024
# A job's log up to this size is kept in memory for the credential scan at its end.
KEEP_FOR_SCAN = 1024 * 1024
FLUSH_DELAY = 0.2


@dataclass(frozen=True, slots=True)
class _Step:
    """A step's record to write, and the event that announces it."""

    record: StepRecord
    event: str
    at: datetime
    data: dict[str, object]


@dataclass(frozen=True, slots=True)
class _Chunk:
    seq: int
    data: bytes
    step_index: int | None
    at: datetime


class StoreObserver:
    """Writes one job's steps and log lines to the store.

    `first_seq`: the sequence number of the job's next log chunk (one more than the
    store's `last_seq`), when the caller read it already.
    """

    def __init__(
        self,
        store: Store,
        clock: Clock,
        job_id: int,
        run_id: int,
        *,
        masker: Masker | None = None,
        first_seq: int | None = None,
    ) -> None:
        self.store = store
        # Lines arrive masked by the runner; the server masks its secrets again.
        self.masker = masker if masker else None
        self.clock = clock
        self.job_id = job_id
        self.run_id = run_id
        self.seq = self._last_seq() + 1 if first_seq is None else first_seq
        self.step_index: dict[str, int] = {}
        self.started_at: dict[int, datetime] = {}
        self.current_step: int | None = None
        self.buffer: list[str] = []
        self.size = 0
        self._timer: asyncio.TimerHandle | None = None
        # Changes not written yet, in order; swapped out under `_pending_lock` (held for
        # a moment only: the event loop appends to it), written under `_write_lock`.
        self._pending: list[_Step | _Chunk] = []
        self._pending_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._writing: asyncio.Future[None] | None = None
        # The chunks of this observer, in order, while they are the job's whole log and
        # small: the credential scan at the job's end then reads nothing back (`texts`).
        self._texts: list[bytes] | None = [] if self.seq == 0 else None
        self._texts_size = 0

    def texts(self) -> list[bytes] | None:
        """The job's whole log as written by this observer, or None when it is not all
        here (an earlier try wrote some, or it is larger than `KEEP_FOR_SCAN`)."""
        return self._texts

    def _last_seq(self) -> int:
        with self.store.transaction(write=False) as tx:
            return tx.logs.last_seq(self.job_id)

    # -- JobObserver -----------------------------------------------------------------------

    def job_started(self, job_key: str, name: str) -> None:
        return None

    def step_started(self, job_key: str, step_key: str, name: str) -> None:
        self._cut()
        index = len(self.step_index)
        self.step_index[step_key] = index
        self.current_step = index
        now = self.clock.now()
        self.started_at[index] = now
        record = StepRecord(self.job_id, index, step_key, name, Status.IN_PROGRESS, started_at=now)
        self._add(_Step(record, "step.started", now, {"step": index, "name": name}))

    def output(self, job_key: str, step_key: str, lines: list[str]) -> None:
        index = self.step_index.get(step_key, self.current_step)
        if index != self.current_step:
            self._cut()
            self.current_step = index
        self.buffer.extend(lines)
        self.size += sum(len(line) + 1 for line in lines)
        if self.size >= CHUNK_BYTES:
            self._cut()
        self._schedule()

    def step_finished(self, job_key: str, result: StepResult) -> None:
        self._cut()
        index = self.step_index.get(result.key)
        if index is None:  # a skipped step never started: give it its place now
            index = len(self.step_index)
            self.step_index[result.key] = index
        now = self.clock.now()
        record = StepRecord(
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
        data: dict[str, object] = {"step": index, "conclusion": str(result.conclusion)}
        self._add(_Step(record, "step.completed", now, data))

    def job_finished(self, result: JobResult) -> None:
        self._cut()

    # -- writing -------------------------------------------------------------------------

    def flush(self) -> None:
        """Write everything reported so far, now, in this thread."""
        self._cancel_timer()
        self._cut()
        self._write_batch()

    async def settle(self) -> None:
        """Stop timed writes and wait for the one in flight (the job has ended; what is
        still pending goes with `write_pending` or `flush`)."""
        self._cancel_timer()
        self._cut()
        if self._writing is not None:
            with contextlib.suppress(Exception):  # logged by `_write_batch`
                await self._writing
            self._writing = None

    def write_pending(self, tx: Transaction) -> None:
        """Write what is pending in the caller's transaction. The pending changes stay
        until `flush` (appends and step records are idempotent), so that a caller whose
        transaction failed can still `flush` them."""
        self._cut()
        with self._pending_lock:
            batch = list(self._pending)
        self._write_to(tx, batch)

    def _add(self, change: _Step | _Chunk) -> None:
        with self._pending_lock:
            self._pending.append(change)
        self._schedule()

    def _cut(self) -> None:
        """The buffered lines become a chunk."""
        if not self.buffer:
            return
        text = "\n".join(self.buffer)
        data = text.encode("utf-8", errors="replace")
        # One search of the whole chunk; only when a form may be in it are its lines
        # masked, each on its own, as before (a line may hold a newline of its own).
        if self.masker is not None and self.masker.may_match(data):
            text = "\n".join(self.masker.mask(line) for line in self.buffer)
            data = text.encode("utf-8", errors="replace")
        data += b"\n"
        self.buffer = []
        self.size = 0
        if self._texts is not None:
            self._texts_size += len(data)
            if self._texts_size <= KEEP_FOR_SCAN:
                self._texts.append(data)
            else:
                self._texts = None
        with self._pending_lock:
            self._pending.append(_Chunk(self.seq, data, self.current_step, self.clock.now()))
        self.seq += 1

    def _schedule(self) -> None:
        if self._timer is None:
            with contextlib.suppress(RuntimeError):  # no running loop: flushed at the end
                self._timer = asyncio.get_running_loop().call_later(FLUSH_DELAY, self._due)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _due(self) -> None:
        """The timer: write the batch in a worker thread, after the previous one."""
        self._timer = None
        self._cut()
        previous = self._writing
        self._writing = asyncio.ensure_future(self._write_after(previous))

    async def _write_after(self, previous: asyncio.Future[None] | None) -> None:
        if previous is not None:
            with contextlib.suppress(Exception):
                await previous
        await asyncio.to_thread(self._write_batch)

    def _write_batch(self) -> None:
        with self._write_lock:
            with self._pending_lock:
                batch, self._pending = self._pending, []
            if not batch:
                return
            try:
                with self.store.transaction() as tx:
                    self._write_to(tx, batch)
            except Exception:
                log.exception("job %s: cannot write its steps and log now", self.job_id)
                with self._pending_lock:  # kept for the next batch, in order
                    self._pending[0:0] = batch
                raise

    def _write_to(self, tx: Transaction, batch: list[_Step | _Chunk]) -> None:
        last_step = {c.record.index: i for i, c in enumerate(batch) if isinstance(c, _Step)}
        for i, change in enumerate(batch):
            if isinstance(change, _Chunk):
                tx.logs.append(self.job_id, change.seq, change.data, change.step_index)
                tx.events.publish(
                    "log",
                    now=change.at,
                    run_id=self.run_id,
                    job_id=self.job_id,
                    data={"seq": change.seq},
                )
                continue
            if last_step[change.record.index] == i:  # a later record of the step wins
                tx.steps.upsert(change.record)
            tx.events.publish(
                change.event,
                now=change.at,
                run_id=self.run_id,
                job_id=self.job_id,
                data=change.data,
            )


def mask_text(masker: Masker, text: str) -> str:
    """`text` (lines joined by newlines) with each line masked on its own; one search of
    the whole text when, as usual, nothing matches."""
    if not masker or not masker.may_match(text.encode("utf-8", errors="replace")):
        return text
    return "\n".join(masker.mask(line) for line in text.split("\n"))


class JobMaskers:
    """The server's maskers for jobs remote runners hold: what a runner sends (log lines,
    step names, outputs, errors) is masked again here, whatever the runner did (defence
    in depth: a runner of an old version, or one that was tampered with).

    The masker of a job handed out by this process masks the values it delivered; a job
    this process did not hand out (several servers, a restart) gets one of every secret
    of its project (`open_project`). A job handed out here also keeps its run's id
    (`run_id`), which its end needs. At most `size` jobs are kept, the oldest dropped.
    """

    def __init__(
        self, open_project: Callable[[int], Sequence[str]] | None = None, size: int = 1024
    ) -> None:
        self._open_project = open_project
        self._size = size
        self._maskers: OrderedDict[int, tuple[Masker, int | None]] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, job_id: int, values: list[str], run_id: int | None = None) -> None:
        self._put(job_id, Masker(values), run_id)

    def get(self, job_id: int, project_id: Callable[[], int | None]) -> Masker:
        with self._lock:
            found = self._maskers.get(job_id)
        if found is not None:
            return found[0]
        project = project_id() if self._open_project is not None else None
        values = self._open_project(project) if self._open_project and project else ()
        masker = Masker(list(values))
        self._put(job_id, masker, None)
        return masker

    def run_id(self, job_id: int) -> int | None:
        """The run of a job handed out here (None: not known here)."""
        with self._lock:
            found = self._maskers.get(job_id)
        return None if found is None else found[1]

    def forget(self, job_id: int) -> None:
        with self._lock:
            self._maskers.pop(job_id, None)

    def _put(self, job_id: int, masker: Masker, run_id: int | None) -> None:
        with self._lock:
            self._maskers[job_id] = (masker, run_id)
            while len(self._maskers) > self._size:
                self._maskers.popitem(last=False)


SCAN_PAGE = 256  # log chunks read per query
SCAN_SHOWN = 20  # findings written to the log and the audit event at most


def scan_job_log(
    store: Store, clock: Clock, job_id: int, texts: Sequence[bytes] | None = None
) -> list[Finding]:
    """Search the finished job's stored log for known credential shapes (`security.scanner`)
    and, when any is found, add a warning per finding at the end of the log — the rule and
    the line, never the value — and one audit event (`log.credential_found`).

    `texts`: the job's whole log as stored, in order, when the caller has it (it is then
    not read back)."""
    findings: list[Finding] = []
    lines_before = 0

    def scan_chunk(data: bytes) -> None:
        nonlocal lines_before
        text = data.decode("utf-8", errors="replace")
        for found in scan(text):
            findings.append(replace(found, line=found.line + lines_before))
        lines_before += text.count("\n")

    after = -1
    while texts is None:
        with store.transaction(write=False) as tx:
            chunks = tx.logs.read(job_id, after_seq=after, limit=SCAN_PAGE)
        for chunk in chunks:
            scan_chunk(chunk.data)
            after = chunk.seq
        if len(chunks) < SCAN_PAGE:
            break
    for data in texts or ():
        scan_chunk(data)
    if not findings:
        return findings
    shown = findings[:SCAN_SHOWN]
    warnings = [
        f"Warning: the log scanner found what looks like a {f.description} ({f.rule}) at "
        f"line {f.line} of this log. Shipline did not know this value, so it was not "
        "masked: rotate it, and stop printing it."
        for f in shown
    ]
    if len(findings) > len(shown):
        warnings.append(f"Warning: the log scanner found {len(findings) - len(shown)} more.")
    now = clock.now()
    with store.transaction() as tx:
        job = tx.jobs.get(job_id)
        run = tx.runs.get(job.run_id) if job is not None else None
        if job is None or run is None:
            return findings
        seq = tx.logs.last_seq(job_id) + 1
        tx.logs.append(job_id, seq, ("\n".join(warnings) + "\n").encode(), None)
        tx.events.publish("log", now=now, run_id=run.id, job_id=job_id, data={"seq": seq})
        tx.audit.append(
            actor="system",
            action="log.credential_found",
            now=now,
            project_id=run.project_id,
            target=f"job:{job_id}",
            reason="the job's log holds what looks like a credential",
            data={
                "run": run.id,
                "job": job.key,
                "findings": [{"rule": f.rule, "line": f.line} for f in shown],
                "count": len(findings),
            },
        )
    return findings


def scan_log(store: Store, clock: Clock, job_id: int, texts: Sequence[bytes] | None = None) -> None:
    """`scan_job_log` for a job that just ended: a failure never fails the job's end (it
    is logged)."""
    try:
        scan_job_log(store, clock, job_id, texts)
    except Exception:
        log.exception("job %s: cannot scan its log for credentials", job_id)
