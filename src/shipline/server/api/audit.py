"""The audit trail (admins only), read-only: other methods on it answer 405."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from shipline.domain.records import Role
from shipline.server.api import API_PREFIX
from shipline.server.deps import Caller, RequestId, ServicesDep
from shipline.server.schemas import AuditOut, ErrorOut, PageOut

router = APIRouter(
    prefix=API_PREFIX,
    tags=["audit"],
    responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 404: {"model": ErrorOut}},
)


@router.get("/audit", summary="Read the audit trail")
def list_audit(
    caller: Caller,
    svc: ServicesDep,
    request_id: RequestId,
    project: Annotated[str | None, Query(max_length=100, description="a project's name")] = None,
    action: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> PageOut[AuditOut]:
    """Newest first; filter by a (current) project's name and by action (`run.trigger`)."""
    svc.projects.require_admin(caller, "audit.read", request_id)
    project_id = None
    if project is not None:
        record = svc.projects.authorize(
            caller, project, Role.VIEWER, action="audit.read", request_id=request_id
        )
        project_id = record.id
    page = svc.queries.audit_page(project_id=project_id, action=action, limit=limit, cursor=cursor)
    return PageOut(
        items=[AuditOut.from_record(a) for a in page.items], next_cursor=page.next_cursor
    )
