"""A project's webhook deliveries (maintainers and up), newest first: the forge's delivery
id, the event, what came of it and when; admins of the project may redeliver one (its runs
start anew). `WebhookService` checks the roles and audits a redelivery."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from shipline.domain.records import Role
from shipline.server.deps import RequestId, ServicesDep
from shipline.server.web.render import pages, path
from shipline.server.web.session import Form, Viewer

router = APIRouter()

ProjectName = Annotated[str, Path(max_length=100)]
PAGE_SIZE = 50

OUTCOMES = {
    "processed": ("success", "✓"),
    "ignored": ("skipped", "↷"),
    "waiting": ("waiting", "⏸"),
    "failed": ("failure", "✗"),
    "received": ("queued", "○"),
}


@router.get("/projects/{name}/deliveries", name="deliveries")
def deliveries_page(
    request: Request,
    name: ProjectName,
    who: Viewer,
    svc: ServicesDep,
    rid: RequestId,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    page = svc.webhooks.deliveries(who, name, limit=PAGE_SIZE, cursor=cursor or None)
    project = svc.projects.authorize(
        who, name, Role.MAINTAINER, action="webhook.list", request_id=rid
    )
    context = {
        "title": f"Webhook deliveries · {project.name}",
        "project": project,
        "section": "deliveries",
        "deliveries": page.items,
        "next_cursor": page.next_cursor,
        "outcomes": OUTCOMES,
        "can_redeliver": svc.context.access.allows(who, project.id, Role.ADMIN),
    }
    return pages(request).render(request, "deliveries.html", context)


@router.post("/projects/{name}/deliveries/{delivery}/redeliver", name="delivery_redeliver")
async def redeliver(
    request: Request,
    name: ProjectName,
    delivery: Annotated[int, Path(ge=1, le=2**63 - 1)],
    who: Viewer,
    form: Form,
    svc: ServicesDep,
    rid: RequestId,
) -> Response:
    await run_in_threadpool(svc.webhooks.redeliver, who, name, delivery, request_id=rid)
    return RedirectResponse(path(request, "deliveries", name=name), status_code=303)
