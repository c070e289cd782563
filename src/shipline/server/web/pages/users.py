"""Users (admins only): list them and create one, with a password for the dashboard or
without (API tokens only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from shipline.server.deps import RequestId, ServicesDep
from shipline.server.web.render import NavItem, pages, path
from shipline.server.web.session import Form, Viewer

router = APIRouter()
NAV = NavItem("Users", "users", admin_only=True)
PAGE_SIZE = 50


@router.get("/users", name="users")
def users_page(
    request: Request,
    who: Viewer,
    svc: ServicesDep,
    rid: RequestId,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    svc.projects.require_admin(who, "user.list", rid)
    page = svc.queries.users_page(limit=PAGE_SIZE, cursor=cursor or None)
    context = {"title": "Users", "users": page.items, "next_cursor": page.next_cursor}
    return pages(request).render(request, "users.html", context)


@router.post("/users", name="user_create")
async def create_user(request: Request, who: Viewer, form: Form, svc: ServicesDep) -> Response:
    password = form.get("password", "") or None
    await run_in_threadpool(
        svc.context.access.create_user,
        who,
        form.get("name", "").strip(),
        password,
        form.get("is_admin") == "1",
    )
    return RedirectResponse(path(request, "users"), status_code=303)
