"""`create_app(context)`: the FastAPI application over the services of a `ServerContext`.

Routes live in `server.api` (one module per resource), under `/api/v1` except the probes
and `/metrics`. The OpenAPI document is served at `/openapi.json` and is the reference.
"""

from __future__ import annotations

import secrets

from fastapi import FastAPI

from shipline.engine.projects import ProjectService
from shipline.engine.pulls import PullRequestService
from shipline.engine.queries import Queries
from shipline.engine.source import SourceService
from shipline.engine.webhooks import WebhookService
from shipline.server import errors, git_http
from shipline.server.api import (
    artifacts,
    audit,
    auth,
    health,
    hooks,
    logs,
    projects,
    protections,
    pulls,
    runs,
    tokens,
    users,
)
from shipline.server.context import ServerContext
from shipline.server.deps import Services
from shipline.server.observe import Metrics, RequestMiddleware


def create_app(context: ServerContext) -> FastAPI:
    """The application: routers, error handlers, request ids and metrics of its own."""
    queries = Queries(context.store)
    metrics = Metrics(queries, context)
    app = FastAPI(
        title="Shipline",
        version="1",
        summary="Shipline's REST API: projects, runs, jobs, logs, users, tokens, audit.",
    )
    webhook_key = context.webhook_key or secrets.token_bytes(32)
    projects_service = ProjectService(context.store, context.clock, context.access, context.runs)
    source = SourceService(context.store, context.clock, projects_service, context.runs)
    pulls_service = PullRequestService(context.store, context.clock, projects_service, context.runs)
    source.push_listeners.append(pulls_service.pushed)
    app.state.services = Services(
        context=context,
        projects=projects_service,
        queries=queries,
        metrics=metrics,
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
    for module in (auth, users, tokens, projects, runs, logs, artifacts, audit, protections, pulls):
        app.include_router(module.router)
    return app
