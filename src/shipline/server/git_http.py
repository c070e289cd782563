"""Hosted repositories over git's smart HTTP protocol: `/git/<project>.git/...`.

Each request is handed to `git http-backend` (git's own CGI program, no pack protocol of
ours): its standard input is the request body as it arrives, its output is streamed back.
Authentication is HTTP basic with a user name and one of the user's API tokens, or the
user name `x-access-token` and a job's token (GitHub's convention), whose `permissions:`
decide (`contents: read` to fetch, `contents: write` to push; SECURITY-CASES 22); a request
without valid credentials gets 401 with `WWW-Authenticate` before any project is looked
up, so nothing tells an anonymous caller which projects exist. Viewers fetch, developers
and up push. A push runs with the project's protection rules resolved for the pusher (the
pre-receive hook enforces them, `scm.receive_hook`), and once it is over the ref updates
it made go to `SourceService.pushed`, which starts no workflow for a push made with a job
token (GitHub's rule for `GITHUB_TOKEN`: a workflow cannot trigger itself in a loop).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import os
import re
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import APIRouter, Request, Response
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from shipline.domain.records import ProjectRecord, TokenKind
from shipline.engine.access import Principal
from shipline.engine.errors import Unauthenticated
from shipline.plan.protection import RefUpdate
from shipline.scm.receive_hook import parse_updates
from shipline.server.deps import Services
from shipline.server.errors import error_response, request_id

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

SERVICES = ("git-upload-pack", "git-receive-pack")
REALM = 'Basic realm="Shipline", charset="UTF-8"'
_PROTOCOL = re.compile(r"^[A-Za-z0-9=:., _-]{0,200}$")
CHUNK = 64 * 1024
GIT_TOKENS = frozenset({TokenKind.USER, TokenKind.JOB})
JOB_USER = "x-access-token"


def _unauthorized(message: str = "authentication required") -> Response:
    return error_response(401, "unauthenticated", message, headers={"WWW-Authenticate": REALM})


def _basic(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, token = decoded.partition(":")
    return (user, token) if sep else None


def _authenticate(svc: Services, request: Request) -> Principal | None:
    """The caller of a git request, or None (and an audit record) when not authenticated."""
    credentials = _basic(request)
    reason = "missing"
    if credentials is not None:
        user, token = credentials
        try:
            principal = svc.context.access.authenticate(token, allowed=GIT_TOKENS)
        except Unauthenticated as exc:
            reason = exc.reason
        else:
            if principal.kind is TokenKind.JOB and user == JOB_USER:
                return principal
            if principal.kind is TokenKind.USER and principal.user_name == user:
                return principal
            reason = "user name does not match the token"
    context = svc.context
    with context.store.transaction() as tx:
        tx.audit.append(
            actor="anonymous",
            action="authenticate",
            now=context.clock.now(),
            decision="denied",
            target=f"{request.method} {request.url.path}"[:200],
            reason=reason,
            request_id=request_id(request),
        )
    return None


@router.api_route("/git/{project}.git/{path:path}", methods=["GET", "POST"])
async def git_http(project: str, path: str, request: Request) -> Response:
    svc: Services = request.app.state.services
    hosted = svc.context.hosted
    principal = await run_in_threadpool(_authenticate, svc, request)
    if principal is None:
        return _unauthorized()
    if request.method == "GET" and path == "info/refs":
        service = request.query_params.get("service", "")
    elif request.method == "POST" and path in SERVICES:
        service = path
    else:
        service = ""
    if service not in SERVICES or hosted is None:
        return error_response(404, "not_found", "only git's smart HTTP protocol is served here")
    push = service == "git-receive-pack"
    rid = request_id(request)
    record: ProjectRecord = await run_in_threadpool(
        svc.source.authorize_git, principal, project, push=push, request_id=rid
    )
    await run_in_threadpool(hosted.ensure, record.id, record.default_branch)
    rules = report = None
    if push:
        grants = await run_in_threadpool(svc.source.grants, record, principal)
        rules = json.dumps([g.to_json() for g in grants])
        if request.method == "POST":
            hosted.work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, name = tempfile.mkstemp(prefix="push-", dir=hosted.work_dir)
            os.close(fd)
            report = Path(name)
    env = hosted.backend_env(record.id, rules=rules, report=report)
    env.update(
        REQUEST_METHOD=request.method,
        PATH_INFO=f"/{record.id}.git/{path}",
        QUERY_STRING=request.url.query,
        CONTENT_TYPE=request.headers.get("content-type", ""),
        REMOTE_USER=principal.user_name,
        REMOTE_ADDR=request.client.host if request.client else "",
    )
    for header, variable in (
        ("content-encoding", "HTTP_CONTENT_ENCODING"),
        ("git-protocol", "HTTP_GIT_PROTOCOL"),
    ):
        value = request.headers.get(header)
        if value is not None and _PROTOCOL.match(value):
            env[variable] = value
    if request.headers.get("content-length", "").isdigit():
        env["CONTENT_LENGTH"] = request.headers["content-length"]
    return await _serve(svc, request, env, record, principal, report)


async def _serve(
    svc: Services,
    request: Request,
    env: dict[str, str],
    record: ProjectRecord,
    principal: Principal,
    report: Path | None,
) -> Response:
    proc = await asyncio.create_subprocess_exec(
        "git",
        "http-backend",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    feeder = asyncio.create_task(_feed(request, proc.stdin))
    errors = asyncio.create_task(proc.stderr.read())
    status, headers = 200, {}
    while True:
        line = (await proc.stdout.readline()).rstrip(b"\r\n")
        if not line:
            break
        name, _, value = line.decode("latin-1").partition(":")
        if name.lower() == "status":
            status = int(value.strip().split(" ", 1)[0])
        else:
            headers[name.strip()] = value.strip()

    async def body() -> AsyncIterator[bytes]:
        assert proc.stdout is not None
        try:
            while chunk := await proc.stdout.read(CHUNK):
                yield chunk
            await feeder
            await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            feeder.cancel()
            message = (await errors).decode(errors="replace").strip()
            if message:
                log.info("git http-backend (project %s): %s", record.name, message[-2000:])

    task = None
    if report is not None:
        by_job = principal.kind is TokenKind.JOB
        task = BackgroundTask(_after_push, svc, record, principal.user_name, report, by_job)
    return _Streamed(body(), status, headers, task)


class _Streamed(Response):
    """A streamed body that never calls `receive`: the request body belongs to the
    backend's standard input (Starlette's StreamingResponse listens for a disconnect
    with `receive`, and would take the body's messages from it)."""

    def __init__(
        self,
        body: AsyncIterator[bytes],
        status: int,
        headers: dict[str, str],
        background: BackgroundTask | None,
    ) -> None:
        # Not Response.__init__: it would add `content-length: 0` for the empty `content`.
        self.status_code = status
        self.background = background
        self.raw_headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in headers.items()
        ]
        self._chunks = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        async for chunk in self._chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        if self.background is not None:
            await self.background()


async def _feed(request: Request, stdin: asyncio.StreamWriter) -> None:
    try:
        async for chunk in request.stream():
            if chunk:
                stdin.write(chunk)
                await stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the backend stopped reading: it answers with an error itself
    finally:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            stdin.close()


def _after_push(
    svc: Services, record: ProjectRecord, actor: str, report: Path, by_job: bool
) -> None:
    """Raise the events of the ref updates the push made (read from the hook's report); a
    push made with a job token starts no workflow (GitHub's rule for `GITHUB_TOKEN`)."""
    try:
        updates: list[RefUpdate] = parse_updates(report.read_text(encoding="utf-8"))
    finally:
        report.unlink(missing_ok=True)
    if updates:
        try:
            svc.source.pushed(record, actor, updates, start_workflows=not by_job)
        except Exception:
            log.exception("push to %s: starting its workflows failed", record.name)
