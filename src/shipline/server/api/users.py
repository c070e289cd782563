"""Users (admins only): create and list."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from shipline.server.api import API_PREFIX
from shipline.server.deps import Caller, RequestId, ServicesDep
from shipline.server.schemas import ErrorOut, PageOut, UserCreate, UserOut

router = APIRouter(
    prefix=API_PREFIX,
    tags=["users"],
    responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}},
)


@router.post(
    "/users",
    status_code=status.HTTP_201_CREATED,
    summary="Create a user",
    responses={409: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)
def create_user(body: UserCreate, caller: Caller, svc: ServicesDep) -> UserOut:
    """A new user; without a password the user works with API tokens only."""
    user = svc.context.access.create_user(caller, body.name, body.password, body.is_admin)
    return UserOut.from_record(user)


@router.get("/users", summary="List users")
def list_users(
    caller: Caller,
    svc: ServicesDep,
    request_id: RequestId,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> PageOut[UserOut]:
    svc.projects.require_admin(caller, "user.list", request_id)
    page = svc.queries.users_page(limit=limit, cursor=cursor)
    return PageOut(items=[UserOut.from_record(u) for u in page.items], next_cursor=page.next_cursor)
