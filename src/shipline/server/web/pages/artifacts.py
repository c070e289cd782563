"""A run's artifacts: each with its files' sizes and SHA-256, downloadable as a zip or file
by file. Reading and downloading go through the API's own artifact functions, so the
dashboard checks access and serves files exactly as `/api/v1/runs/{id}/artifacts` does.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import FileResponse, Response

from shipline.server.api import artifacts as api
from shipline.server.deps import RequestId, ServicesDep
from shipline.server.web.render import pages
from shipline.server.web.session import Viewer

router = APIRouter()

RunId = Annotated[int, Path(ge=1, le=2**63 - 1)]
Name = Annotated[str, Path(min_length=1, max_length=255)]


@router.get("/runs/{run_id}/artifacts", name="artifacts")
def artifacts_page(
    request: Request, run_id: RunId, who: Viewer, svc: ServicesDep, rid: RequestId
) -> Response:
    listed = api.list_artifacts(run_id, who, svc, rid)
    view = svc.queries.run_view(run_id)
    context = {
        "title": f"Artifacts of {view.run.workflow_name} #{view.run.number}",
        "run": view.run,
        "project": view.project,
        "artifacts": listed.items,
    }
    return pages(request).render(request, "artifacts.html", context)


@router.get("/runs/{run_id}/artifacts/{name}/zip", name="artifact_zip")
def artifact_zip(
    run_id: RunId, name: Name, who: Viewer, svc: ServicesDep, rid: RequestId
) -> FileResponse:
    return api.download_artifact(run_id, name, who, svc, rid)


@router.get("/runs/{run_id}/artifacts/{name}/files/{file:path}", name="artifact_file")
def artifact_file(
    run_id: RunId, name: Name, file: str, who: Viewer, svc: ServicesDep, rid: RequestId
) -> FileResponse:
    response = api.download_artifact_file(run_id, name, file, who, svc, rid)
    # A file is always a download here, never rendered in the dashboard's origin.
    response.headers["Content-Disposition"] = response.headers.get(
        "content-disposition", "attachment"
    ).replace("inline", "attachment")
    return response
