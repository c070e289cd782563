"""Remote runners: the admin's endpoints (registration tokens, list, pause, remove) and the
runner's own (register, ask for a job, heartbeat).

The runner's endpoints take the credential of their kind only: a registration token to
register, a runner credential to ask for work and renew leases (SECURITY-CASES 23).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from shipline.domain.runners import RunnerRecord
from shipline.engine.errors import Forbidden, NotFound, Unauthenticated
from shipline.engine.remote import RemoteJobs
from shipline.engine.runners import RunnerService, RunnerView
from shipline.runner.remote.protocol import (
    HeartbeatIn,
    HeartbeatOut,
    JobOut,
    JobRequestIn,
    NextJobIn,
    RegisterIn,
    RegisterOut,
)
from shipline.server.api import API_PREFIX
from shipline.server.deps import Bearer, Caller, Services, ServicesDep, audit_failure
from shipline.server.schemas import ErrorOut, PageOut, Text

router = APIRouter(
    prefix=API_PREFIX,
    tags=["runners"],
    responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}},
)

RunnerId = Annotated[int, Path(ge=1, le=2**31 - 1, description="the runner's id")]


def runner_service(svc: Services) -> RunnerService:
    if svc.context.runners is None:
        raise NotFound("this server has no remote runners")
    return svc.context.runners


def remote_jobs(svc: Services) -> RemoteJobs:
    if svc.context.remote is None:
        raise NotFound("this server hands out no jobs to remote runners")
    return svc.context.remote


class RegistrationTokenCreate(BaseModel):
    model_config = {"extra": "forbid"}

    name: Text = "runners"
    expires_in_hours: int | None = Field(default=None, ge=1, le=24 * 365)


class RegistrationTokenOut(BaseModel):
    id: int
    name: str
    token: str
    expires_at: datetime | None


class RunnerJobOut(BaseModel):
    job_id: int
    try_number: int
    claimed_at: datetime


class RunnerOut(BaseModel):
    """A runner: `online` when it asked for work or renewed a lease in the last minute."""

    id: int
    name: str
    labels: list[str]
    version: str
    slots: int
    online: bool
    paused: bool
    created_at: datetime
    last_seen_at: datetime | None
    jobs: list[RunnerJobOut]

    @classmethod
    def from_view(cls, view: RunnerView) -> RunnerOut:
        r = view.runner
        return cls(
            id=r.id,
            name=r.name,
            labels=list(r.labels),
            version=r.version,
            slots=r.slots,
            online=view.online,
            paused=r.paused,
            created_at=r.created_at,
            last_seen_at=r.last_seen_at,
            jobs=[
                RunnerJobOut(job_id=a.job_id, try_number=a.try_number, claimed_at=a.claimed_at)
                for a in view.jobs
            ],
        )


# -- the admin's endpoints ---------------------------------------------------------------


@router.post(
    "/runners/registration-tokens",
    status_code=status.HTTP_201_CREATED,
    summary="Create a runner registration token",
)
def create_registration_token(
    body: RegistrationTokenCreate, caller: Caller, svc: ServicesDep
) -> RegistrationTokenOut:
    """A token `shipline runner register` exchanges for a runner credential (admins only);
    shown in this response only. Valid for 24 hours unless `expires_in_hours` says."""
    hours = body.expires_in_hours
    plaintext, record = runner_service(svc).create_registration_token(
        caller, body.name, timedelta(hours=hours) if hours else None
    )
    return RegistrationTokenOut(
        id=record.id, name=record.name, token=plaintext, expires_at=record.expires_at
    )


@router.get("/runners", summary="List runners")
def list_runners(caller: Caller, svc: ServicesDep) -> PageOut[RunnerOut]:
    """Every registered runner (admins only), with the jobs each holds now."""
    views = runner_service(svc).list_runners(caller)
    return PageOut(items=[RunnerOut.from_view(v) for v in views])


@router.get("/runners/{runner_id}", summary="Show a runner", responses={404: {"model": ErrorOut}})
def get_runner(runner_id: RunnerId, caller: Caller, svc: ServicesDep) -> RunnerOut:
    return RunnerOut.from_view(runner_service(svc).get(caller, runner_id))


@router.post(
    "/runners/{runner_id}/pause", summary="Pause a runner", responses={404: {"model": ErrorOut}}
)
def pause_runner(runner_id: RunnerId, caller: Caller, svc: ServicesDep) -> RunnerOut:
    """The runner gets no new jobs; those it holds run to the end."""
    return RunnerOut.from_view(runner_service(svc).set_paused(caller, runner_id, True))


@router.post(
    "/runners/{runner_id}/resume", summary="Resume a runner", responses={404: {"model": ErrorOut}}
)
def resume_runner(runner_id: RunnerId, caller: Caller, svc: ServicesDep) -> RunnerOut:
    return RunnerOut.from_view(runner_service(svc).set_paused(caller, runner_id, False))


@router.delete(
    "/runners/{runner_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a runner",
    responses={404: {"model": ErrorOut}},
)
def remove_runner(runner_id: RunnerId, caller: Caller, svc: ServicesDep) -> Response:
    """The runner's credential is refused from now on (401)."""
    runner_service(svc).remove(caller, runner_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- the runner's endpoints --------------------------------------------------------------


def _runner(svc: Services, token: str | None, request: Request) -> RunnerRecord:
    try:
        return runner_service(svc).authenticate(token)
    except Unauthenticated as exc:
        audit_failure(svc, exc.reason, request)
        raise


@router.post(
    "/runner/register",
    status_code=status.HTTP_201_CREATED,
    summary="Register a runner (registration token)",
)
def register(body: RegisterIn, token: Bearer, svc: ServicesDep, request: Request) -> RegisterOut:
    """Exchange a registration token for a runner credential, shown this once."""
    try:
        runner, credential = runner_service(svc).register(
            token, body.name, body.labels, body.version, body.slots
        )
    except Unauthenticated as exc:
        audit_failure(svc, exc.reason, request)
        raise
    return RegisterOut(id=runner.id, name=runner.name, token=credential)


@router.post(
    "/runner/jobs/request",
    summary="Ask for a job (runner credential; long poll)",
    responses={200: {"model": JobOut}, 204: {"description": "no job within `wait` seconds"}},
    response_model=None,
)
async def request_job(
    body: JobRequestIn, token: Bearer, svc: ServicesDep, request: Request
) -> Response:
    """A job whose `runs-on` labels the runner has, with a token for that job only; 204
    when none came within `wait` seconds. `labels` narrows the runner's registered labels
    (403 for one it was not registered with); `version`, `slots` update its record."""
    service = runner_service(svc)

    def first() -> tuple[RunnerRecord, frozenset[str], JobOut | None]:
        # One trip to a worker thread for what comes first (a claim answers most asks
        # on a busy queue): authenticate, note the runner alive, claim.
        runner = _runner(svc, token, request)
        labels = service.labels_for(runner, body.labels)
        runner = service.seen(runner, version=body.version, slots=body.slots)
        return runner, labels, remote_jobs(svc).claim(runner, labels)

    runner, labels, job = await run_in_threadpool(first)
    if job is None and body.wait > 0:
        # Claims again before it waits: a job queued meanwhile is not missed.
        job = await remote_jobs(svc).request(runner, body.wait, labels)
    if job is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return job_response(job)


def job_response(job: JobOut) -> Response:
    """A handed-out job as JSON, serialised by pydantic at once (a returned model would
    go through FastAPI's generic encoder first, at several times the cost)."""
    return Response(job.model_dump_json(), media_type="application/json")


def next_job(svc: Services, token: str | None, ask: NextJobIn, request: Request) -> JobOut | None:
    """The runner's next job, claimed now for a finish message that asked for one (None:
    none, or the runner may not have one: its next request is refused with the reason)."""
    service = runner_service(svc)
    try:
        runner = _runner(svc, token, request)
        labels = service.labels_for(runner, ask.labels)
    except (Unauthenticated, Forbidden):
        return None
    runner = service.seen(runner, version=ask.version, slots=ask.slots)
    return remote_jobs(svc).claim(runner, labels)


@router.post("/runner/heartbeat", summary="Renew job leases (runner credential; long poll)")
async def heartbeat(
    body: HeartbeatIn, token: Bearer, svc: ServicesDep, request: Request
) -> HeartbeatOut:
    """Renew the leases of the runner's running jobs; answers at once when one of them must
    stop (`cancel`) or is no longer the runner's (`lost`), else after `wait` seconds."""
    runner = await run_in_threadpool(_runner, svc, token, request)
    runner = await run_in_threadpool(runner_service(svc).seen, runner)
    return await remote_jobs(svc).watch(runner, body.jobs, body.wait)
