"""What routes depend on: the app's services, the caller (`Authorization: Bearer <token>`)
and the request id.

Only user tokens are accepted unless an endpoint says otherwise. A request without valid
credentials is 401 and audited by `AccessService.authenticate` (actor `anonymous`, the
reason in the record, never the token).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shipline.domain.records import TokenKind
from shipline.engine.access import Principal
from shipline.engine.projects import ProjectService
from shipline.engine.pulls import PullRequestService
from shipline.engine.queries import Queries
from shipline.engine.secrets import SecretService
from shipline.engine.source import SourceService
from shipline.engine.webhooks import WebhookService
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
    source: SourceService
    webhooks: WebhookService
    pulls: PullRequestService


async def services(request: Request) -> Services:
    """The app's services (a coroutine: no worker thread for a dictionary lookup)."""
    found: Services = request.app.state.services
    return found


ServicesDep = Annotated[Services, Depends(services)]


async def rid(request: Request) -> str:
    """The request's id (the client's `X-Request-Id` when sane, else a new one)."""
    return request_id(request)


RequestId = Annotated[str, Depends(rid)]
# The bearer credentials, not checked yet: for endpoints that authenticate inside their
# one read transaction (`authenticated`).
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def authenticated(
    svc: Services, credentials: HTTPAuthorizationCredentials | None, request: Request
) -> Principal:
    """The caller, or `Unauthenticated` (audited by the access service)."""
    token = credentials.credentials if credentials is not None else None
    return svc.context.access.authenticate(
        token,
        request_id=request_id(request),
        target=f"{request.method} {request.url.path}",
    )


def principal(request: Request, svc: ServicesDep, credentials: Credentials) -> Principal:
    """The caller of an endpoint that takes user tokens; `Unauthenticated` otherwise."""
    return authenticated(svc, credentials, request)


Caller = Annotated[Principal, Depends(principal)]


def bearer(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str | None:
    """The raw bearer token, for endpoints that check a kind other than a user token."""
    return credentials.credentials if credentials is not None else None


Bearer = Annotated[str | None, Depends(bearer)]


def job_principal(request: Request, svc: ServicesDep, token: Bearer) -> Principal:
    """The caller of an endpoint that takes job tokens only (a runner's job messages)."""
    return svc.context.access.authenticate(
        token,
        allowed=frozenset({TokenKind.JOB}),
        request_id=request_id(request),
        target=f"{request.method} {request.url.path}",
    )


JobCaller = Annotated[Principal, Depends(job_principal)]


def audit_failure(svc: Services, reason: str, request: Request) -> None:
    """Audit a failed authentication of a credential the access service does not check
    itself (runner credentials, registration tokens); never the token."""
    svc.context.access.record_denied(
        reason, request_id=request_id(request), target=f"{request.method} {request.url.path}"
    )
