"""`create_app(context)`: the FastAPI application over the services of a `ServerContext`.

Routes live in `server.api` (one module per resource), under `/api/v1` except the probes
and `/metrics`; the dashboard (`server.web`) is mounted under `/ui`. The OpenAPI document
is served at `/openapi.json` and is the reference.
"""

from __future__ import annotations

from secrets import token_bytes

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from shipline.engine.projects import ProjectService
from shipline.engine.pulls import PullRequestService
from shipline.engine.queries import Queries
from shipline.engine.secrets import SecretService
from shipline.engine.source import SourceService
from shipline.engine.webhooks import WebhookService
from shipline.server import errors, git_http
from shipline.server.api import (
    artifacts,
    audit,
    auth,
    deployments,
    health,
    hooks,
    logs,
    projects,
    protections,
    provenance,
    pulls,
    runner_jobs,
    runners,
    runs,
    secrets,
    tokens,
    users,
)
from shipline.server.context import ServerContext
from shipline.server.deps import Services
from shipline.server.observe import Metrics, RequestMiddleware
from shipline.server.web.app import create_web_app


def create_app(context: ServerContext) -> FastAPI:
    """The application: routers, error handlers, request ids and metrics of its own."""
    queries = Queries(context.store)
    metrics = Metrics(queries, context)
    app = FastAPI(
        title="Shipline",
        version="1",
        summary="Shipline's REST API: projects, runs, jobs, logs, users, tokens, audit.",
    )
    webhook_key = context.webhook_key or token_bytes(32)
    projects_service = ProjectService(context.store, context.clock, context.access, context.runs)
    source = SourceService(context.store, context.clock, projects_service, context.runs)
    pulls_service = PullRequestService(
        context.store, context.clock, projects_service, context.runs, refs=context.hosted
    )
    source.push_listeners.append(pulls_service.pushed)
    app.state.services = Services(
        context=context,
        projects=projects_service,
        queries=queries,
        metrics=metrics,
        secrets=SecretService(context.store, context.clock, context.keyring, projects_service),
        source=source,
        pulls=pulls_service,
        webhooks=WebhookService(
            context.store, context.clock, projects_service, context.runs, lambda: webhook_key
        ),
    )
    errors.install(app)
    app.add_middleware(RequestMiddleware, metrics=metrics)
    app.include_router(health.router)
    app.include_router(git_http.router)
    app.include_router(hooks.router)
    app.include_router(hooks.api)
    modules = (
        auth,
        users,
        tokens,
        projects,
        runs,
        logs,
        artifacts,
        audit,
        secrets,
        provenance,
        runners,
        runner_jobs,
        protections,
        pulls,
        deployments,
    )
    for module in modules:
        app.include_router(module.router)
    # The dashboard: server-rendered pages under /ui, signed in with a session cookie.
    app.mount("/ui", create_web_app(app.state.services), name="ui")

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=307)

    return app
