"""`create_app(context)`: the FastAPI application over the services of a `ServerContext`.

Routes live in `server.api` (one module per resource), under `/api/v1` except the probes
and `/metrics`. The OpenAPI document is served at `/openapi.json` and is the reference.
"""

from __future__ import annotations

from fastapi import FastAPI

from shipline.engine.projects import ProjectService
from shipline.engine.queries import Queries
from shipline.engine.secrets import SecretService
from shipline.server import errors
from shipline.server.api import (
    artifacts,
    audit,
    auth,
    deployments,
    health,
    logs,
    projects,
    provenance,
    runs,
    secrets,
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
    projects_service = ProjectService(context.store, context.clock, context.access, context.runs)
    app.state.services = Services(
        context=context,
        projects=projects_service,
        queries=queries,
        metrics=metrics,
        secrets=SecretService(context.store, context.clock, context.keyring, projects_service),
    )
    errors.install(app)
    app.add_middleware(RequestMiddleware, metrics=metrics)
    app.include_router(health.router)
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
        deployments,
    )
    for module in modules:
        app.include_router(module.router)
    return app
