"""A run's artifacts: list them, download one as a zip, or one file of it.

Files come from the server's content-addressed blob store; every file's SHA-256 is listed so
a client can check what it downloaded.
"""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path as FsPath
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import FileResponse
from pydantic import BaseModel
from starlette.background import BackgroundTask

from shipline.domain.records import Role
from shipline.engine.errors import NotFound
from shipline.runner.ports import ArtifactRecord, ArtifactStore
from shipline.server.api import API_PREFIX
from shipline.server.deps import Caller, RequestId, ServicesDep
from shipline.server.schemas import ErrorOut

router = APIRouter(
    prefix=API_PREFIX,
    tags=["artifacts"],
    responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 404: {"model": ErrorOut}},
)

RunId = Annotated[int, Path(ge=1, le=2**63 - 1, description="the run's id")]
Name = Annotated[str, Path(min_length=1, max_length=255, description="the artifact's name")]


class ArtifactFileOut(BaseModel):
    path: str
    sha256: str
    size: int


class ArtifactOut(BaseModel):
    """An artifact of a run: its name, total size and files."""

    name: str
    size: int
    job: str
    files: list[ArtifactFileOut]

    @classmethod
    def from_record(cls, record: ArtifactRecord) -> ArtifactOut:
        return cls(
            name=record.name,
            size=record.size,
            job=record.job_key,
            files=[
                ArtifactFileOut(path=f.path, sha256=f.sha256, size=f.size) for f in record.files
            ],
        )


class ArtifactPage(BaseModel):
    items: list[ArtifactOut]
    next_cursor: str | None = None


# Artifacts are kept per attempt: a re-run's upload does not replace an earlier one's.
AttemptParam = Annotated[
    int | None,
    Query(ge=1, le=10_000, description="the run's attempt (default: its current one)"),
]


def _store(
    svc: ServicesDep, caller: Caller, run_id: int, request_id: str, attempt: int | None
) -> ArtifactStore:
    run = svc.projects.authorize_run(
        caller, run_id, Role.VIEWER, action="artifact.read", request_id=request_id
    )
    artifacts = svc.context.artifacts
    if artifacts is None:
        raise NotFound("this server keeps no artifacts")
    if attempt is not None and attempt > run.attempt:
        raise NotFound(f"run {run_id} has no attempt {attempt}", field="attempt")
    return artifacts(run_id, run.attempt if attempt is None else attempt)


def _artifact(store: ArtifactStore, name: str) -> ArtifactRecord:
    record = store.get(name)
    if record is None:
        raise NotFound(f"no artifact {name!r} in this run", field="name")
    return record


@router.get("/runs/{run_id}/artifacts", summary="List a run's artifacts")
def list_artifacts(
    run_id: RunId,
    caller: Caller,
    svc: ServicesDep,
    request_id: RequestId,
    attempt: AttemptParam = None,
) -> ArtifactPage:
    """Every artifact the jobs of the run's attempt (default: the current one) uploaded,
    with each file's SHA-256 (viewer and up)."""
    store = _store(svc, caller, run_id, request_id, attempt)
    return ArtifactPage(items=[ArtifactOut.from_record(r) for r in store.list()])


@router.get(
    "/runs/{run_id}/artifacts/{name}",
    summary="Download an artifact as a zip",
    response_class=FileResponse,
)
def download_artifact(
    run_id: RunId,
    name: Name,
    caller: Caller,
    svc: ServicesDep,
    request_id: RequestId,
    attempt: AttemptParam = None,
) -> FileResponse:
    """The artifact's files in a zip, at the paths they were uploaded with."""
    store = _store(svc, caller, run_id, request_id, attempt)
    record = _artifact(store, name)
    handle = tempfile.NamedTemporaryFile(suffix=".zip", delete=False)  # noqa: SIM115
    handle.close()
    with zipfile.ZipFile(handle.name, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in record.files:
            archive.write(store.open_file(file), arcname=file.path)
    return FileResponse(
        handle.name,
        media_type="application/zip",
        filename=f"{name}.zip",
        background=BackgroundTask(FsPath(handle.name).unlink, missing_ok=True),
    )


@router.get(
    "/runs/{run_id}/artifacts/{name}/files/{path:path}",
    summary="Download one file of an artifact",
    response_class=FileResponse,
)
def download_artifact_file(
    run_id: RunId,
    name: Name,
    path: str,
    caller: Caller,
    svc: ServicesDep,
    request_id: RequestId,
    attempt: AttemptParam = None,
) -> FileResponse:
    """One file, as uploaded; `X-Content-SHA256` carries its digest."""
    store = _store(svc, caller, run_id, request_id, attempt)
    record = _artifact(store, name)
    file = next((f for f in record.files if f.path == path), None)
    if file is None:
        raise NotFound(f"no file {path!r} in artifact {name!r}", field="path")
    return FileResponse(
        store.open_file(file),
        media_type="application/octet-stream",
        filename=FsPath(file.path).name,
        headers={"X-Content-SHA256": file.sha256},
    )


class CacheOut(BaseModel):
    """A cache entry of a project: ref scope, key, version, size, when saved."""

    scope: str
    key: str
    version: str
    size: int
    created: float
    sha256: str


class CachePage(BaseModel):
    items: list[CacheOut]
    next_cursor: str | None = None


Project = Annotated[str, Path(min_length=1, max_length=100, description="the project's name")]


@router.get("/projects/{project}/caches", summary="List a project's caches")
def list_caches(
    project: Project, caller: Caller, svc: ServicesDep, request_id: RequestId
) -> CachePage:
    """The cache entries jobs of the project saved, newest first (viewer and up)."""
    record = svc.projects.authorize(
        caller, project, Role.VIEWER, action="cache.read", request_id=request_id
    )
    caches = svc.context.caches
    entries = caches(f"{record.name}@") if caches is not None else []
    return CachePage(
        items=[
            CacheOut(
                scope=e.scope,
                key=e.key,
                version=e.version,
                size=e.size,
                created=e.created,
                sha256=e.blob,
            )
            for e in entries
        ]
    )
