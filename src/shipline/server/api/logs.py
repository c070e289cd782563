"""A job's log: whole or by range as text, or followed live as Server-Sent Events.

Plain: `text/plain` of the chunks after `after` (ANSI colours as stored), with
`X-Next-Seq` — the seq to pass as `after` to read on from there.

Live (`follow=1` or `Accept: text/event-stream`): one `event: log` per chunk (`id:` its
seq, `data:` `{"seq", "step", "text"}`), then `event: status` once the job has completed
and every chunk has been sent, then the stream ends. A client that reconnects sends
`Last-Event-ID` and resumes after that chunk.

The stream polls the store every `ServerContext.log_poll_interval` (0.1 s) through
`server.follow.follow_log`, which the dashboard's live log tail shares.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse

from shipline.domain.records import LogChunk, Role
from shipline.engine.queries import Queries
from shipline.server.api import API_PREFIX
from shipline.server.deps import Caller, RequestId, ServicesDep
from shipline.server.follow import follow_log
from shipline.server.schemas import ErrorOut

router = APIRouter(
    prefix=API_PREFIX,
    tags=["logs"],
    responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 404: {"model": ErrorOut}},
)

MAX_ID = 2**63 - 1


def _text(chunk: LogChunk) -> str:
    return chunk.data.decode("utf-8", errors="replace")


def _sse(event: str, data: object, event_id: int | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data)}\n\n".encode()


async def _follow(
    queries: Queries,
    run_id: int,
    job_id: int,
    after: int,
    *,
    interval: float,
    timeout: float,
) -> AsyncIterator[bytes]:
    """Chunks as they arrive, then the job's status; ends after `timeout` regardless."""
    async for item in follow_log(
        queries, run_id, job_id, after, interval=interval, timeout=timeout
    ):
        if item is None:
            yield b": keep-alive\n\n"
        elif isinstance(item, LogChunk):
            data = {"seq": item.seq, "step": item.step_index, "text": _text(item)}
            yield _sse("log", data, item.seq)
        else:
            conclusion = item.conclusion.value if item.conclusion is not None else None
            yield _sse("status", {"status": item.status.value, "conclusion": conclusion})


@router.get(
    "/runs/{run_id}/jobs/{job_id}/logs",
    summary="Read or follow a job's log",
    response_class=Response,
    responses={
        200: {
            "content": {"text/plain": {}, "text/event-stream": {}},
            "description": "the log as text, or a stream of events when following",
            "headers": {"X-Next-Seq": {"description": "pass as `after` to read on"}},
        },
    },
)
async def job_logs(
    run_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    job_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    caller: Caller,
    svc: ServicesDep,
    request_id: RequestId,
    after: Annotated[int, Query(ge=-1, le=MAX_ID, description="read chunks after this seq")] = -1,
    limit: Annotated[int | None, Query(ge=1, le=10_000)] = None,
    follow: Annotated[bool, Query(description="stream Server-Sent Events")] = False,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
    last_event_id: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    await run_in_threadpool(
        svc.projects.authorize_run,
        caller,
        run_id,
        Role.VIEWER,
        action="log.read",
        request_id=request_id,
    )
    queries = svc.queries
    if follow or "text/event-stream" in (accept or ""):
        if last_event_id is not None and last_event_id.strip().lstrip("-").isdigit():
            after = max(after, int(last_event_id.strip()))
        # Answer 404 for a job of another run now, before the stream starts.
        await run_in_threadpool(queries.job_view, run_id, job_id)
        stream = _follow(
            queries,
            run_id,
            job_id,
            after,
            interval=svc.context.log_poll_interval,
            timeout=svc.context.log_stream_timeout,
        )
        return StreamingResponse(
            stream,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    part = await run_in_threadpool(queries.logs, run_id, job_id, after=after, limit=limit)
    body = b"".join(c.data for c in part.chunks)
    return Response(
        body,
        media_type="text/plain; charset=utf-8",
        headers={"X-Next-Seq": str(part.next_seq)},
    )
