"""The API's shapes: `*Create` for request bodies (strict: unknown fields are refused) and
`*Out` for responses, built from the stored records with `from_record`.

Strings that reach git or the database are bounded and free of control characters, so a
hostile body is a 422 naming the field, never a crash further down.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints

from shipline.domain.records import (
    AuditRecord,
    JobRecord,
    ProjectRecord,
    Role,
    RunRecord,
    StepRecord,
    TokenRecord,
    UserRecord,
)
from shipline.domain.status import Conclusion, Status
from shipline.engine.projects import PROJECT_NAME

T = TypeVar("T")

# One line of printable text: no control characters (NUL would break git and PostgreSQL).
_PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
Text = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=_PRINTABLE)]
LongText = Annotated[str, StringConstraints(min_length=1, max_length=4096, pattern=_PRINTABLE)]
InputValue = Annotated[str, StringConstraints(max_length=65536, pattern=r"^[^\x00]*$")]
ProjectName = Annotated[str, StringConstraints(pattern=PROJECT_NAME)]
UserName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
Password = Annotated[str, StringConstraints(min_length=8, max_length=1024)]
BranchName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._][A-Za-z0-9._/-]{0,199}$")]


class _Body(BaseModel):
    """A request body: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorOut(BaseModel):
    """Every error response: `{"error": {"code", "message", "field"}}`."""

    error: ErrorDetail


class PageOut(BaseModel, Generic[T]):
    """A list, newest first: pass `next_cursor` back as `?cursor=` (null: the last page)."""

    items: list[T]
    next_cursor: str | None = None


# -- login, users, tokens --------------------------------------------------------------------


class LoginCreate(_Body):
    name: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class LoginOut(BaseModel):
    token: str
    expires_at: datetime


class UserCreate(_Body):
    name: UserName
    password: Password | None = None
    is_admin: bool = False


class UserOut(BaseModel):
    id: int
    name: str
    is_admin: bool
    created_at: datetime | None

    @classmethod
    def from_record(cls, user: UserRecord) -> UserOut:
        return cls(id=user.id, name=user.name, is_admin=user.is_admin, created_at=user.created_at)


class TokenCreate(_Body):
    name: Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=_PRINTABLE)]
    expires_in_days: Annotated[int, Field(ge=1, le=3650)] | None = None


class TokenOut(BaseModel):
    """A token as listed: never its secret (only a hash is stored)."""

    id: int
    name: str
    created_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    @classmethod
    def from_record(cls, token: TokenRecord) -> TokenOut:
        return cls(
            id=token.id,
            name=token.name,
            created_at=token.created_at,
            expires_at=token.expires_at,
            revoked_at=token.revoked_at,
            last_used_at=token.last_used_at,
        )


class TokenCreatedOut(BaseModel):
    """A new token: `token` is its secret, shown this once."""

    id: int
    name: str
    token: str
    expires_at: datetime | None


# -- projects --------------------------------------------------------------------------------


class ProjectCreate(_Body):
    name: ProjectName
    repository: LongText
    default_branch: BranchName = "main"


class ProjectOut(BaseModel):
    id: int
    name: str
    repository: str
    default_branch: str
    created_at: datetime | None

    @classmethod
    def from_record(cls, project: ProjectRecord) -> ProjectOut:
        return cls(
            id=project.id,
            name=project.name,
            repository=project.repository,
            default_branch=project.default_branch,
            created_at=project.created_at,
        )


class MemberCreate(_Body):
    role: Role


class MemberOut(BaseModel):
    project: str
    user: str
    role: Role


# -- runs ------------------------------------------------------------------------------------


class RerunCreate(_Body):
    """A re-run: every job, or (`failed_only`) the failed jobs and those that need them."""

    failed_only: bool = False


class RunCreate(_Body):
    """What to run: `ref` (default: the project's default branch), `workflow` (a file path
    or base name; default: every workflow the event triggers), `event`, and
    `workflow_dispatch` inputs (checked against the workflow's declared types)."""

    ref: Text | None = None
    workflow: Text | None = None
    event: Literal["workflow_dispatch", "push", "api"] = "workflow_dispatch"
    inputs: Annotated[dict[Text, InputValue], Field(max_length=100)] | None = None


class StepOut(BaseModel):
    number: int
    key: str
    name: str
    status: Status
    conclusion: Conclusion | None
    exit_code: int | None
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def from_record(cls, step: StepRecord) -> StepOut:
        return cls(
            number=step.index,
            key=step.key,
            name=step.name,
            status=step.status,
            conclusion=step.conclusion,
            exit_code=step.exit_code,
            started_at=step.started_at,
            finished_at=step.finished_at,
        )


class JobOut(BaseModel):
    id: int
    run_id: int
    attempt: int
    key: str
    job: str
    name: str
    status: Status
    conclusion: Conclusion | None
    matrix: JsonValue
    needs: list[str]
    runs_on: list[str]
    outputs: JsonValue
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None
    steps: list[StepOut]

    @classmethod
    def from_record(cls, job: JobRecord, steps: tuple[StepRecord, ...] = ()) -> JobOut:
        return cls(
            id=job.id,
            run_id=job.run_id,
            attempt=job.attempt,
            key=job.key,
            job=job.job_id,
            name=job.name,
            status=job.status,
            conclusion=job.conclusion,
            matrix=_json(job.matrix),
            needs=list(job.needs),
            runs_on=list(job.runs_on),
            outputs=_json(job.outputs),
            error=job.error,
            started_at=job.started_at,
            finished_at=job.finished_at,
            steps=[StepOut.from_record(s) for s in steps],
        )


class RunOut(BaseModel):
    id: int
    project: str
    number: int
    attempt: int
    workflow_file: str
    workflow_name: str
    event: str
    ref: str
    sha: str
    actor: str
    status: Status
    conclusion: Conclusion | None
    trust: str
    inputs: JsonValue
    error: str | None
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    jobs: list[JobOut] | None = Field(
        default=None, description="the current attempt's jobs (in a run's detail only)"
    )

    @classmethod
    def from_record(cls, run: RunRecord, project: str, jobs: list[JobOut] | None = None) -> RunOut:
        return cls(
            id=run.id,
            project=project,
            number=run.number,
            attempt=run.attempt,
            workflow_file=run.workflow_file,
            workflow_name=run.workflow_name,
            event=run.event,
            ref=run.ref,
            sha=run.sha,
            actor=run.actor,
            status=run.status,
            conclusion=run.conclusion,
            trust=str(run.trust),
            inputs=_json(run.inputs),
            error=run.error,
            created_at=run.created_at,
            started_at=run.started_at,
            finished_at=run.finished_at,
            jobs=jobs,
        )


# -- audit -----------------------------------------------------------------------------------


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    decision: str
    project_id: int | None
    target: str
    reason: str
    request_id: str
    data: JsonValue
    prev_hash: str
    hash: str

    @classmethod
    def from_record(cls, record: AuditRecord) -> AuditOut:
        return cls(
            id=record.id,
            at=record.at,
            actor=record.actor,
            action=record.action,
            decision=record.decision,
            project_id=record.project_id,
            target=record.target,
            reason=record.reason,
            request_id=record.request_id,
            data=_json(record.data),
            prev_hash=record.prev_hash,
            hash=record.hash,
        )


def _json(value: object) -> JsonValue:
    """A stored JSON column as pydantic's `JsonValue` (records type them as `object`)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    return str(value)
