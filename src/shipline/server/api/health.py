"""Probes and metrics, without authentication: `/healthz` (the process answers),
`/readyz` (it can reach its database and is not shutting down), `/metrics` (Prometheus)."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shipline.server.deps import ServicesDep

log = logging.getLogger("shipline.server")
router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The server can take requests",
    responses={503: {"description": "the database does not answer, or shutting down"}},
)
def readyz(svc: ServicesDep) -> JSONResponse:
    if not svc.context.ready:
        return JSONResponse({"status": "shutting down"}, status_code=503)
    try:
        svc.queries.ping()
    except Exception:  # any failure to answer means not ready; logged, not shown
        log.warning("readiness check: the database does not answer", exc_info=True)
        return JSONResponse({"status": "database unavailable"}, status_code=503)
    return JSONResponse({"status": "ready"})


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
async def metrics(svc: ServicesDep) -> Response:
    # The collectors query the database: off the event loop.
    body = await run_in_threadpool(generate_latest, svc.metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
