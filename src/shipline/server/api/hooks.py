"""Webhooks: `POST /hooks/{github|gitlab|gitea}?project=NAME` from forges, and the API
around them — a project's webhook secret, its deliveries, re-delivery, and the approval of
runs that wait for a maintainer.

A delivery's body is read up to `ServerContext.webhook_max_bytes` (413 beyond, before
anything else looks at it), then verified by `WebhookService.receive` before it is parsed:
401 when it cannot be verified, 200 with the stored outcome otherwise (also for a replay,
which starts nothing new).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from shipline.domain.source import Forge
from shipline.server.api import API_PREFIX
from shipline.server.api.projects import ProjectParam
from shipline.server.deps import Caller, RequestId, Services, ServicesDep
from shipline.server.errors import error_response, request_id
from shipline.server.schemas import ErrorOut, PageOut, RunOut
from shipline.server.source_schemas import DeliveryOut, HookOut, WebhookSecretOut


class ApproveCreate(BaseModel):
    """`POST /runs/{id}/approve`: optionally the commit the approver reviewed."""

    model_config = ConfigDict(extra="forbid")
    sha: str | None = Field(default=None, pattern=r"^[0-9a-f]{40}([0-9a-f]{24})?$")


router = APIRouter(tags=["webhooks"])
api = APIRouter(
    prefix=API_PREFIX,
    tags=["webhooks"],
    responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 404: {"model": ErrorOut}},
)


@router.post(
    "/hooks/{forge}",
    summary="Receive a webhook delivery",
    responses={401: {"model": ErrorOut}, 413: {"model": ErrorOut}},
)
async def receive(
    forge: Forge,
    request: Request,
    project: Annotated[str, Query(max_length=100, description="the project's name")],
) -> JSONResponse:
    """A delivery from GitHub (`X-Hub-Signature-256`), GitLab (`X-Gitlab-Token`) or Gitea
    (`X-Gitea-Signature`) for `project`; the forge is configured with the URL
    `/hooks/<forge>?project=<name>` and the project's webhook secret."""
    svc: Services = request.app.state.services
    limit = svc.context.webhook_max_bytes
    rid = request_id(request)
    length = request.headers.get("content-length", "")
    too_large = length.isdigit() and int(length) > limit
    body = bytearray()
    if not too_large:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                too_large = True
                break
    if too_large:
        reason = f"body over {limit} bytes"
        await run_in_threadpool(svc.webhooks.refuse, forge, project, reason, request_id=rid)
        return error_response(413, "too_large", f"a delivery is at most {limit} bytes")
    headers = {name.lower(): value for name, value in request.headers.items()}
    received = await run_in_threadpool(
        svc.webhooks.receive, forge, project, headers, bytes(body), request_id=rid
    )
    delivery = received.delivery
    out = HookOut(
        delivery=delivery.id,
        outcome=delivery.outcome,
        detail=delivery.detail,
        runs=list(delivery.runs),
        duplicate=received.duplicate,
    )
    return JSONResponse(out.model_dump(), status_code=status.HTTP_200_OK)


@api.post("/projects/{project}/webhook/secret", summary="Make a new webhook secret")
def rotate_secret(
    project: ProjectParam, caller: Caller, svc: ServicesDep, request_id: RequestId, request: Request
) -> WebhookSecretOut:
    """Maintainers and up. The secret is shown once: the server keeps only a salt it
    derives the secret from with its own key. The previous secret stops working."""
    secret = svc.webhooks.rotate_secret(caller, project, request_id=request_id)
    base = str(request.base_url).rstrip("/")
    urls = {forge.value: f"{base}/hooks/{forge.value}?project={project}" for forge in Forge}
    return WebhookSecretOut(project=project, secret=secret, urls=urls)


@api.get("/projects/{project}/deliveries", summary="List a project's webhook deliveries")
def list_deliveries(
    project: ProjectParam,
    caller: Caller,
    svc: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> PageOut[DeliveryOut]:
    page = svc.webhooks.deliveries(caller, project, limit=limit, cursor=cursor)
    return PageOut(
        items=[DeliveryOut.from_record(d) for d in page.items], next_cursor=page.next_cursor
    )


@api.post(
    "/projects/{project}/deliveries/{delivery}/redeliver",
    summary="Process a stored delivery again",
)
def redeliver(
    project: ProjectParam,
    delivery: Annotated[int, Path(ge=1, le=2**62)],
    caller: Caller,
    svc: ServicesDep,
    request_id: RequestId,
) -> DeliveryOut:
    """Admins of the project: the delivery's runs start again, as if it had just come."""
    record = svc.webhooks.redeliver(caller, project, delivery, request_id=request_id)
    return DeliveryOut.from_record(record)


@api.post(
    "/runs/{run_id}/approve",
    summary="Approve a run that waits for a maintainer",
    responses={409: {"model": ErrorOut}},
)
def approve(
    run_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    caller: Caller,
    svc: ServicesDep,
    request_id: RequestId,
    body: ApproveCreate | None = None,
) -> RunOut:
    """Runs of a first-time outside contributor's pull request wait for this. Needs the
    maintainer role; the change's author cannot approve (403, audited). It holds for this
    run's commit only: a new push makes new runs that wait again. With `sha`, 409 unless
    the run is for that commit (the one the maintainer reviewed)."""
    sha = body.sha if body is not None else None
    run, project = svc.webhooks.approve(caller, run_id, sha=sha, request_id=request_id)
    return RunOut.from_record(run, project)
