"""Live updates for the run page, as Server-Sent Events read by `static/live.js`.

`/runs/{id}/events`: an `update` event whenever the run, a job or a step changes state
(badges and durations, the same `Badge`s the page was rendered with), then `end` once the
run has completed. `/runs/{id}/jobs/{job}/log/events`: the job's new log lines, numbered on
from the page's last line and already split into styled segments (text, never HTML), then
`end` with the job's badge. Each event's `id` (`<seq>.<line>`) lets a reconnecting browser
resume where it was. Both follow the store through `server.follow`, as the API's log stream
does, with the signed-in user's session instead of a bearer token.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from shipline.domain.records import LogChunk, Role
from shipline.domain.status import Status
from shipline.engine.queries import Queries, RunView
from shipline.server.deps import RequestId, ServicesDep
from shipline.server.follow import follow_log, follow_run
from shipline.server.web import runview
from shipline.server.web.render import path
from shipline.server.web.session import Viewer
from shipline.server.web.status import badge, duration, elapsed

router = APIRouter()

MAX_ID = 2**63 - 1
# Run states are polled less often than logs: a badge may lag half a second.
MIN_STATUS_INTERVAL = 0.5
_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _sse(event: str, data: object, event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def _update(view: RunView, request: Request, now: datetime) -> dict[str, object]:
    run = view.run
    jobs = []
    for job_view in view.jobs:
        row = runview.job_row(job_view, now)
        jobs.append(
            {
                "live": row.live,
                "name": row.name,
                "href": path(request, "job", run_id=run.id, job_id=row.id),
                "badge": row.badge.as_json(),
                "duration": row.duration,
                "steps": [
                    {
                        "live": s.live,
                        "name": s.name,
                        "badge": s.badge.as_json(),
                        "duration": s.duration,
                    }
                    for s in row.steps
                ],
            }
        )
    took = duration(elapsed(run.started_at, run.finished_at, now))
    return {
        "run": {
            "live": "run",
            "badge": badge(run.status, run.conclusion).as_json(),
            "duration": took,
        },
        "jobs": jobs,
    }


@router.get("/runs/{run_id}/events", name="run_events")
async def run_events(
    request: Request,
    run_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    who: Viewer,
    svc: ServicesDep,
    rid: RequestId,
) -> StreamingResponse:
    await run_in_threadpool(
        svc.projects.authorize_run, who, run_id, Role.VIEWER, action="run.read", request_id=rid
    )
    context = svc.context
    interval = max(context.log_poll_interval, MIN_STATUS_INTERVAL)

    async def stream() -> AsyncIterator[bytes]:
        async for view in follow_run(
            svc.queries, run_id, interval=interval, timeout=context.log_stream_timeout
        ):
            if view is None:
                yield b": keep-alive\n\n"
                continue
            yield _sse("update", _update(view, request, context.clock.now()))
            if view.run.status is Status.COMPLETED:
                yield _sse("end", {})

    return StreamingResponse(stream(), media_type="text/event-stream", headers=_HEADERS)


def _resume(last_event_id: str | None, after: int, line: int) -> tuple[int, int]:
    """`(after, next line number)`, from the last event a reconnecting browser saw."""
    if last_event_id:
        seq, _, number = last_event_id.partition(".")
        if seq.isdigit() and number.isdigit():
            return max(after, int(seq)), max(line, int(number) + 1)
    return after, line


async def _lines(
    queries: Queries,
    run_id: int,
    job_id: int,
    after: int,
    line: int,
    interval: float,
    timeout: float,
) -> AsyncIterator[bytes]:
    async for item in follow_log(
        queries, run_id, job_id, after, interval=interval, timeout=timeout
    ):
        if item is None:
            yield b": keep-alive\n\n"
        elif isinstance(item, LogChunk):
            lines = [found for _, found in runview.split_lines([item], line)]
            line += len(lines)
            data = {"step": item.step_index, "lines": [found.as_json() for found in lines]}
            yield _sse("lines", data, f"{item.seq}.{line - 1}")
        else:
            yield _sse("end", {"badge": badge(item.status, item.conclusion).as_json()})


@router.get("/runs/{run_id}/jobs/{job_id}/log/events", name="log_events")
async def log_events(
    run_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    job_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    who: Viewer,
    svc: ServicesDep,
    rid: RequestId,
    after: Annotated[int, Query(ge=-1, le=MAX_ID)] = -1,
    line: Annotated[int, Query(ge=1, le=MAX_ID)] = 1,
    last_event_id: Annotated[str | None, Header(max_length=60)] = None,
) -> StreamingResponse:
    await run_in_threadpool(
        svc.projects.authorize_run, who, run_id, Role.VIEWER, action="log.read", request_id=rid
    )
    await run_in_threadpool(svc.queries.job_view, run_id, job_id)  # 404 before streaming
    after, line = _resume(last_event_id, after, line)
    context = svc.context
    stream = _lines(
        svc.queries,
        run_id,
        job_id,
        after,
        line,
        context.log_poll_interval,
        context.log_stream_timeout,
    )
    return StreamingResponse(stream, media_type="text/event-stream", headers=_HEADERS)
