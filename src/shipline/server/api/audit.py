"""The audit trail (admins only), read-only: other methods on it answer 405. `verify`
checks the whole hash chain; `export` writes it as JSON lines."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from shipline.domain.records import Role
from shipline.engine.audit import AuditTrail, AuditVerdict
from shipline.security.provenance import load_public_key
from shipline.server.api import API_PREFIX
from shipline.server.context import ServerContext
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


class ChainBreakOut(BaseModel):
    position: int = Field(description="0-based position of the record in the chain")
    id: int
    reason: str


class AuditVerifyOut(BaseModel):
    """`ok` false names the first record that breaks the chain; `head` is the last hash
    (keep it elsewhere: a trail cut short from the end still verifies on its own)."""

    ok: bool
    records: int
    head: str
    broken: ChainBreakOut | None
    checkpoints: int = Field(description="signed checkpoints of the head that verified")
    last_checkpoint_id: int | None


def audit_verdict(context: ServerContext) -> AuditVerdict:
    """The whole chain checked, with the signed checkpoints when the server has a key
    (the API's `verify` and the dashboard's audit page)."""
    pem = context.signing_public_key
    public = load_public_key(pem.encode()) if pem is not None else None
    return AuditTrail(context.store).verify(public)


@router.get("/audit/verify", summary="Check the audit trail's hash chain")
def verify_audit(caller: Caller, svc: ServicesDep, request_id: RequestId) -> AuditVerifyOut:
    """Recompute every link (admins only); reports the first edited, deleted, inserted or
    reordered record."""
    svc.projects.require_admin(caller, "audit.verify", request_id)
    verdict = audit_verdict(svc.context)
    broken = verdict.broken
    return AuditVerifyOut(
        ok=broken is None,
        records=verdict.records,
        head=verdict.head,
        checkpoints=verdict.checkpoints,
        last_checkpoint_id=verdict.last_checkpoint_id,
        broken=None
        if broken is None
        else ChainBreakOut(position=broken.index, id=broken.record_id, reason=broken.reason),
    )


@router.get(
    "/audit/export",
    summary="Export the audit trail as JSON lines",
    response_class=PlainTextResponse,
)
def export_audit(
    caller: Caller,
    svc: ServicesDep,
    request_id: RequestId,
    since: Annotated[datetime | None, Query(description="only records at or after")] = None,
) -> PlainTextResponse:
    """Oldest first, one record per line, as `GET /audit` shows them (admins only); an
    export verifies offline with `shipline audit verify --file`."""
    svc.projects.require_admin(caller, "audit.export", request_id)
    records = AuditTrail(svc.context.store).export(since)
    lines = "".join(AuditOut.from_record(r).model_dump_json() + "\n" for r in records)
    return PlainTextResponse(lines, media_type="application/x-ndjson")
