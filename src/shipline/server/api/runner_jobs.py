"""A remote runner's messages about one job, authenticated with that job's token only.

Each endpoint acts on the job in its path, and only when the token is that job's
(403 otherwise, audited) and its try still holds the job (409 once its lease was lost;
401 once the job has ended). Logs are numbered chunks stored once each, so a batch resent
after a lost reply changes nothing.
"""

from __future__ import annotations

import tempfile
from pathlib import Path as FsPath
from typing import Annotated

from fastapi import APIRouter, Header, Path, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from pydantic import BaseModel
from starlette.background import BackgroundTask

from shipline.domain.artifacts import ArtifactRecord, CacheEntry
from shipline.engine.errors import NotFound
from shipline.engine.remote_files import JobFiles
from shipline.runner.remote.protocol import (
    RUNNER_HEADER,
    ArtifactFileOut,
    ArtifactIn,
    ArtifactOut,
    CacheEntryOut,
    CacheLookupIn,
    CacheSaveIn,
    FinishIn,
    JobOut,
    LogBatchIn,
    ReportIn,
    StepIn,
)
from shipline.server.api import API_PREFIX
from shipline.server.api.runners import job_response, next_job, remote_jobs
from shipline.server.deps import JobCaller, Services, ServicesDep
from shipline.server.schemas import ErrorOut

router = APIRouter(
    prefix=f"{API_PREFIX}/runner/jobs",
    tags=["runner jobs"],
    responses={
        401: {"model": ErrorOut},
        403: {"model": ErrorOut},
        409: {"model": ErrorOut, "description": "the lease on the job was lost"},
    },
)

JobId = Annotated[int, Path(ge=1, le=2**63 - 1, description="the job's id")]
Sha = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="a SHA-256 digest")]
_CHUNK = 1024 * 1024


class StoredOut(BaseModel):
    stored: int


def _files(svc: Services) -> JobFiles:
    if svc.context.job_files is None:
        raise NotFound("this server keeps no files for remote jobs")
    return svc.context.job_files


def _artifact_out(record: ArtifactRecord) -> ArtifactOut:
    return ArtifactOut(
        name=record.name,
        job_key=record.job_key,
        files=[
            ArtifactFileOut(path=f.path, sha256=f.sha256, size=f.size, mode=f.mode)
            for f in record.files
        ],
    )


def _cache_out(entry: CacheEntry | None) -> CacheEntryOut | None:
    if entry is None:
        return None
    return CacheEntryOut(key=entry.key, version=entry.version, sha256=entry.blob, size=entry.size)


@router.post("/{job_id}/report", summary="Report log chunks and steps")
def report(job_id: JobId, body: ReportIn, caller: JobCaller, svc: ServicesDep) -> StoredOut:
    """What the job did since its last message, stored in one transaction: numbered log
    chunks (one stored already, a resend, is skipped) and steps started or ended."""
    return StoredOut(stored=remote_jobs(svc).report(caller, job_id, body.chunks, body.steps))


@router.post("/{job_id}/logs", summary="Append log chunks")
def append_logs(job_id: JobId, body: LogBatchIn, caller: JobCaller, svc: ServicesDep) -> StoredOut:
    """Numbered chunks; one stored already (a resend) is skipped."""
    return StoredOut(stored=remote_jobs(svc).append_logs(caller, job_id, body.chunks))


@router.post("/{job_id}/steps", status_code=status.HTTP_204_NO_CONTENT, summary="Report a step")
def report_step(job_id: JobId, body: StepIn, caller: JobCaller, svc: ServicesDep) -> Response:
    remote_jobs(svc).step(caller, job_id, body)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{job_id}/finish",
    summary="End the job (and claim the runner's next one)",
    responses={
        200: {"model": JobOut, "description": "the runner's next job (`next` was given)"},
        204: {"description": "ended (no next job asked for, or none)"},
    },
    response_model=None,
)
def finish(
    job_id: JobId,
    body: FinishIn,
    caller: JobCaller,
    svc: ServicesDep,
    request: Request,
    runner_token: Annotated[
        str | None,
        Header(
            alias=RUNNER_HEADER,
            description="the runner's credential, when `next` asks for its next job",
        ),
    ] = None,
) -> Response:
    """The job's conclusion, outputs and error, with the log chunks and steps the runner
    had not reported yet (stored with the end, in one transaction); the job token dies
    with it. With `next` and the runner's credential, the runner's next job is claimed
    at once and is the answer (saving the runner its next request)."""
    remote_jobs(svc).finish(caller, job_id, body)
    if body.next is not None:
        job = next_job(svc, runner_token, body.next, request)
        if job is not None:
            return job_response(job)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{job_id}/source",
    summary="The repository at the run's commit (git bundle)",
    response_class=FileResponse,
)
def source(job_id: JobId, caller: JobCaller, svc: ServicesDep) -> FileResponse:
    holder = remote_jobs(svc).holder(caller, job_id, action="source.read")
    handle = tempfile.NamedTemporaryFile(suffix=".bundle", delete=False)  # noqa: SIM115
    handle.close()
    dest = FsPath(handle.name)
    try:
        _files(svc).source(holder, dest)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return FileResponse(
        dest,
        media_type="application/x-git-bundle",
        background=BackgroundTask(dest.unlink, missing_ok=True),
    )


