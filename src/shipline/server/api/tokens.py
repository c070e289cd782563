"""The caller's API tokens: create (the secret is shown once), list, revoke."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from shipline.server.api import API_PREFIX
from shipline.server.deps import Caller, ServicesDep
from shipline.server.schemas import ErrorOut, PageOut, TokenCreate, TokenCreatedOut, TokenOut

router = APIRouter(
    prefix=API_PREFIX,
    tags=["tokens"],
    responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}},
)

MAX_ID = 2**63 - 1


@router.post("/tokens", status_code=status.HTTP_201_CREATED, summary="Create an API token")
def create_token(body: TokenCreate, caller: Caller, svc: ServicesDep) -> TokenCreatedOut:
    """A new token for the caller; `token` is shown in this response only."""
    expires_in = timedelta(days=body.expires_in_days) if body.expires_in_days else None
    plaintext, record = svc.context.access.create_token(caller, body.name, expires_in)
    return TokenCreatedOut(
        id=record.id, name=record.name, token=plaintext, expires_at=record.expires_at
    )


@router.get("/tokens", summary="List the caller's tokens")
def list_tokens(caller: Caller, svc: ServicesDep) -> PageOut[TokenOut]:
    """The caller's tokens, revoked and expired ones included; never their secrets."""
    records = sorted(svc.context.access.list_tokens(caller), key=lambda t: t.id, reverse=True)
    return PageOut(items=[TokenOut.from_record(t) for t in records])


@router.delete(
    "/tokens/{token_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke a token",
    responses={404: {"model": ErrorOut}},
)
def revoke_token(
    token_id: Annotated[int, Path(ge=1, le=MAX_ID)], caller: Caller, svc: ServicesDep
) -> Response:
    """From now on the token is refused (401). Someone else's token is 404 (admins may
    revoke anyone's)."""
    svc.context.access.revoke_token(caller, token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
