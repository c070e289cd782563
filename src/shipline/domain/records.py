"""What the server stores: the `*Record` forms of projects, runs, jobs, steps, logs, users,
tokens and audit events.

Frozen plain data; stores build them, services read them. JSON-valued fields hold only
JSON-compatible data. Times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from shipline.domain.status import Conclusion, Status

JSON = object  # a JSON-compatible value (dict, list, str, int, float, bool, None)


class Role(StrEnum):
    """A user's role in a project; each includes the rights of those below it."""

    VIEWER = "viewer"
    DEVELOPER = "developer"
    MAINTAINER = "maintainer"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


class Trust(StrEnum):
    """Decided by the server from the event, never from the workflow text."""

    TRUSTED = "trusted"
    UNTRUSTED = "untrusted"


class TokenKind(StrEnum):
    """What a token may be used for; checked on every endpoint (no type confusion)."""

    USER = "user"
    JOB = "job"
    RUNNER = "runner"
    RUNNER_REGISTRATION = "runner-registration"


@dataclass(frozen=True, slots=True)
class ProjectRecord:
    id: int
    name: str
    repository: str  # a local path or a git URL the server fetches from
    default_branch: str = "main"
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One execution of one workflow for one event; `attempt` grows with each re-run."""

    id: int
    project_id: int
    number: int
    attempt: int
    workflow_file: str
    workflow_name: str
    event: str
    ref: str
    sha: str
    actor: str
    status: Status
    conclusion: Conclusion | None = None
    trust: Trust = Trust.TRUSTED
    inputs: JSON = field(default_factory=dict)
    concurrency_group: str | None = None
    plan_digest: str = ""
    error: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One node of a run's DAG (one matrix cell), in one attempt of the run.

    `lease_owner`/`lease_expires_at` say which runner holds it and until when; a job whose
    lease ran out is retried or failed by policy.
    """

    id: int
    run_id: int
    attempt: int
    key: str
    job_id: str
    name: str
    status: Status
    conclusion: Conclusion | None = None
    matrix: JSON = field(default_factory=dict)
    needs: tuple[str, ...] = ()
    outputs: JSON = field(default_factory=dict)
    runs_on: tuple[str, ...] = ()
    timeout_minutes: float = 360
    tries: int = 0
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class StepRecord:
    job_id: int
    index: int
    key: str
    name: str
    status: Status
    conclusion: Conclusion | None = None
    exit_code: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class LogChunk:
    """A piece of a job's log; `seq` orders chunks and makes appends idempotent."""

    job_id: int
    seq: int
    step_index: int | None
    data: bytes


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: int
    name: str
    password_hash: str | None = None
    is_admin: bool = False
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class MembershipRecord:
    project_id: int
    user_id: int
    role: Role


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """An API token: only the SHA-256 of its secret is stored; shown once at creation."""

    id: int
    kind: TokenKind
    name: str
    secret_hash: str
    user_id: int | None = None
    job_id: int | None = None
    scopes: tuple[str, ...] = ()
    created_at: datetime | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """An append-only record of a state-changing action or a denial.

    `hash` chains the records: sha256(previous hash || canonical JSON of this record).
    """

    id: int
    at: datetime
    actor: str
    action: str
    decision: str = "allowed"  # allowed | denied
    project_id: int | None = None
    target: str = ""
    reason: str = ""
    request_id: str = ""
    data: JSON = field(default_factory=dict)
    prev_hash: str = ""
    hash: str = ""


@dataclass(frozen=True, slots=True)
class EventRecord:
    """A state change published for live views (SSE): a run, job or step changed, or log
    lines arrived. `id` grows monotonically; followers resume after the last id seen."""

    id: int
    at: datetime
    kind: str
    run_id: int | None = None
    job_id: int | None = None
    data: JSON = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SecretRecord:
    """A secret as stored: sealed (see `security.sealing`), never its value.

    `environment` is "" for a project secret, else the environment it is scoped to.
    `key_id` names the master key that sealed it; `nonce` and `ciphertext` are AES-GCM's.
    """

    id: int
    project_id: int
    environment: str
    name: str
    key_id: str
    nonce: bytes
    ciphertext: bytes
    updated_by: str
    created_at: datetime
    updated_at: datetime
