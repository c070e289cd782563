"""Signing in: `POST /api/v1/login` trades a user name and password for a session token."""

from __future__ import annotations

from fastapi import APIRouter, Request

from shipline.server.api import API_PREFIX
from shipline.server.deps import ServicesDep
from shipline.server.schemas import ErrorOut, LoginCreate, LoginOut

router = APIRouter(prefix=API_PREFIX, tags=["auth"])


@router.post(
    "/login",
    summary="Sign in with a password",
    responses={401: {"model": ErrorOut}, 429: {"model": ErrorOut}},
)
def login(body: LoginCreate, request: Request, svc: ServicesDep) -> LoginOut:
    """A session token (expiring) for a user with a password. Repeated failures from one
    client for one name are slowed down: 429 with `Retry-After`."""
    client = request.client.host if request.client is not None else "unknown"
    token, expires = svc.context.access.login(body.name, body.password, client)
    return LoginOut(token=token, expires_at=expires)
