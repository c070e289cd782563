"""What routes depend on: the app's services, the caller (`Authorization: Bearer <token>`)
and the request id.

Only user tokens are accepted unless an endpoint says otherwise. A request without valid
credentials is 401 and audited (actor `anonymous`, the reason in the record, never the
token).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shipline.engine.access import Principal
from shipline.engine.errors import Unauthenticated
from shipline.engine.projects import ProjectService
from shipline.engine.queries import Queries
from shipline.engine.secrets import SecretService
from shipline.server.context import ServerContext
from shipline.server.errors import request_id
from shipline.server.observe import Metrics

_bearer = HTTPBearer(auto_error=False, description="An API token: `Bearer shp_u_...`")


@dataclass(frozen=True, slots=True)
class Services:
    """Everything a route may call, built once per app by `create_app`."""

    context: ServerContext
    projects: ProjectService
    queries: Queries
    metrics: Metrics
    secrets: SecretService


def services(request: Request) -> Services:
    """The app's services."""
    found: Services = request.app.state.services
    return found


ServicesDep = Annotated[Services, Depends(services)]


def rid(request: Request) -> str:
    """The request's id (the client's `X-Request-Id` when sane, else a new one)."""
    return request_id(request)


RequestId = Annotated[str, Depends(rid)]


def principal(
    request: Request,
    svc: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller of an endpoint that takes user tokens; `Unauthenticated` otherwise."""
    token = credentials.credentials if credentials is not None else None
    try:
        return svc.context.access.authenticate(token)
    except Unauthenticated as exc:
        audit_failure(svc, exc.reason, request)
        raise


Caller = Annotated[Principal, Depends(principal)]


def audit_failure(svc: Services, reason: str, request: Request) -> None:
    """Audit a request refused for its credentials (actor `anonymous`, never the token)."""
    # Belongs in AccessService.authenticate (with the request id passed in); kept here
    # until it takes one, so that every 401 is in the trail.
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
