"""Approvals: the jobs waiting for an environment's reviewers in the projects the signed-in
user may see — first those waiting for this user, with approve and reject forms, then the
others with why this user may not decide. `GateService.decide` checks on the server who
may decide (reviewers, never the run's own actor when the environment prevents
self-review) and audits every decision and refusal; its message is what the page shows."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from shipline.engine.errors import Conflict
from shipline.engine.gates import GateService
from shipline.server.deps import RequestId, Services, ServicesDep
from shipline.server.web.render import NavItem, pages, path
from shipline.server.web.session import Form, Viewer

router = APIRouter()
NAV = NavItem("Approvals", "approvals")

RunId = Annotated[int, Path(ge=1, le=2**63 - 1)]
Environment = Annotated[str, Path(min_length=1, max_length=100)]
Decision = Annotated[str, Path(pattern="^(approve|reject)$")]


def gates(svc: Services) -> GateService:
    if svc.context.gates is None:
        raise Conflict("this server has no environments")
    return svc.context.gates


@router.get("/approvals", name="approvals")
async def approvals_page(request: Request, who: Viewer, svc: ServicesDep) -> Response:
    waiting = (
        await run_in_threadpool(gates(svc).for_reviewer, who)
        if svc.context.gates is not None
        else []
    )
    context = {
        "title": "Approvals",
        "approvals": waiting,
        "decided": request.query_params.get("decided", "")[:200],
        "enabled": svc.context.gates is not None,
    }
    return pages(request).render(request, "approvals.html", context)


@router.post("/runs/{run_id}/environments/{environment}/{decision}", name="approval_decide")
async def decide(
    request: Request,
    run_id: RunId,
    environment: Environment,
    decision: Decision,
    who: Viewer,
    form: Form,
    svc: ServicesDep,
    rid: RequestId,
) -> Response:
    service = gates(svc)
    await run_in_threadpool(
        service.decide,
        who,
        run_id,
        environment,
        decision,
        form.get("comment", ""),
        request_id=rid,
    )
    verb = "approved" if decision == "approve" else "rejected"
    done = urlencode({"decided": f"run {run_id} {environment} {verb}"})
    target = f"{path(request, 'approvals')}?{done}"
    return RedirectResponse(target, status_code=303)
