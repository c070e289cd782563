"""The audit trail (admins only), newest first, filtered by project and action, and the
hash chain's verification on request."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from shipline.domain.records import Role
from shipline.server.api.audit import audit_verdict
from shipline.server.deps import RequestId, ServicesDep
from shipline.server.web.render import NavItem, pages
from shipline.server.web.session import Viewer

router = APIRouter()
NAV = NavItem("Audit log", "audit", admin_only=True)
PAGE_SIZE = 50


@router.get("/audit", name="audit")
def audit_page(
    request: Request,
    who: Viewer,
    svc: ServicesDep,
    rid: RequestId,
    project: Annotated[str, Query(max_length=100)] = "",
    action: Annotated[str, Query(max_length=100)] = "",
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    verify: Annotated[bool, Query()] = False,
) -> Response:
    svc.projects.require_admin(who, "audit.read", rid)
    project_id = None
    if project:
        project_id = svc.projects.authorize(
            who, project, Role.VIEWER, action="audit.read", request_id=rid
        ).id
    page = svc.queries.audit_page(
        project_id=project_id, action=action or None, limit=PAGE_SIZE, cursor=cursor or None
    )
    context: dict[str, object] = {
        "title": "Audit log",
        "records": page.items,
        "next_cursor": page.next_cursor,
        "filters": {"project": project, "action": action},
        "verified": verify,
        "broken": audit_verdict(svc.context).broken if verify else None,
    }
    return pages(request).render(request, "audit.html", context)