@router.put("/{job_id}/blobs/{sha256}", summary="Upload a blob (artifact file, cache archive)")
async def put_blob(
    job_id: JobId, sha256: Sha, caller: JobCaller, svc: ServicesDep, request: Request
) -> CacheEntryOut:
    """The body is stored by its SHA-256, which must be `sha256` (422 otherwise)."""
    await run_in_threadpool(remote_jobs(svc).holder, caller, job_id, action="blob.write")
    files = _files(svc)
    handle = tempfile.NamedTemporaryFile(prefix="upload-", delete=False)  # noqa: SIM115
    try:
        async for chunk in request.stream():
            await run_in_threadpool(handle.write, chunk)
        handle.close()
        sha, size = await run_in_threadpool(files.put_blob, FsPath(handle.name), sha256)
    finally:
        handle.close()
        FsPath(handle.name).unlink(missing_ok=True)
    return CacheEntryOut(key="", version="", sha256=sha, size=size)


@router.get("/{job_id}/blobs/{sha256}", summary="Download a blob", response_class=FileResponse)
def get_blob(job_id: JobId, sha256: Sha, caller: JobCaller, svc: ServicesDep) -> FileResponse:
    """A file of the run's artifacts or a cache archive of the job's scope."""
    holder = remote_jobs(svc).holder(caller, job_id, action="blob.read")
    path = _files(svc).blob(holder, sha256)
    return FileResponse(
        path, media_type="application/octet-stream", headers={"X-Content-SHA256": sha256}
    )


@router.post("/{job_id}/artifacts", summary="Name uploaded blobs as an artifact of the run")
def put_artifact(
    job_id: JobId, body: ArtifactIn, caller: JobCaller, svc: ServicesDep
) -> ArtifactOut:
    holder = remote_jobs(svc).holder(caller, job_id, action="artifact.write")
    files = [(f.path, f.sha256, f.mode) for f in body.files]
    record = _files(svc).put_artifact(holder, body.name, files, overwrite=body.overwrite)
    return _artifact_out(record)


@router.get("/{job_id}/artifacts", summary="The run's artifacts")
def list_artifacts(job_id: JobId, caller: JobCaller, svc: ServicesDep) -> list[ArtifactOut]:
    holder = remote_jobs(svc).holder(caller, job_id, action="artifact.read")
    return [_artifact_out(r) for r in _files(svc).list_artifacts(holder)]


@router.get("/{job_id}/artifacts/{name}", summary="One artifact of the run")
def get_artifact(job_id: JobId, name: str, caller: JobCaller, svc: ServicesDep) -> ArtifactOut:
    holder = remote_jobs(svc).holder(caller, job_id, action="artifact.read")
    record = _files(svc).artifact(holder, name)
    if record is None:
        raise NotFound(f"no artifact {name!r} in this run", field="name")
    return _artifact_out(record)


@router.post("/{job_id}/caches/lookup", summary="Find a cache entry of the job's scope")
def cache_lookup(
    job_id: JobId, body: CacheLookupIn, caller: JobCaller, svc: ServicesDep
) -> CacheEntryOut | None:
    holder = remote_jobs(svc).holder(caller, job_id, action="cache.read")
    return _cache_out(_files(svc).cache_lookup(holder, body.keys, body.version))


@router.post("/{job_id}/caches", summary="Save an uploaded archive as a cache entry")
def cache_save(
    job_id: JobId, body: CacheSaveIn, caller: JobCaller, svc: ServicesDep
) -> CacheEntryOut | None:
    """null when the key exists already (entries never change)."""
    holder = remote_jobs(svc).holder(caller, job_id, action="cache.write")
    return _cache_out(_files(svc).cache_save(holder, body.key, body.version, body.sha256))
