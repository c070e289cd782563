"""Runners (admins only): online or offline, last seen, labels, version, the jobs each holds
now; pause, resume and remove. `RunnerService` checks the admin role again and audits."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from shipline.engine.errors import Conflict
from shipline.engine.runners import RunnerService
from shipline.server.deps import Services, ServicesDep
from shipline.server.web.render import NavItem, pages, path
from shipline.server.web.session import Form, Viewer

router = APIRouter()
NAV = NavItem("Runners", "runners", admin_only=True)

RunnerId = Annotated[int, Path(ge=1, le=2**63 - 1)]
Action = Annotated[str, Path(pattern="^(pause|resume|remove)$")]


def runners(svc: Services) -> RunnerService:
    if svc.context.runners is None:
        raise Conflict("this server takes no remote runners")
    return svc.context.runners


@router.get("/runners", name="runners")
def runners_page(request: Request, who: Viewer, svc: ServicesDep) -> Response:
    service = runners(svc)
    context = {
        "title": "Runners",
        "runners": service.list_runners(who),
        "embedded_slots": svc.context.runner_slots,
    }
    return pages(request).render(request, "runners.html", context)


@router.post("/runners/{runner_id}/{action}", name="runner_action")
async def runner_action(
    request: Request, runner_id: RunnerId, action: Action, who: Viewer, form: Form, svc: ServicesDep
) -> Response:
    service = runners(svc)
    if action == "remove":
        await run_in_threadpool(service.remove, who, runner_id)
    else:
        await run_in_threadpool(service.set_paused, who, runner_id, action == "pause")
    return RedirectResponse(path(request, "runners"), status_code=303)
