"""Secrets of a project: set (write-only), list (names, scopes, who and when), delete.

No endpoint returns a value: `PUT` answers with what `GET` shows. Values go to jobs only,
through the runner that claims them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from shipline.engine.secrets import SecretInfo
from shipline.server.api import API_PREFIX
from shipline.server.deps import Caller, RequestId, ServicesDep
from shipline.server.schemas import ErrorOut, PageOut

router = APIRouter(
    prefix=API_PREFIX,
    tags=["secrets"],
    responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 404: {"model": ErrorOut}},
)

ProjectParam = Annotated[str, Path(max_length=100, description="the project's name")]
NameParam = Annotated[str, Path(max_length=255, description="the secret's name")]
EnvironmentQuery = Annotated[
    str,
    Query(
        max_length=255,
        description="the environment the secret is scoped to (empty: the whole project)",
    ),
]


class SecretSet(BaseModel):
    """A secret's value (at least 4 characters, at most 48 KiB) and optional scope."""

    model_config = ConfigDict(extra="forbid")

    value: str = Field(max_length=64 * 1024)
    environment: str = Field(default="", max_length=255)


class SecretOut(BaseModel):
    """What is shown about a secret: never its value."""

    name: str
    environment: str
    updated_by: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, info: SecretInfo) -> SecretOut:
        return cls(
            name=info.name,
            environment=info.environment,
            updated_by=info.updated_by,
            created_at=info.created_at,
            updated_at=info.updated_at,
        )


class SecretSetOut(SecretOut):
    """The secret just set, with why its value masks poorly (a short value, a common word):
    it is kept and masked all the same."""

    warnings: list[str]

    @classmethod
    def set(cls, info: SecretInfo) -> SecretSetOut:
        return cls(**SecretOut.of(info).model_dump(), warnings=list(info.warnings))


@router.put(
    "/projects/{project}/secrets/{name}",
    summary="Set a secret (write-only)",
    responses={201: {"model": SecretSetOut}, 422: {"model": ErrorOut}},
)
def set_secret(
    project: ProjectParam,
    name: NameParam,
    body: SecretSet,
    caller: Caller,
    svc: ServicesDep,
    request_id: RequestId,
    response: Response,
) -> SecretSetOut:
    """Create (201) or replace (200) a secret (maintainers). The value is sealed at once
    and never returned by any endpoint."""
    info, created = svc.secrets.set(
        caller,
        project,
        name,
        body.value,
        environment=body.environment,
        request_id=request_id,
    )
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return SecretSetOut.set(info)


@router.get("/projects/{project}/secrets", summary="List a project's secrets")
def list_secrets(
    project: ProjectParam, caller: Caller, svc: ServicesDep, request_id: RequestId
) -> PageOut[SecretOut]:
    """Names, scopes, who changed each and when (developers); never values."""
    infos = svc.secrets.list(caller, project, request_id=request_id)
    return PageOut(items=[SecretOut.of(i) for i in infos])


@router.delete(
    "/projects/{project}/secrets/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a secret",
)
def delete_secret(
    project: ProjectParam,
    name: NameParam,
    caller: Caller,
    svc: ServicesDep,
    request_id: RequestId,
    environment: EnvironmentQuery = "",
) -> Response:
    """Delete a secret (maintainers); jobs claimed from now on no longer receive it."""
    svc.secrets.remove(caller, project, name, environment=environment, request_id=request_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
