"""Environments, approvals and deployments.

Approvals: `GET /approvals` (what waits for a decision), `POST /runs/{run}/environments/
{env}/approve|reject`. Deployments: history per project or environment, one deployment
with its progress, `shipline deploy` / `rollback` / roll forward, and the endpoint a
`shipline/deploy` step calls with its job token (`POST /jobs/{job}/deployments`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from shipline.domain.deployments import ReleaseHistoryRecord
from shipline.domain.records import TokenKind
from shipline.engine.access import Principal
from shipline.engine.deployments import DeploymentService, DeploymentView
from shipline.engine.errors import Conflict, Unauthenticated
from shipline.engine.gates import Approval, GateService
from shipline.server.api import API_PREFIX
from shipline.server.deps import Caller, RequestId, ServicesDep, audit_failure
from shipline.server.schemas import ErrorOut, PageOut

router = APIRouter(
    prefix=API_PREFIX,
    tags=["deployments"],
    responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 404: {"model": ErrorOut}},
)

MAX_ID = 2**63 - 1
ProjectParam = Annotated[str, Path(max_length=100, description="the project's name")]
EnvParam = Annotated[str, Path(max_length=100, description="the environment's name")]
RunId = Annotated[int, Path(ge=1, le=MAX_ID, description="the run's id")]
JobId = Annotated[int, Path(ge=1, le=MAX_ID, description="the job's id")]
DeploymentId = Annotated[int, Path(ge=1, le=MAX_ID, description="the deployment's id")]
_bearer = HTTPBearer(auto_error=False, description="A user token, or the job's own token")


def user_or_job(
    request: Request,
    svc: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller, with a user token or a job token (a job acts on its own project only)."""
    token = credentials.credentials if credentials is not None else None
    try:
        return svc.context.access.authenticate(
            token, allowed=frozenset({TokenKind.USER, TokenKind.JOB})
        )
    except Unauthenticated as exc:
        audit_failure(svc, exc.reason, request)
        raise


AnyCaller = Annotated[Principal, Depends(user_or_job)]


def _gates(svc: ServicesDep) -> GateService:
    if svc.context.gates is None:
        raise Conflict("this server has no environments")
    return svc.context.gates


def _deployments(svc: ServicesDep) -> DeploymentService:
    if svc.context.deployments is None:
        raise Conflict("this server deploys nothing")
    return svc.context.deployments


# -- approvals ---------------------------------------------------------------------------


class DecisionOut(BaseModel):
    user: str
    decision: str
    comment: str
    at: datetime


class ApprovalOut(BaseModel):
    """A job waiting for its environment's protection rules."""

    project: str
    run_id: int
    run_number: int
    job_id: int
    job: str
    environment: str
    state: str
    actor: str = Field(
        description="who started the run (may not approve it when the "
        "environment prevents self-review)"
    )
    ref: str
    sha: str
    required: int
    approvals: int
    wait_until: datetime | None
    created_at: datetime | None
    decisions: list[DecisionOut]

    @classmethod
    def of(cls, a: Approval) -> ApprovalOut:
        g = a.gate
        return cls(
            project=a.project,
            run_id=g.run_id,
            run_number=a.run_number,
            job_id=g.job_id,
            job=a.job_key,
            environment=g.environment,
            state=str(g.state),
            actor=g.actor,
            ref=g.ref,
            sha=g.sha,
            required=g.required,
            approvals=a.approvals,
            wait_until=g.wait_until,
            created_at=g.created_at,
            decisions=[
                DecisionOut(user=d.user, decision=d.decision, comment=d.comment, at=d.at)
                for d in a.decisions
            ],
        )


class DecisionIn(BaseModel):
    """An optional comment for the audit trail and the job's error (on a rejection)."""

    model_config = ConfigDict(extra="forbid")

    comment: str = Field(default="", max_length=2000)


class GateOut(BaseModel):
    job_id: int
    environment: str
    state: str
    reason: str


@router.get("/approvals", summary="Jobs waiting for an environment's approval")
def list_approvals(
    caller: Caller,
    svc: ServicesDep,
    project: Annotated[str | None, Query(max_length=100)] = None,
) -> PageOut[ApprovalOut]:
    """Every waiting job in the projects the caller may see (or in `project`), oldest
    first."""
    items = _gates(svc).pending(caller, project)
    return PageOut(items=[ApprovalOut.of(a) for a in items])


