"""Following a job's log and a run's state as they change, for live views (SSE).

Both poll the store through `Queries` (simple, and correct with many servers sharing one
database; LISTEN/NOTIFY on PostgreSQL would only wake the sleep early). Each ends after
`timeout` even when the job or run has not completed, so that no request lives forever:
clients reconnect and resume. `None` items ask the caller for a keep-alive comment, sent
now and then so that proxies keep a quiet stream open.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
from fastapi.concurrency import run_in_threadpool

from shipline.domain.records import JobRecord, LogChunk
from shipline.domain.status import Status
from shipline.engine.queries import LogSlice, Queries, RunView

BATCH = 500
KEEPALIVE_SECONDS = 15.0


async def follow_log(
    queries: Queries,
    run_id: int,
    job_id: int,
    after: int,
    *,
    interval: float,
    timeout: float,
) -> AsyncIterator[LogChunk | JobRecord | None]:
    """The job's log chunks after seq `after` as they arrive, then the completed job."""
    waited = 0.0
    quiet = 0.0
    while waited <= timeout:
        part: LogSlice = await run_in_threadpool(
            queries.logs, run_id, job_id, after=after, limit=BATCH
        )
        for chunk in part.chunks:
            yield chunk
        after = part.next_seq
        if part.done and len(part.chunks) < BATCH:
            yield part.job
            return
        if part.chunks:
            continue  # more may be waiting: read on without sleeping
        await anyio.sleep(interval)
        waited += interval
        quiet += interval
        if quiet >= KEEPALIVE_SECONDS:
            quiet = 0.0
            yield None


async def follow_run(
    queries: Queries, run_id: int, *, interval: float, timeout: float
) -> AsyncIterator[RunView | None]:
    """The run with its jobs and steps, each time any of their states changes (the first
    view at once); ends after the view in which the run has completed."""
    waited = 0.0
    quiet = 0.0
    last: RunView | None = None
    while waited <= timeout:
        view: RunView = await run_in_threadpool(queries.run_view, run_id)
        if view != last:
            quiet = 0.0
            yield view
            last = view
        if view.run.status is Status.COMPLETED:
            return
        await anyio.sleep(interval)
        waited += interval
        quiet += interval
        if quiet >= KEEPALIVE_SECONDS:
            quiet = 0.0
            yield None
