"""What the run page shows, built from the engine's read models: jobs and steps with their
badges and durations, the DAG's nodes (planned jobs not created yet included), and a job's
log split into numbered lines per step.

Pure functions of records and a clock reading; the routes in `pages.runs` fetch them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from shipline.domain.records import JobRecord, LogChunk, StepRecord
from shipline.domain.status import Conclusion, Status
from shipline.engine.queries import JobView, RunView
from shipline.plan.compile import PlannedJob
from shipline.server.web.ansi import Segment, plain, render_line
from shipline.server.web.dag import Node
from shipline.server.web.status import PENDING, Badge, badge, duration, elapsed

# A job log longer than this shows its last lines only (the download has all of it).
MAX_LINES = 5_000


def job_live(key: str) -> str:
    return f"job:{key}"


def step_live(key: str, index: int) -> str:
    return f"step:{key}:{index}"


@dataclass(frozen=True, slots=True)
class StepRow:
    index: int
    name: str
    badge: Badge
    duration: str
    live: str


@dataclass(frozen=True, slots=True)
class JobRow:
    id: int
    key: str
    name: str
    badge: Badge
    duration: str
    live: str
    steps: tuple[StepRow, ...]
    error: str | None


def step_row(job: JobRecord, step: StepRecord, now: datetime) -> StepRow:
    took = elapsed(step.started_at, step.finished_at, now)
    return StepRow(
        step.index,
        step.name,
        badge(step.status, step.conclusion),
        duration(took),
        step_live(job.key, step.index),
    )


def job_row(view: JobView, now: datetime) -> JobRow:
    job = view.job
    took = elapsed(job.started_at, job.finished_at, now)
    return JobRow(
        job.id,
        job.key,
        job.name,
        badge(job.status, job.conclusion),
        duration(took),
        job_live(job.key),
        tuple(step_row(job, s, now) for s in view.steps),
        job.error,
    )


def dag_nodes(
    view: RunView, planned: Sequence[PlannedJob], href: Callable[[int], str], now: datetime
) -> list[Node]:
    """The stored jobs, and the planned ones not created yet (pending), in plan order.
    A job whose matrix was expanded at run time shows its stored cells only."""
    stored = {j.job.key: j.job for j in view.jobs}
    stored_ids = {j.job.job_id for j in view.jobs}
    nodes: list[Node] = []
    seen: set[str] = set()
    for plan_job in planned:
        job = stored.get(plan_job.key)
        if job is None and plan_job.job_id in stored_ids:
            continue  # cells of this job were created under other keys: drawn below
        if job is None:
            nodes.append(
                Node(
                    plan_job.key,
                    plan_job.job_id,
                    plan_job.display_name,
                    plan_job.needs,
                    PENDING,
                    None,
                    job_live(plan_job.key),
                )
            )
            continue
        seen.add(job.key)
        nodes.append(_node(job, href, now))
    nodes.extend(_node(j.job, href, now) for j in view.jobs if j.job.key not in seen)
    return nodes


def _node(job: JobRecord, href: Callable[[int], str], now: datetime) -> Node:
    took = elapsed(job.started_at, job.finished_at, now)
    return Node(
        job.key,
        job.job_id,
        job.name,
        job.needs,
        badge(job.status, job.conclusion),
        href(job.id),
        job_live(job.key),
        duration(took),
    )


def default_job(view: RunView) -> JobView | None:
    """The job to open first: a failed one, else a running one, else the first."""
    failed = [
        j for j in view.jobs if j.job.conclusion in (Conclusion.FAILURE, Conclusion.TIMED_OUT)
    ]
    running = [j for j in view.jobs if j.job.status is Status.IN_PROGRESS]
    for found in (failed, running, list(view.jobs)):
        if found:
            return found[0]
    return None


@dataclass(frozen=True, slots=True)
class LogLine:
    number: int
    segments: tuple[Segment, ...]

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments)

    def as_json(self) -> dict[str, object]:
        return {"n": self.number, "segs": [[s.css, s.text] for s in self.segments]}


@dataclass
class StepLog:
    """The lines a step wrote (`index` None: the job's own lines, before its steps)."""

    index: int | None
    name: str
    badge: Badge | None
    duration: str
    lines: list[LogLine]
    open: bool = False


def raw_lines(chunks: Sequence[LogChunk], first: int) -> list[tuple[int | None, int, str]]:
    """Each chunk's lines as `(step, number, text)`, numbered from `first`."""
    found: list[tuple[int | None, int, str]] = []
    number = first
    for chunk in chunks:
        parts = chunk.data.decode("utf-8", errors="replace").split("\n")
        if parts and parts[-1] == "":
            parts.pop()
        for part in parts:
            found.append((chunk.step_index, number, part))
            number += 1
    return found


def split_lines(chunks: Sequence[LogChunk], first: int) -> list[tuple[int | None, LogLine]]:
    """Each chunk's lines, numbered from `first`, rendered, with the step that wrote them."""
    return [(step, LogLine(n, render_line(text))) for step, n, text in raw_lines(chunks, first)]


def step_logs(
    view: JobView, chunks: Sequence[LogChunk], now: datetime, search: str = ""
) -> tuple[list[StepLog], int, int]:
    """The job's log by step, `(steps, lines in all, lines hidden)`: with `search`, only
    the lines containing it (case-insensitive); beyond `MAX_LINES`, the last ones."""
    by_index = {s.index: s for s in view.steps}
    logs: dict[int | None, StepLog] = {}
    for record in view.steps:
        row = step_row(view.job, record, now)
        failed = record.conclusion in (Conclusion.FAILURE, Conclusion.TIMED_OUT)
        logs[record.index] = StepLog(
            record.index,
            record.name,
            row.badge,
            row.duration,
            [],
            failed or record.status is Status.IN_PROGRESS,
        )
    raw = raw_lines(chunks, 1)
    total = len(raw)
    needle = search.casefold()
    if needle:  # on the visible text, before rendering: only the kept lines are rendered
        raw = [found for found in raw if needle in plain(found[2]).casefold()]
    hidden = total - len(raw)
    if len(raw) > MAX_LINES:
        hidden += len(raw) - MAX_LINES
        raw = raw[-MAX_LINES:]
    for index, number, text in raw:
        line = LogLine(number, render_line(text))
        if index not in logs:
            name = by_index[index].name if index in by_index else "Set up job"
            logs[index] = StepLog(index, name, None, "", [])
        logs[index].lines.append(line)
    ordered = sorted(logs.values(), key=lambda s: -1 if s.index is None else s.index)
    if needle or len(ordered) == 1:
        for step in ordered:
            step.open = True
    if needle:
        ordered = [s for s in ordered if s.lines]
    return ordered, total, hidden


# The line the runner adds after a step's command failed (as GitHub's runner words it).
_EXIT_LINE = re.compile(r"Error: Process completed with exit code -?\d+\.\Z")


def failing_line(steps: Sequence[StepLog]) -> int | None:
    """The number of the last line the first failed step's command wrote (where its
    failure shows: the runner's own closing `Error: Process completed with exit code N.`
    comes after it), None when no shown step failed or it wrote nothing."""
    for step in steps:
        if step.badge is None or step.badge.key != "failure" or not step.lines:
            continue
        written = [line for line in step.lines if not _EXIT_LINE.match(line.text)]
        return (written or step.lines)[-1].number
    return None
