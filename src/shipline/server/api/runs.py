"""Runs and their jobs: trigger, list with filters, show (with jobs and steps), cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, status

from shipline.domain.records import Role
from shipline.domain.status import Status
from shipline.engine.service import TriggerRequest
from shipline.server.api import API_PREFIX
from shipline.server.deps import Caller, Credentials, RequestId, ServicesDep, authenticated
from shipline.server.schemas import ErrorOut, JobOut, PageOut, RerunCreate, RunCreate, RunOut
from shipline.store.ports import RunFilter

router = APIRouter(
    prefix=API_PREFIX,
    tags=["runs"],
    responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 404: {"model": ErrorOut}},
)

MAX_ID = 2**63 - 1
ProjectParam = Annotated[str, Path(max_length=100, description="the project's name")]
RunId = Annotated[int, Path(ge=1, le=MAX_ID, description="the run's id")]
JobId = Annotated[int, Path(ge=1, le=MAX_ID, description="the job's id")]
Filter = Annotated[str | None, Query(min_length=1, max_length=255)]


@router.post(
    "/projects/{project}/runs",
    status_code=status.HTTP_201_CREATED,
    summary="Trigger runs",
    responses={422: {"model": ErrorOut}},
)
def trigger_runs(
    project: ProjectParam,
    body: RunCreate,
    caller: Caller,
    svc: ServicesDep,
    request_id: RequestId,
) -> PageOut[RunOut]:
    """Start the workflows the event triggers at the ref's current commit (developer and
    up). The workflow files are read by the server from the repository. Dispatch inputs
    are checked against the workflow's declarations: 422 naming `inputs.<name>`."""
    request = TriggerRequest(
        ref=body.ref, workflow=body.workflow, event=body.event, inputs=body.inputs
    )
    runs = svc.projects.trigger(caller, project, request, request_id=request_id)
    return PageOut(items=[RunOut.from_record(r, project) for r in runs])


@router.get("/projects/{project}/runs", summary="List a project's runs")
def list_runs(
    project: ProjectParam,
    credentials: Credentials,
    svc: ServicesDep,
    request: Request,
    request_id: RequestId,
    status: Annotated[Status | None, Query()] = None,
    branch: Filter = None,
    event: Filter = None,
    workflow: Annotated[
        str | None, Query(min_length=1, max_length=255, description="the workflow file's path")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> PageOut[RunOut]:
    """Newest first; `branch` matches runs of `refs/heads/<branch>`."""
    with svc.context.store.reading():  # one read transaction for the whole request
        caller = authenticated(svc, credentials, request)
        record = svc.projects.authorize(
            caller, project, Role.VIEWER, action="run.list", request_id=request_id
        )
        flt = RunFilter(
            project_id=record.id,
            status=status,
            ref=f"refs/heads/{branch}" if branch is not None else None,
            event=event,
            workflow_file=workflow,
        )
        page = svc.queries.runs_page(flt, limit=limit, cursor=cursor)
    return PageOut(
        items=[RunOut.from_record(r, record.name) for r in page.items],
        next_cursor=page.next_cursor,
    )


@router.get("/runs/{run_id}", summary="Show a run with its jobs and steps")
def get_run(
    run_id: RunId,
    credentials: Credentials,
    svc: ServicesDep,
    request: Request,
    request_id: RequestId,
) -> RunOut:
    with svc.context.store.reading():  # one read transaction for the whole request
        caller = authenticated(svc, credentials, request)
        svc.projects.authorize_run(
            caller, run_id, Role.VIEWER, action="run.read", request_id=request_id
        )
        view = svc.queries.run_view(run_id)
    jobs = [JobOut.from_record(j.job, j.steps) for j in view.jobs]
    return RunOut.from_record(view.run, view.project, jobs)


@router.post(
    "/runs/{run_id}/cancel",
    summary="Cancel a run",
    responses={409: {"model": ErrorOut}},
)
def cancel_run(run_id: RunId, caller: Caller, svc: ServicesDep, request_id: RequestId) -> RunOut:
    """Queued jobs end cancelled, running ones are told to stop (developer and up).
    Cancelling a completed run changes nothing and returns it as it is."""
    run = svc.projects.cancel(caller, run_id, request_id=request_id)
    view = svc.queries.run_view(run.id)
    return RunOut.from_record(run, view.project)


@router.post(
    "/runs/{run_id}/rerun",
    summary="Re-run a completed run",
    responses={409: {"model": ErrorOut}},
)
def rerun_run(
    run_id: RunId, body: RerunCreate, caller: Caller, svc: ServicesDep, request_id: RequestId
) -> RunOut:
    """A new attempt at the same commit (developer and up): every job, or with
    `failed_only` the jobs that did not succeed and those that need them; earlier attempts'
    jobs and logs stay. 409 while the run is not completed."""
    run = svc.projects.rerun(caller, run_id, failed_only=body.failed_only, request_id=request_id)
    view = svc.queries.run_view(run.id)
    return RunOut.from_record(run, view.project)


@router.get("/runs/{run_id}/jobs", summary="List a run's jobs")
def list_jobs(
    run_id: RunId,
    credentials: Credentials,
    svc: ServicesDep,
    request: Request,
    request_id: RequestId,
) -> PageOut[JobOut]:
    """The jobs of the run's current attempt, in creation order, with their steps."""
    with svc.context.store.reading():  # one read transaction for the whole request
        caller = authenticated(svc, credentials, request)
        svc.projects.authorize_run(
            caller, run_id, Role.VIEWER, action="job.list", request_id=request_id
        )
        view = svc.queries.run_view(run_id)
    return PageOut(items=[JobOut.from_record(j.job, j.steps) for j in view.jobs])


@router.get("/runs/{run_id}/jobs/{job_id}", summary="Show a job with its steps")
def get_job(
    run_id: RunId,
    job_id: JobId,
    credentials: Credentials,
    svc: ServicesDep,
    request: Request,
    request_id: RequestId,
) -> JobOut:
    with svc.context.store.reading():  # one read transaction for the whole request
        caller = authenticated(svc, credentials, request)
        svc.projects.authorize_run(
            caller, run_id, Role.VIEWER, action="job.read", request_id=request_id
        )
        view = svc.queries.job_view(run_id, job_id)
    return JobOut.from_record(view.job, view.steps)
