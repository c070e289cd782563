"""Signed provenance: an artifact's DSSE envelope, and the public key that verifies it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel

from shipline.domain.records import Role
from shipline.engine.errors import NotFound
from shipline.security.provenance import (
    BUILDER_EMBEDDED_SANDBOX,
    BUILDER_EMBEDDED_SHELL,
    BUILDER_REMOTE,
    key_id,
    load_public_key,
)
from shipline.server.api import API_PREFIX
from shipline.server.api.artifacts import AttemptParam
from shipline.server.deps import Caller, RequestId, ServicesDep
from shipline.server.schemas import ErrorOut

router = APIRouter(
    prefix=API_PREFIX,
    tags=["provenance"],
    responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 404: {"model": ErrorOut}},
)

RunId = Annotated[int, Path(ge=1, le=2**63 - 1, description="the run's id")]
Name = Annotated[str, Path(min_length=1, max_length=255, description="the artifact's name")]
MEDIA_TYPE = "application/vnd.in-toto.provenance+dsse"


@router.get(
    "/runs/{run_id}/artifacts/{name}/provenance",
    summary="Download an artifact's signed provenance",
    response_class=Response,
    responses={200: {"content": {MEDIA_TYPE: {}}}},
)
def artifact_provenance(
    run_id: RunId,
    name: Name,
    caller: Caller,
    svc: ServicesDep,
    request_id: RequestId,
    attempt: AttemptParam = None,
) -> Response:
    """SLSA v1 provenance (an in-toto Statement in a DSSE envelope, Ed25519) the server
    signed when the artifact was stored (in the run's attempt, default its current one);
    verify it with `shipline verify`."""
    run = svc.projects.authorize_run(
        caller, run_id, Role.VIEWER, action="artifact.read", request_id=request_id
    )
    if attempt is not None and attempt > run.attempt:
        raise NotFound(f"run {run_id} has no attempt {attempt}", field="attempt")
    load = svc.context.provenance
    wanted = run.attempt if attempt is None else attempt
    envelope = load(run_id, wanted, name) if load is not None else None
    if envelope is None:
        raise NotFound(f"no provenance for artifact {name!r} in this run", field="name")
    return Response(
        envelope,
        media_type=MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{name}.intoto.json"'},
    )


class SigningKeyOut(BaseModel):
    """The key provenance is signed with, and the builder ids this server signs as."""

    public_key: str
    key_id: str
    builder_ids: list[str]


@router.get("/keys/provenance", summary="The provenance signing key (public part)")
def signing_key(caller: Caller, svc: ServicesDep) -> SigningKeyOut:
    """PEM of the server's Ed25519 public key; give it to `shipline verify --key`."""
    pem = svc.context.signing_public_key
    if pem is None:
        raise NotFound("this server signs no provenance")
    return SigningKeyOut(
        public_key=pem,
        key_id=key_id(load_public_key(pem.encode())),
        builder_ids=[BUILDER_EMBEDDED_SHELL, BUILDER_EMBEDDED_SANDBOX, BUILDER_REMOTE],
    )
