"""Branch and tag protection rules of a project: list (viewers), set and delete
(maintainers and up). Enforced on every push to the hosted repository."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from shipline.server.api import API_PREFIX
from shipline.server.api.projects import ProjectParam
from shipline.server.deps import Caller, RequestId, ServicesDep
from shipline.server.schemas import ErrorOut, PageOut
from shipline.server.source_schemas import ProtectionCreate, ProtectionOut

router = APIRouter(
    prefix=API_PREFIX,
    tags=["protections"],
    responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 404: {"model": ErrorOut}},
)


@router.get("/projects/{project}/protections", summary="List a project's protection rules")
def list_protections(
    project: ProjectParam, caller: Caller, svc: ServicesDep
) -> PageOut[ProtectionOut]:
    """Oldest first (all of them: a project has few)."""
    rules = svc.source.protections(caller, project)
    return PageOut(items=[ProtectionOut.from_record(r) for r in rules])


@router.put(
    "/projects/{project}/protections",
    summary="Protect branches or tags",
    responses={422: {"model": ErrorOut}},
)
def set_protection(
    project: ProjectParam,
    body: ProtectionCreate,
    caller: Caller,
    svc: ServicesDep,
    request_id: RequestId,
) -> ProtectionOut:
    """Create the rule for (`kind`, `pattern`), or change it. Only `push_role` and up
    (and admins) may push to matching refs; force-pushes and deletions are refused unless
    allowed here."""
    rule = svc.source.protect(
        caller,
        project,
        body.kind,
        body.pattern,
        push_role=body.push_role,
        allow_force_push=body.allow_force_push,
        allow_deletion=body.allow_deletion,
        request_id=request_id,
    )
    return ProtectionOut.from_record(rule)


@router.delete(
    "/projects/{project}/protections/{rule}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a protection rule",
)
def delete_protection(
    project: ProjectParam,
    rule: Annotated[int, Path(ge=1, le=2**31 - 1)],
    caller: Caller,
    svc: ServicesDep,
    request_id: RequestId,
) -> Response:
    svc.source.unprotect(caller, project, rule, request_id=request_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
