"""Projects: create (admins), list those the caller may see, show, delete, set members,
polling of a remote that sends no webhooks.

A project the caller may not see answers 404 like one that does not exist.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from shipline.domain.records import Role
from shipline.engine.source import MAX_POLL, MIN_POLL
from shipline.server.api import API_PREFIX
from shipline.server.deps import Caller, RequestId, ServicesDep
from shipline.server.schemas import (
    ErrorOut,
    MemberCreate,
    MemberOut,
    PageOut,
    ProjectCreate,
    ProjectOut,
)
from shipline.store.ports import PollState

router = APIRouter(
    prefix=API_PREFIX,
    tags=["projects"],
    responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 404: {"model": ErrorOut}},
)

ProjectParam = Annotated[str, Path(max_length=100, description="the project's name")]


@router.post(
    "/projects",
    status_code=status.HTTP_201_CREATED,
    summary="Create a project",
    responses={409: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)
def create_project(
    body: ProjectCreate, caller: Caller, svc: ServicesDep, request_id: RequestId
) -> ProjectOut:
    """A project over a repository (a local path or a git URL the server fetches from).
    The name is lower-case letters, digits, `.`, `_`, `-` (one path segment)."""
    project = svc.projects.create(
        caller, body.name, body.repository, body.default_branch, request_id=request_id
    )
    return ProjectOut.from_record(project)


@router.get("/projects", summary="List the projects the caller may see")
def list_projects(
    caller: Caller,
    svc: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> PageOut[ProjectOut]:
    page = svc.projects.visible(caller, limit=limit, cursor=cursor)
    return PageOut(
        items=[ProjectOut.from_record(p) for p in page.items], next_cursor=page.next_cursor
    )


@router.get("/projects/{project}", summary="Show a project")
def get_project(
    project: ProjectParam, caller: Caller, svc: ServicesDep, request_id: RequestId
) -> ProjectOut:
    record = svc.projects.authorize(
        caller, project, Role.VIEWER, action="project.read", request_id=request_id
    )
    return ProjectOut.from_record(record)


@router.delete(
    "/projects/{project}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a project with its runs and logs",
)
def delete_project(
    project: ProjectParam, caller: Caller, svc: ServicesDep, request_id: RequestId
) -> Response:
    """Needs the admin role in the project; the audit trail keeps its records."""
    svc.projects.delete(caller, project, request_id=request_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put(
    "/projects/{project}/members/{user}",
    summary="Set a member's role",
    responses={422: {"model": ErrorOut}},
)
def set_member(
    project: ProjectParam,
    user: Annotated[str, Path(max_length=64)],
    body: MemberCreate,
    caller: Caller,
    svc: ServicesDep,
    request_id: RequestId,
) -> MemberOut:
    """Maintainers may grant viewer, developer and maintainer; admin needs the admin role."""
    svc.projects.set_member(caller, project, user, body.role, request_id=request_id)
    return MemberOut(project=project, user=user, role=body.role)


class PollingCreate(BaseModel):
    """`PUT /projects/{project}/polling`: seconds between two polls; null stops polling."""

    model_config = ConfigDict(extra="forbid")
    interval: int | None = Field(ge=MIN_POLL, le=MAX_POLL)


class PollingOut(BaseModel):
    project: str
    interval: int | None  # null: the project is not polled
    polled_at: datetime | None
    refs: int  # branches and tags seen at the last poll

    @classmethod
    def from_state(cls, project: str, state: PollState | None) -> PollingOut:
        if state is None:
            return cls(project=project, interval=None, polled_at=None, refs=0)
        return cls(
            project=project,
            interval=state.interval,
            polled_at=state.polled_at,
            refs=len(state.refs or {}),
        )


@router.get("/projects/{project}/polling", summary="How a project's remote is polled")
def get_polling(project: ProjectParam, caller: Caller, svc: ServicesDep) -> PollingOut:
    return PollingOut.from_state(project, svc.source.polling(caller, project))


@router.put(
    "/projects/{project}/polling",
    summary="Poll a project's remote for new commits",
    responses={422: {"model": ErrorOut}},
)
def set_polling(
    project: ProjectParam,
    body: PollingCreate,
    caller: Caller,
    svc: ServicesDep,
    request_id: RequestId,
) -> PollingOut:
    """Maintainers and up, for projects whose forge sends no webhooks (not hosted ones):
    every `interval` seconds one server fetches the remote and raises a push event per
    branch or tag created, updated or deleted since the last poll. Starting to poll
    fetches once and records the refs; `interval: null` stops."""
    state = svc.source.set_polling(caller, project, body.interval, request_id=request_id)
    return PollingOut.from_state(project, state)
