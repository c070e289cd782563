"""What the server tells operators: a request id on every request and response, request
durations, and `/metrics` in Prometheus' text format from a registry of this app's own.

`RequestMiddleware` is a plain ASGI middleware (it does not buffer streamed responses such
as SSE): it takes the client's `X-Request-Id` when it is sane or makes one, returns it on
the response, times the request under its route template (not its path, so that ids do not
multiply the series), and turns an unexpected exception into the API's 500 error shape.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shipline.domain.status import Status
from shipline.engine.queries import Queries
from shipline.server.context import ServerContext

log = logging.getLogger("shipline.server")

REQUEST_ID_HEADER = "x-request-id"
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_STATUSES = [s.value for s in Status if s is not Status.COMPLETED]


class StoreCollector(Collector):
    """Gauges read from the database at each scrape: unfinished runs and jobs by status,
    the queue depth, and the embedded runner's slots."""

    def __init__(self, queries: Queries, context: ServerContext) -> None:
        self._queries = queries
        self._context = context

    def collect(self) -> Iterator[Metric]:
        snapshot = self._queries.metrics()
        runs = GaugeMetricFamily(
            "shipline_runs", "Runs not yet completed, by status", labels=["status"]
        )
        jobs = GaugeMetricFamily(
            "shipline_jobs", "Jobs of runs not yet completed, by status", labels=["status"]
        )
        for status in _STATUSES:
            runs.add_metric([status], snapshot.runs_by_status.get(status, 0))
            jobs.add_metric([status], snapshot.jobs_by_status.get(status, 0))
        yield runs
        yield jobs
        yield GaugeMetricFamily(
            "shipline_queue_depth", "Jobs queued for a runner", value=snapshot.queue_depth
        )
        yield GaugeMetricFamily(
            "shipline_runner_slots",
            "Job slots of the embedded runner",
            value=self._context.runner_slots,
        )
        yield GaugeMetricFamily(
            "shipline_runner_slots_busy",
            "Job slots of the embedded runner running a job",
            value=self._context.busy_slots[0],
        )


class Metrics:
    """The app's registry (never the process-global one: two apps in one process, as in
    tests, keep their own figures) and its request-duration histogram."""

    def __init__(self, queries: Queries, context: ServerContext) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.request_duration = Histogram(
            "shipline_http_request_duration_seconds",
            "Time to answer an HTTP request (to the start of a streamed body)",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.registry.register(StoreCollector(queries, context))
        self.job_duration = Histogram(
            "shipline_job_duration_seconds",
            "How long jobs of the embedded runner took, from start to end",
            ["conclusion"],
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600),
            registry=self.registry,
        )
        context.job_listeners.append(
            lambda conclusion, seconds: self.job_duration.labels(conclusion).observe(seconds)
        )


class RequestMiddleware:
    """Request ids, durations and the last-resort 500 (see the module docstring)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = ""
        for name, value in scope.get("headers", []):
            if name == b"x-request-id":
                given = value.decode("latin-1")
                break
        rid = given if _SANE_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        started = time.perf_counter()
        status = [500]
        sent_start = [False]

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", rid.encode()))
                message = {**message, "headers": headers}
                sent_start[0] = True
                self._observe(scope, status[0], started)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception(
                "unexpected error in %s %s (request %s)",
                scope.get("method"),
                scope.get("path"),
                rid,
            )
            if sent_start[0]:
                raise
            body = json.dumps(
                {
                    "error": {
                        "code": "internal",
                        "message": f"internal error (request id {rid})",
                        "field": None,
                    }
                }
            ).encode()
            await send_with_id(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})

    def _observe(self, scope: Scope, status: int, started: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        self.metrics.request_duration.labels(
            scope.get("method", ""), template, str(status)
        ).observe(time.perf_counter() - started)
