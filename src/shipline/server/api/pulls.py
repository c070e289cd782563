"""Pull requests of hosted repositories: open, list, show, close. Their life raises
`pull_request` events (opened, synchronize, closed, reopened) that start workflows."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from shipline.server.api import API_PREFIX
from shipline.server.api.projects import ProjectParam
from shipline.server.deps import Caller, RequestId, ServicesDep
from shipline.server.schemas import ErrorOut, PageOut
from shipline.server.source_schemas import PullCreate, PullOut

router = APIRouter(
    prefix=API_PREFIX,
    tags=["pull requests"],
    responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 404: {"model": ErrorOut}},
)
Number = Annotated[int, Path(ge=1, le=10**9)]


@router.post(
    "/projects/{project}/pulls",
    status_code=status.HTTP_201_CREATED,
    summary="Open a pull request",
    responses={409: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)
def open_pull(
    project: ProjectParam, body: PullCreate, caller: Caller, svc: ServicesDep, request_id: RequestId
) -> PullOut:
    """Merge `head` into `base` (default: the project's default branch); developers and
    up. `runs` are the runs its `opened` event started."""
    pull, runs = svc.pulls.open(
        caller, project, body.head, body.base, body.title, body.body, request_id=request_id
    )
    return PullOut.from_record(pull, [r.id for r in runs])


@router.get("/projects/{project}/pulls", summary="List a project's pull requests")
def list_pulls(
    project: ProjectParam,
    caller: Caller,
    svc: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> PageOut[PullOut]:
    page = svc.pulls.page(caller, project, limit=limit, cursor=cursor)
    return PageOut(items=[PullOut.from_record(p) for p in page.items], next_cursor=page.next_cursor)


@router.get("/projects/{project}/pulls/{number}", summary="Show a pull request")
def get_pull(project: ProjectParam, number: Number, caller: Caller, svc: ServicesDep) -> PullOut:
    return PullOut.from_record(svc.pulls.get(caller, project, number))


@router.post("/projects/{project}/pulls/{number}/close", summary="Close a pull request")
def close_pull(
    project: ProjectParam, number: Number, caller: Caller, svc: ServicesDep, request_id: RequestId
) -> PullOut:
    pull, runs = svc.pulls.close(caller, project, number, request_id=request_id)
    return PullOut.from_record(pull, [r.id for r in runs])


@router.post("/projects/{project}/pulls/{number}/reopen", summary="Reopen a pull request")
def reopen_pull(
    project: ProjectParam, number: Number, caller: Caller, svc: ServicesDep, request_id: RequestId
) -> PullOut:
    """Developers and up: the pull request opens again at its head branch's current
    commit and its `reopened` runs start. 409 when the head branch is gone or another
    pull request from the same head into the same base is open."""
    pull, runs = svc.pulls.reopen(caller, project, number, request_id=request_id)
    return PullOut.from_record(pull, [r.id for r in runs])