def _decide(
    decision: str,
    run: int,
    environment: str,
    body: DecisionIn,
    caller: Principal,
    svc: ServicesDep,
    request_id: str,
) -> PageOut[GateOut]:
    gates = _gates(svc).decide(
        caller, run, environment, decision, body.comment, request_id=request_id
    )
    return PageOut(
        items=[
            GateOut(job_id=g.job_id, environment=g.environment, state=str(g.state), reason=g.reason)
            for g in gates
        ]
    )


@router.post(
    "/runs/{run}/environments/{environment}/approve",
    summary="Approve a run's deployment to an environment",
    responses={409: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)
def approve(
    run: RunId,
    environment: EnvParam,
    body: DecisionIn,
    caller: Caller,
    svc: ServicesDep,
    request_id: RequestId,
) -> PageOut[GateOut]:
    """One reviewer's approval of the run's jobs waiting for `environment`. 403 when the
    caller is not a reviewer, or started the run and the environment prevents self-review
    (audited); 409 when they decided already."""
    return _decide("approve", run, environment, body, caller, svc, request_id)


@router.post(
    "/runs/{run}/environments/{environment}/reject",
    summary="Reject a run's deployment to an environment",
    responses={409: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)
def reject(
    run: RunId,
    environment: EnvParam,
    body: DecisionIn,
    caller: Caller,
    svc: ServicesDep,
    request_id: RequestId,
) -> PageOut[GateOut]:
    """Reject: the waiting jobs fail with the reviewer's name and comment."""
    return _decide("reject", run, environment, body, caller, svc, request_id)


# -- deployments -------------------------------------------------------------------------


class ReleaseOut(BaseModel):
    """A verified artifact of a run."""

    id: int
    artifact: str
    digest: str
    provenance: str
    run_id: int
    job: str
    ref: str
    sha: str
    builder: str
    created_by: str
    created_at: datetime


class DeploymentOut(BaseModel):
    """One release going to one environment, and how it ended."""

    id: int
    project: str
    environment: str
    kind: str
    state: str
    reason: str
    actor: str
    ref: str
    sha: str
    run_id: int | None
    job_id: int | None
    previous_release_id: int | None
    release: ReleaseOut
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, view: DeploymentView, project: str) -> DeploymentOut:
        d, r = view.deployment, view.release
        return cls(
            id=d.id,
            project=project,
            environment=d.environment,
            kind=str(d.kind),
            state=str(d.state),
            reason=d.reason,
            actor=d.actor,
            ref=d.ref,
            sha=d.sha,
            run_id=d.run_id,
            job_id=d.job_id,
            previous_release_id=d.previous_release_id,
            release=ReleaseOut(
                id=r.id,
                artifact=r.artifact,
                digest=r.digest,
                provenance=r.provenance,
                run_id=r.run_id,
                job=r.job_key,
                ref=r.ref,
                sha=r.sha,
                builder=r.builder,
                created_by=r.created_by,
                created_at=r.created_at,
            ),
            created_at=d.created_at,
            started_at=d.started_at,
            finished_at=d.finished_at,
        )


class ProgressOut(BaseModel):
    """A deployment's state and its progress lines after `after` (`seq` to pass next)."""

    deployment: DeploymentOut
    lines: list[str]
    seq: int


class DeployIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    release: int = Field(ge=1, le=MAX_ID)


class RollbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    release: int | None = Field(
        default=None,
        ge=1,
        le=MAX_ID,
        description="default: the release that was live before the current one (from the "
        "environment's release history)",
    )


class ReleaseHistoryOut(BaseModel):
    """One rollout of a release to an environment (release history)."""

    id: int
    project: str
    environment: str
    deployment_id: int
    release_id: int
    artifact: str
    digest: str
    kind: str = Field(description="deploy | rollback | roll_forward")
    outcome: str = Field(description="success | rolled_back | failure")
    cause: str = Field(description="hooks | health | analysis | target, when it failed")
    reason: str
    rolled_back_to: int | None = Field(description="the release the environment went back to")
    actor: str
    run_id: int = Field(description="the run that built the release")
    ref: str
    sha: str
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, e: ReleaseHistoryRecord, project: str) -> ReleaseHistoryOut:
        return cls(
            id=e.id,
            project=project,
            environment=e.environment,
            deployment_id=e.deployment_id,
            release_id=e.release_id,
            artifact=e.artifact,
            digest=e.digest,
            kind=e.kind.value,
            outcome=e.outcome.value,
            cause=e.cause,
            reason=e.reason,
            rolled_back_to=e.rolled_back_to,
            actor=e.actor,
            run_id=e.run_id,
            ref=e.ref,
            sha=e.sha,
            started_at=e.started_at,
            finished_at=e.finished_at,
        )


class JobDeployIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    artifact: str = Field(min_length=1, max_length=255)


def _project_name(svc: ServicesDep, project_id: int) -> str:
    with svc.context.store.transaction(write=False) as tx:
        project = tx.projects.get_by_id(project_id)
    return project.name if project is not None else ""


@router.get("/projects/{project}/deployments", summary="Release history")
def list_deployments(
    project: ProjectParam,
    caller: Caller,
    svc: ServicesDep,
    environment: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> PageOut[DeploymentOut]:
    """Deployments of the project (or of one environment), newest first: which release,
    when, by whom, from which run and commit, and the outcome with its reason."""
    page = _deployments(svc).history(caller, project, environment, limit=limit, cursor=cursor)
    return PageOut(
        items=[DeploymentOut.of(v, project) for v in page.items], next_cursor=page.next_cursor
    )


@router.get(
    "/projects/{project}/environments/{environment}/releases",
    summary="An environment's release history",
)
def list_releases(
    project: ProjectParam,
    environment: EnvParam,
    caller: Caller,
    svc: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> PageOut[ReleaseHistoryOut]:
    """Every rollout that reached the environment, newest first: which release, when, by
    whom, from which run and commit, the outcome and (when it was rolled back) why."""
    page = _deployments(svc).releases(caller, project, environment, limit=limit, cursor=cursor)
    return PageOut(
        items=[ReleaseHistoryOut.of(e, project) for e in page.items],
        next_cursor=page.next_cursor,
    )


@router.post(
    "/projects/{project}/environments/{environment}/deployments",
    status_code=status.HTTP_201_CREATED,
    summary="Deploy a release (or roll forward)",
    responses={409: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)
def deploy(
    project: ProjectParam,
    environment: EnvParam,
    body: DeployIn,
    caller: Caller,
    svc: ServicesDep,
    request_id: RequestId,
) -> DeploymentOut:
    """Queue a release for the environment (its reviewers, maintainer and up). The
    artifact is verified again; a release that never ran in the environment needs another
    reviewer when the environment prevents self-review."""
    service = _deployments(svc)
    d = service.deploy(caller, project, environment, body.release, request_id=request_id)
    return DeploymentOut.of(service.get(caller, d.id), project)


@router.post(
    "/projects/{project}/environments/{environment}/rollback",
    status_code=status.HTTP_201_CREATED,
    summary="Roll back",
    responses={409: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)
def rollback(
    project: ProjectParam,
    environment: EnvParam,
    body: RollbackIn,
    caller: Caller,
    svc: ServicesDep,
    request_id: RequestId,
) -> DeploymentOut:
    """Queue the release that ran before the current one (or `release`)."""
    service = _deployments(svc)
    d = service.rollback(caller, project, environment, body.release, request_id=request_id)
    return DeploymentOut.of(service.get(caller, d.id), project)


@router.get("/deployments/{deployment}", summary="Show a deployment")
def show_deployment(deployment: DeploymentId, caller: AnyCaller, svc: ServicesDep) -> DeploymentOut:
    view = _deployments(svc).get(caller, deployment)
    return DeploymentOut.of(view, _project_name(svc, view.deployment.project_id))


@router.get("/deployments/{deployment}/progress", summary="A deployment's progress")
def deployment_progress(
    deployment: DeploymentId,
    caller: AnyCaller,
    svc: ServicesDep,
    after: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> ProgressOut:
    """The state and the progress lines after `after` (poll with the returned `seq`)."""
    view, lines = _deployments(svc).progress(caller, deployment, after=after)
    return ProgressOut(
        deployment=DeploymentOut.of(view, _project_name(svc, view.deployment.project_id)),
        lines=[line for _, line in lines],
        seq=lines[-1][0] if lines else after,
    )


@router.post(
    "/jobs/{job}/deployments",
    status_code=status.HTTP_201_CREATED,
    summary="Deploy an artifact of the job's run (job token)",
)
def job_deploy(
    job: JobId,
    body: JobDeployIn,
    caller: AnyCaller,
    svc: ServicesDep,
    request_id: RequestId,
) -> DeploymentOut:
    """What `shipline/deploy` calls with its job token: verify the artifact and queue it
    for the job's (approved) environment. 403 with the reason when refused."""
    svc.context.access.require_job(caller, job, action="deployment.request", request_id=request_id)
    service = _deployments(svc)
    d = service.from_job(job, body.artifact, request_id=request_id)
    return DeploymentOut.of(service.get(caller, d.id), _project_name(svc, d.project_id))
