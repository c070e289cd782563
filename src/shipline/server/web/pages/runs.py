"""A run: its job graph, jobs and steps with durations, one job's log by step (search,
line links, download), and the actions cancel, re-run failed and re-run all.

The actions are offered to those whose role allows them and checked again on the server by
`ProjectService` (which audits a denial), whatever the page showed.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from shipline.domain.errors import ShiplineError
from shipline.domain.records import Role
from shipline.domain.status import Status
from shipline.engine.errors import NotFound
from shipline.plan.compile import PlannedJob
from shipline.server.deps import RequestId, Services, ServicesDep
from shipline.server.web import runview
from shipline.server.web.ansi import plain
from shipline.server.web.dag import layout
from shipline.server.web.render import pages, path
from shipline.server.web.session import Form, Viewer
from shipline.server.web.status import badge, duration, elapsed

log = logging.getLogger("shipline.server")
router = APIRouter()

MAX_ID = 2**63 - 1
RunId = Annotated[int, Path(ge=1, le=MAX_ID)]
JobId = Annotated[int, Path(ge=1, le=MAX_ID)]
Search = Annotated[str, Query(max_length=200)]


def _planned(svc: Services, run_id: int) -> tuple[PlannedJob, ...]:
    """The plan's jobs, for drawing the whole graph; none when the plan cannot be had
    (a run whose workflow failed to load shows its stored jobs only)."""
    try:
        return svc.context.runs.planned_jobs(run_id)
    except (ShiplineError, ValueError):
        log.info("run %s: no plan to draw its graph from", run_id, exc_info=True)
        return ()


def _render(
    request: Request,
    svc: Services,
    who: Viewer,
    run_id: int,
    job_id: int | None,
    search: str,
    rid: str,
) -> Response:
    svc.projects.authorize_run(who, run_id, Role.VIEWER, action="run.read", request_id=rid)
    queries = svc.queries
    view = queries.run_view(run_id)
    now = svc.context.clock.now()
    if job_id is None:
        selected = runview.default_job(view)
    else:
        selected = next((j for j in view.jobs if j.job.id == job_id), None)
        if selected is None:
            raise NotFound("no such job in this run (earlier attempts' jobs are not shown)")
    nodes = runview.dag_nodes(
        view, _planned(svc, run_id), lambda j: path(request, "job", run_id=run_id, job_id=j), now
    )
    context: dict[str, object] = {
        "title": f"{view.run.workflow_name} #{view.run.number}",
        "run": view.run,
        "project": view.project,
        "run_badge": badge(view.run.status, view.run.conclusion),
        "run_duration": duration(elapsed(view.run.started_at, view.run.finished_at, now)),
        "graph": layout(nodes),
        "jobs": [runview.job_row(j, now) for j in view.jobs],
        "selected": None,
        "failing": None,
        "search": search,
        "can_act": svc.context.access.allows(who, view.run.project_id, Role.DEVELOPER),
        "live": view.run.status is not Status.COMPLETED,
    }
    if selected is not None:
        part = queries.logs(run_id, selected.job.id, after=-1, limit=None)
        steps, total, hidden = runview.step_logs(selected, part.chunks, now, search)
        context.update(
            selected=runview.job_row(selected, now),
            steps=steps,
            failing=runview.failing_line(steps),
            total_lines=total,
            hidden_lines=hidden,
            next_seq=part.next_seq,
            tail=not part.done and not search,
        )
    return pages(request).render(request, "run.html", context)


@router.get("/runs/{run_id}", name="run")
def run_page(
    request: Request, run_id: RunId, who: Viewer, svc: ServicesDep, rid: RequestId, q: Search = ""
) -> Response:
    return _render(request, svc, who, run_id, None, q, rid)


@router.get("/runs/{run_id}/jobs/{job_id}", name="job")
def job_page(
    request: Request,
    run_id: RunId,
    job_id: JobId,
    who: Viewer,
    svc: ServicesDep,
    rid: RequestId,
    q: Search = "",
) -> Response:
    return _render(request, svc, who, run_id, job_id, q, rid)


@router.get("/runs/{run_id}/jobs/{job_id}/log.txt", name="job_log")
def job_log(
    run_id: RunId, job_id: JobId, who: Viewer, svc: ServicesDep, rid: RequestId
) -> Response:
    """The whole log as plain text (escape sequences removed), as a download."""
    svc.projects.authorize_run(who, run_id, Role.VIEWER, action="log.read", request_id=rid)
    part = svc.queries.logs(run_id, job_id, after=-1, limit=None)
    text = "".join(
        plain(line) + "\n"
        for chunk in part.chunks
        for line in chunk.data.decode("utf-8", errors="replace").splitlines()
    )
    name = f"run-{run_id}-job-{job_id}.log"
    return Response(
        text,
        media_type="text/plain; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.post("/runs/{run_id}/cancel", name="run_cancel")
async def cancel(
    request: Request, run_id: RunId, who: Viewer, form: Form, svc: ServicesDep, rid: RequestId
) -> Response:
    await run_in_threadpool(svc.projects.cancel, who, run_id, request_id=rid)
    return RedirectResponse(path(request, "run", run_id=run_id), status_code=303)


@router.post("/runs/{run_id}/rerun", name="run_rerun")
async def rerun(
    request: Request, run_id: RunId, who: Viewer, form: Form, svc: ServicesDep, rid: RequestId
) -> Response:
    failed_only = form.get("failed_only") == "1"
    await run_in_threadpool(
        svc.projects.rerun, who, run_id, failed_only=failed_only, request_id=rid
    )
    return RedirectResponse(path(request, "run", run_id=run_id), status_code=303)
