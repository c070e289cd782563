"""The store's ports: one narrow protocol per aggregate, all reached through a transaction.

`Store.transaction()` yields a `Transaction` whose repositories share one database
transaction: a state change, its published event and its audit record commit together or
not at all (STYLE.md habit 8). Implementations: `store.sql.SqlStore` (SQLite by default,
PostgreSQL for many servers); one contract suite (`tests/contract/test_store_contract.py`)
runs against both.

Conventions: `get*` returns None for what does not exist; `create*` raises `Conflict` for
a duplicate; a change to something that does not exist raises `NotFound`; status changes
are checked with `domain.transitions.check_transition` and raise `InvalidTransition`; lists
are newest first with an opaque `cursor`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from shipline.domain.artifacts import CacheEntry, CacheInfo
from shipline.domain.deployments import (
    DecisionRecord,
    DeploymentKind,
    DeploymentRecord,
    DeploymentState,
    EnvironmentRecord,
    GateRecord,
    GateState,
    ReleaseHistoryRecord,
    ReleaseOutcome,
    ReleaseRecord,
)
from shipline.domain.errors import ShiplineError
from shipline.domain.records import (
    JSON,
    AuditRecord,
    EventRecord,
    JobRecord,
    LogChunk,
    MembershipRecord,
    ProjectRecord,
    Role,
    RunRecord,
    SecretRecord,
    StepRecord,
    TokenKind,
    TokenRecord,
    Trust,
    UserRecord,
)
from shipline.domain.runners import AssignmentRecord, AssignmentState, RunnerRecord
from shipline.domain.source import (
    DeliveryRecord,
    Forge,
    ProtectionRule,
    PullRequestRecord,
    PullState,
    RefKind,
)
from shipline.domain.status import Conclusion, Status

T = TypeVar("T")


class Conflict(ShiplineError):
    """Something with that name or key exists already."""


class NotFound(ShiplineError):
    """A change names something that does not exist (a `get*` returns None instead)."""


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list; pass `next_cursor` back to get the next one (None: no more)."""

    items: list[T]
    next_cursor: str | None = None


@dataclass(frozen=True, slots=True)
class NewRun:
    """A run to create (status queued, attempt 1; the store assigns id and number).

    `workflow_text` is the workflow file at the run's commit, read by the server from the
    repository, never sent by a client; the plan is compiled from it.
    """

    project_id: int
    workflow_file: str
    workflow_name: str
    workflow_text: str
    event: str
    ref: str
    sha: str
    actor: str
    trust: Trust = Trust.TRUSTED
    inputs: JSON = field(default_factory=dict)
    event_payload: JSON = field(default_factory=dict)
    concurrency_group: str | None = None
    plan_digest: str = ""


@dataclass(frozen=True, slots=True)
class NewJob:
    """A job to create in a run's attempt, when it becomes ready (status queued)."""

    key: str
    job_id: str
    name: str
    matrix: JSON = field(default_factory=dict)
    needs: tuple[str, ...] = ()
    runs_on: tuple[str, ...] = ()
    timeout_minutes: float = 360
    status: Status = Status.QUEUED
    conclusion: Conclusion | None = None  # for jobs created already skipped
    error: str | None = None


@dataclass(frozen=True, slots=True)
class RunFilter:
    project_id: int | None = None
    status: Status | None = None
    ref: str | None = None
    event: str | None = None
    workflow_file: str | None = None


class ProjectStore(Protocol):
    def create(self, name: str, repository: str, default_branch: str = "main") -> ProjectRecord: ...

    def get(self, name: str) -> ProjectRecord | None: ...

    def get_by_id(self, project_id: int) -> ProjectRecord | None: ...

    def page(self, *, limit: int = 50, cursor: str | None = None) -> Page[ProjectRecord]: ...

    def delete(self, project_id: int) -> None: ...


class RunStore(Protocol):
    def create(self, run: NewRun, *, now: datetime) -> RunRecord:
        """Insert a run with the next number of its project (1, 2, ...), status queued."""
        ...

    def get(self, run_id: int) -> RunRecord | None: ...

    def lock(self, run_id: int) -> RunRecord | None:
        """`get`, and no other transaction changes the run (or locks it) until this one
        ends: changes to one run (a job's end, cancel, re-run) are serialised by it."""
        ...

    def definition(self, run_id: int) -> tuple[str, JSON]:
        """The workflow text and the event payload the run was created with."""
        ...

    def page(
        self, flt: RunFilter, *, limit: int = 20, cursor: str | None = None
    ) -> Page[RunRecord]: ...

    def latest_per_workflow(self, project_id: int) -> list[RunRecord]:
        """The newest run of each workflow file of the project, by file name."""
        ...

    def set_status(
        self,
        run_id: int,
        status: Status,
        conclusion: Conclusion | None = None,
        *,
        now: datetime,
        error: str | None = None,
    ) -> RunRecord:
        """Checked against the transition table; sets started_at/finished_at as it goes."""
        ...

    def new_attempt(self, run_id: int, *, now: datetime) -> RunRecord:
        """A completed run back to queued with attempt + 1 (a re-run); earlier attempts'
        jobs, steps and logs stay."""
        ...

    def active_in_group(self, project_id: int, group: str) -> list[RunRecord]:
        """Runs of a concurrency group that are not completed, oldest first."""
        ...

    def count_by_status(self) -> dict[Status, int]:
        """How many runs there are in each status (for `/metrics`)."""
        ...

    def unfinished(self) -> list[RunRecord]:
        """Every run not completed (crash recovery at start-up)."""
        ...


class JobStore(Protocol):
    def create(
        self, run_id: int, attempt: int, jobs: Sequence[NewJob], *, now: datetime
    ) -> list[JobRecord]: ...

    def get(self, job_id: int) -> JobRecord | None: ...

    def for_run(self, run_id: int, attempt: int | None = None) -> list[JobRecord]:
        """The jobs of an attempt (default: the run's current attempt), in creation order."""
        ...

    def progress(self, run_id: int, attempt: int) -> tuple[int, int]:
        """How many jobs the attempt has, and how many of them completed (a cheap check
        that a cached view of the run is still current)."""
        ...

    def set_status(
        self,
        job_id: int,
        status: Status,
        conclusion: Conclusion | None = None,
        *,
        now: datetime,
        outputs: JSON | None = None,
        error: str | None = None,
    ) -> JobRecord: ...

    def claim(
        self, owner: str, labels: frozenset[str] | None, *, lease_seconds: float, now: datetime
    ) -> JobRecord | None:
        """Atomically take the oldest queued job (whose `runs_on` labels are all in
        `labels`; None: any), mark it in_progress with a lease held by `owner`. Safe with
        many servers (FOR UPDATE SKIP LOCKED on PostgreSQL): no job is claimed twice."""
        ...

    def claim_many(
        self,
        owner: str,
        labels: frozenset[str] | None,
        count: int,
        *,
        lease_seconds: float,
        now: datetime,
    ) -> list[JobRecord]:
        """`claim` up to `count` jobs at once, oldest first (fewer when fewer fit)."""
        ...

    def renew_lease(self, job_id: int, owner: str, *, lease_seconds: float, now: datetime) -> bool:
        """Extend the lease; False when `owner` no longer holds the job."""
        ...

    def expired_leases(self, now: datetime) -> list[JobRecord]: ...

    def count_by_status(self) -> dict[Status, int]:
        """How many jobs there are in each status (for `/metrics`)."""
        ...


class StepStore(Protocol):
    def upsert(self, step: StepRecord) -> None: ...

    def for_job(self, job_id: int) -> list[StepRecord]: ...

    def for_jobs(self, job_ids: Sequence[int]) -> dict[int, list[StepRecord]]:
        """The steps of each of the jobs, in step order (one query for a run's jobs)."""
        ...


class LogStore(Protocol):
    def append(self, job_id: int, seq: int, data: bytes, step_index: int | None = None) -> bool:
        """Store a chunk; False (and no change) when that `seq` is stored already."""
        ...

    def read(
        self, job_id: int, *, after_seq: int = -1, limit: int | None = None
    ) -> list[LogChunk]: ...

    def last_seq(self, job_id: int) -> int:
        """The highest stored seq, -1 when none."""
        ...


class UserStore(Protocol):
    def create(
        self, name: str, *, password_hash: str | None = None, is_admin: bool = False, now: datetime
    ) -> UserRecord: ...

    def get(self, name: str) -> UserRecord | None: ...

    def get_by_id(self, user_id: int) -> UserRecord | None: ...

    def page(self, *, limit: int = 50, cursor: str | None = None) -> Page[UserRecord]: ...

    def set_password_hash(self, user_id: int, password_hash: str) -> None: ...

    def count(self) -> int: ...


class MembershipStore(Protocol):
    def set_role(self, project_id: int, user_id: int, role: Role) -> MembershipRecord: ...

    def role(self, project_id: int, user_id: int) -> Role | None: ...

    def for_project(self, project_id: int) -> list[MembershipRecord]: ...

    def remove(self, project_id: int, user_id: int) -> None: ...


@dataclass(frozen=True, slots=True)
class FoundToken:
    """A token found by the hash of its secret, with what it is bound to, read together:
    its user (a user token's), its job's status (a job token's), the runner it is the
    credential of (a runner's). Each is None when the token has none, or it is gone."""

    token: TokenRecord
    user: UserRecord | None = None
    job_status: Status | None = None
    runner: RunnerRecord | None = None


class TokenStore(Protocol):
    def create(
        self,
        kind: TokenKind,
        name: str,
        secret_hash: str,
        *,
        now: datetime,
        user_id: int | None = None,
        job_id: int | None = None,
        scopes: tuple[str, ...] = (),
        expires_at: datetime | None = None,
        last_used_at: datetime | None = None,
    ) -> TokenRecord:
        """`last_used_at`: for a token handed out as it is made (a remote job's)."""
        ...

    def find(self, secret_hash: str) -> FoundToken | None:
        """The token whatever its state (callers check `revoked_at` and `expires_at`),
        with what it is bound to, in one read."""
        ...

    def get(self, token_id: int) -> TokenRecord | None: ...

    def for_user(self, user_id: int) -> list[TokenRecord]: ...

    def revoke(self, token_id: int, *, now: datetime) -> None: ...

    def revoke_for_job(self, job_id: int, *, now: datetime) -> int:
        """Revoke the job's tokens not revoked yet; how many there were."""
        ...

    def touch(self, token_id: int, *, now: datetime) -> None: ...


class AuditStore(Protocol):
    def append(
        self,
        *,
        actor: str,
        action: str,
        now: datetime,
        decision: str = "allowed",
        project_id: int | None = None,
        target: str = "",
        reason: str = "",
        request_id: str = "",
        data: JSON | None = None,
    ) -> None:
        """Append to the hash chain. The record is linked when the transaction ends (the
        previous record's hash read then, serialised so that concurrent appends cannot
        fork the chain); this transaction's reads of the trail see it."""
        ...

    def page(
        self,
        *,
        project_id: int | None = None,
        action: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[AuditRecord]: ...

    def iterate(self) -> Iterator[AuditRecord]:
        """Every record in chain order (for verification and export)."""
        ...


@dataclass(frozen=True, slots=True)
class SealedValue:
    """What `SecretStore.put` writes: a value sealed by `security.sealing`."""

    key_id: str
    nonce: bytes
    ciphertext: bytes


class SecretStore(Protocol):
    """Sealed secrets of projects, unique by (project, environment, name); environment ""
    is the project scope."""

    def put(
        self,
        project_id: int,
        environment: str,
        name: str,
        sealed: SealedValue,
        *,
        actor: str,
        now: datetime,
    ) -> tuple[SecretRecord, bool]:
        """Create or replace; the bool is True when it was created."""
        ...

    def get(self, project_id: int, environment: str, name: str) -> SecretRecord | None: ...

    def for_project(self, project_id: int) -> list[SecretRecord]:
        """Every secret of the project, by environment then name."""
        ...

    def delete(self, project_id: int, environment: str, name: str) -> bool:
        """False when there was no such secret."""
        ...

    def all(self, *, lock: bool = False) -> list[SecretRecord]:
        """Every secret of every project (for a key rotation; `lock` keeps others from
        writing secrets until the transaction ends)."""
        ...

    def reseal(self, secret_id: int, sealed: SealedValue) -> None:
        """Replace the sealed value only (a key rotation: the value and metadata stay)."""
        ...


@dataclass(frozen=True, slots=True)
class NewRelease:
    """A release to record: an artifact of a run whose provenance was verified."""

    project_id: int
    artifact: str
    digest: str
    provenance: str
    run_id: int
    job_key: str
    ref: str
    sha: str
    builder: str
    created_by: str


@dataclass(frozen=True, slots=True)
class NewDeployment:
    """A deployment to queue (state queued unless given)."""

    project_id: int
    environment: str
    release_id: int
    kind: DeploymentKind
    actor: str
    ref: str
    sha: str
    run_id: int | None = None
    job_id: int | None = None
    previous_release_id: int | None = None
    state: DeploymentState = DeploymentState.QUEUED
    reason: str = ""


@dataclass(frozen=True, slots=True)
class NewGate:
    """The protection gate of a job that targets an environment."""

    project_id: int
    run_id: int
    job_id: int
    environment: str
    actor: str
    ref: str
    sha: str
    required: int
    state: GateState = GateState.WAITING
    reason: str = ""
    wait_until: datetime | None = None


class EnvironmentStore(Protocol):
    """The environments the server read from projects' default branches."""

    def record(self, project_id: int, name: str, source_sha: str, *, now: datetime) -> None:
        """Create or update (the commit it was read at, and when)."""
        ...

    def for_project(self, project_id: int) -> list[EnvironmentRecord]:
        """By name."""
        ...


class ReleaseStore(Protocol):
    def create(self, release: NewRelease, *, now: datetime) -> ReleaseRecord:
        """Insert, or return the release recorded already for the same run, artifact and
        digest."""
        ...

    def get(self, release_id: int) -> ReleaseRecord | None: ...


@dataclass(frozen=True, slots=True)
class NewHistoryEntry:
    """A finished rollout to record in an environment's release history."""

    project_id: int
    environment: str
    deployment_id: int
    release_id: int
    kind: DeploymentKind
    outcome: ReleaseOutcome
    actor: str
    run_id: int
    ref: str
    sha: str
    artifact: str
    digest: str
    cause: str = ""
    reason: str = ""
    rolled_back_to: int | None = None
    started_at: datetime | None = None


class ReleaseHistoryStore(Protocol):
    """Release history per environment: the record of what ran where (the data plane keeps
    only what its supervisor needs to re-adopt instances)."""

    def record(self, entry: NewHistoryEntry, *, now: datetime) -> ReleaseHistoryRecord:
        """Append a finished rollout (one per deployment; `now` is when it finished)."""
        ...

    def page(
        self,
        project_id: int,
        environment: str,
        *,
        limit: int = 20,
        cursor: str | None = None,
    ) -> Page[ReleaseHistoryRecord]:
        """Newest first."""
        ...

    def live(self, project_id: int, environment: str) -> ReleaseHistoryRecord | None:
        """The newest rollout that succeeded: the release the environment serves."""
        ...

    def previous(self, project_id: int, environment: str) -> ReleaseHistoryRecord | None:
        """The newest successful rollout of a release other than the live one: where a
        rollback without `--to` goes."""
        ...

    def last_of(
        self,
        project_id: int,
        environment: str,
        release_id: int,
        outcome: ReleaseOutcome | None = None,
    ) -> ReleaseHistoryRecord | None:
        """The newest rollout of `release_id` to the environment (with `outcome`, if given;
        None: there is none)."""
        ...


class DeploymentStore(Protocol):
    """Deployments, queued per (project, environment) and taken oldest first."""

    def create(self, deployment: NewDeployment, *, now: datetime) -> DeploymentRecord: ...

    def get(self, deployment_id: int) -> DeploymentRecord | None: ...

    def set_state(
        self, deployment_id: int, state: DeploymentState, *, now: datetime, reason: str = ""
    ) -> DeploymentRecord:
        """Queued -> in_progress -> a final state (or queued -> a final one); sets the
        start and finish times; `InvalidTransition` for anything else."""
        ...

    def unfinished(self, *, lock: bool = False) -> list[DeploymentRecord]:
        """Queued and in-progress deployments of every environment, oldest first (`lock`:
        concurrent callers wait, so two servers cannot start one environment twice)."""
        ...

    def page(
        self,
        project_id: int,
        environment: str | None = None,
        *,
        limit: int = 20,
        cursor: str | None = None,
    ) -> Page[DeploymentRecord]:
        """Newest first: an environment's release history."""
        ...

    def last_success(self, project_id: int, environment: str) -> DeploymentRecord | None:
        """The newest deployment that left its release running (success)."""
        ...

    def add_progress(self, deployment_id: int, message: str, *, now: datetime) -> int:
        """Append a line of the rollout's progress; returns its sequence number."""
        ...

    def progress(self, deployment_id: int, *, after: int = 0) -> list[tuple[int, str]]:
        """Lines after sequence number `after`, oldest first."""
        ...


class GateStore(Protocol):
    """Protection gates of jobs, one per job, and reviewers' decisions on them."""

    def create(self, gate: NewGate, *, now: datetime) -> GateRecord: ...

    def get(self, gate_id: int) -> GateRecord | None: ...

    def for_job(self, job_id: int) -> GateRecord | None: ...

    def for_run(self, run_id: int) -> list[GateRecord]: ...

    def waiting(self, project_ids: Sequence[int] | None = None) -> list[GateRecord]:
        """Gates still waiting (of these projects; None: all), oldest first."""
        ...

    def set_state(
        self, gate_id: int, state: GateState, *, now: datetime, reason: str = ""
    ) -> GateRecord: ...

    def set_wait(self, gate_id: int, until: datetime) -> None:
        """Start the gate's wait timer: it may pass at `until`."""
        ...

    def decide(
        self, gate_id: int, user: str, decision: str, comment: str, *, now: datetime
    ) -> DecisionRecord:
        """Record a reviewer's decision; `Conflict` when they decided already."""
        ...

    def decisions(self, gate_id: int) -> list[DecisionRecord]: ...


class EventStore(Protocol):
    def publish(
        self,
        kind: str,
        *,
        now: datetime,
        run_id: int | None = None,
        job_id: int | None = None,
        data: JSON | None = None,
    ) -> None:
        """Add an event to the feed. It gets its id, in publishing order, when the
        transaction's events are written: at its end, or before the transaction reads the
        feed (`since`, `last_id`)."""
        ...

    def since(
        self,
        after_id: int,
        *,
        run_id: int | None = None,
        job_id: int | None = None,
        limit: int = 500,
    ) -> list[EventRecord]: ...

    def last_id(self) -> int: ...


class RunnerStore(Protocol):
    """Registered remote runners and the jobs handed to them (`AssignmentRecord`)."""

    def create(
        self,
        name: str,
        labels: Sequence[str],
        version: str,
        slots: int,
        token_id: int,
        *,
        now: datetime,
    ) -> RunnerRecord: ...

    def get(self, runner_id: int) -> RunnerRecord | None: ...

    def all(self, *, include_removed: bool = False) -> list[RunnerRecord]:
        """Runners, oldest first."""
        ...

    def update(
        self,
        runner_id: int,
        *,
        labels: Sequence[str] | None = None,
        version: str | None = None,
        slots: int | None = None,
        last_seen_at: datetime | None = None,
        paused: bool | None = None,
        removed_at: datetime | None = None,
    ) -> RunnerRecord:
        """Change the given fields (None: unchanged); `NotFound` for an unknown runner."""
        ...

    def assign(
        self,
        runner_id: int,
        job_id: int,
        try_number: int,
        token_id: int,
        *,
        now: datetime,
    ) -> AssignmentRecord:
        """A try of a job handed to a runner. It notes the event feed's head as committed
        when it is made: a `job.cancel` after that is for this try (`cancelled`); one from
        an earlier transaction is not."""
        ...

    def assignment_by_token(self, token_id: int) -> AssignmentRecord | None: ...

    def assignments(
        self,
        *,
        runner_id: int | None = None,
        job_id: int | None = None,
        state: AssignmentState | None = None,
    ) -> list[AssignmentRecord]:
        """Assignments matching every given filter, oldest first."""
        ...

    def end_assignment(self, assignment_id: int, state: AssignmentState, *, now: datetime) -> bool:
        """Move a running assignment to `state`; False (no change) when it is not running."""
        ...

    def end_by_token(
        self, token_id: int, state: AssignmentState, *, now: datetime
    ) -> AssignmentRecord | None:
        """`end_assignment` for the running assignment of job token `token_id`, returned
        as ended; None (no change) when that token's assignment is not running."""
        ...

    def cancelled(self, job_ids: Sequence[int]) -> set[int]:
        """The jobs among `job_ids` that should stop: completed, their run completed, or a
        `job.cancel` event published after their running assignment was made."""
        ...


class ScheduleStore(Protocol):
    def claim_fire(self, project_id: int, workflow: str, cron: str, due_at: datetime) -> bool:
        """True for the first caller (of any server) to claim this firing, False after."""
        ...


@dataclass(frozen=True, slots=True)
class PollState:
    """A polled project: every `interval` seconds the servers read its remote's refs.
    `refs` (None before the first poll): ref -> commit seen last; `generation` grows with
    each save."""

    project_id: int
    interval: int
    refs: dict[str, str] | None = None
    generation: int = 0
    polled_at: datetime | None = None


class PollStore(Protocol):
    """Projects polled for new commits (those without webhooks)."""

    def set_interval(self, project_id: int, seconds: int | None) -> None:
        """Poll every `seconds` (None: stop polling and forget the refs seen)."""
        ...

    def get(self, project_id: int) -> PollState | None: ...

    def all(self) -> list[PollState]: ...

    def save(
        self, project_id: int, refs: dict[str, str], *, generation: int, now: datetime
    ) -> bool:
        """Replace the refs seen if they are still those of `generation` (compare and
        swap); False when another poll saved first."""
        ...


class ProtectionStore(Protocol):
    """Branch and tag protection rules, one per (project, kind, pattern)."""

    def put(
        self,
        project_id: int,
        kind: RefKind,
        pattern: str,
        *,
        push_role: Role,
        allow_force_push: bool,
        allow_deletion: bool,
        now: datetime,
    ) -> ProtectionRule:
        """Create the rule, or replace the settings of the one with that kind and pattern."""
        ...

    def for_project(self, project_id: int) -> list[ProtectionRule]:
        """The project's rules, oldest first."""
        ...

    def delete(self, project_id: int, rule_id: int) -> None:
        """`NotFound` when the project has no such rule."""
        ...


class WebhookStore(Protocol):
    """The salt each project's webhook secret is derived from (the secret itself is never
    stored: see `security.webhook_keys`)."""

    def set_salt(self, project_id: int, salt: str, *, now: datetime) -> None: ...

    def salt(self, project_id: int) -> str | None: ...


class DeliveryStore(Protocol):
    """Verified webhook deliveries, unique per (project, forge, delivery id)."""

    def create(
        self,
        project_id: int,
        forge: Forge,
        delivery_id: str,
        event: str,
        body: bytes,
        *,
        now: datetime,
    ) -> DeliveryRecord:
        """`Conflict` when that delivery id was stored already (a replay or a retry)."""
        ...

    def get(self, delivery_id: int) -> DeliveryRecord | None: ...

    def find(self, project_id: int, forge: Forge, delivery_id: str) -> DeliveryRecord | None:
        """The delivery with the forge's delivery id."""
        ...

    def body(self, delivery_id: int) -> bytes: ...

    def set_outcome(
        self,
        delivery_id: int,
        outcome: str,
        detail: str = "",
        runs: tuple[int, ...] = (),
        *,
        redelivered: bool = False,
    ) -> DeliveryRecord: ...

    def page(
        self, project_id: int, *, limit: int = 50, cursor: str | None = None
    ) -> Page[DeliveryRecord]: ...


class PullRequestStore(Protocol):
    """Pull requests of hosted repositories, numbered 1, 2, ... per project."""

    def create(
        self,
        project_id: int,
        *,
        title: str,
        body: str,
        author: str,
        head: str,
        base: str,
        head_sha: str,
        base_sha: str,
        now: datetime,
    ) -> PullRequestRecord: ...

    def get(self, project_id: int, number: int) -> PullRequestRecord | None: ...

    def open_for_head(self, project_id: int, head: str) -> list[PullRequestRecord]:
        """The open pull requests whose head is branch `head`."""
        ...

    def update(
        self,
        pull_id: int,
        *,
        now: datetime,
        head_sha: str | None = None,
        base_sha: str | None = None,
        state: PullState | None = None,
    ) -> PullRequestRecord: ...

    def page(
        self, project_id: int, *, limit: int = 50, cursor: str | None = None
    ) -> Page[PullRequestRecord]: ...


class Transaction(Protocol):
    """The repositories of one database transaction."""

    projects: ProjectStore
    runs: RunStore
    jobs: JobStore
    steps: StepStore
    logs: LogStore
    users: UserStore
    members: MembershipStore
    tokens: TokenStore
    audit: AuditStore
    events: EventStore
    secrets: SecretStore
    runners: RunnerStore
    schedules: ScheduleStore
    polls: PollStore
    protections: ProtectionStore
    webhooks: WebhookStore
    deliveries: DeliveryStore
    pulls: PullRequestStore
    environments: EnvironmentStore
    releases: ReleaseStore
    deployments: DeploymentStore
    history: ReleaseHistoryStore
    gates: GateStore
    caches: CacheIndexStore


class Store(Protocol):
    """A database: `with store.transaction() as tx:` commits on success, rolls back on error."""

    def transaction(self, *, write: bool = True) -> AbstractContextManager[Transaction]:
        """`write=False` promises reads only: readers then need not queue for the writer
        (SQLite's write lock); a write inside such a transaction is an error."""
        ...

    def reading(self) -> AbstractContextManager[None]:
        """Inside the block, this thread's `transaction(write=False)` blocks share one
        read-only transaction (one request: authentication, access check, query)."""
        ...

    def close(self) -> None: ...


class CacheIndexStore(Protocol):
    """The index of saved caches (their archives are blobs): which entry a restore finds in
    a scope, by key and version. Entries never change once added; `seq` (the insertion
    order) says which is newest, also within one clock tick. Scopes are opaque strings the
    engine decides (project, ref and trust class: `engine.trust.cache_scopes`)."""

    def find(self, scope: str, version: str, keys: Sequence[str]) -> CacheEntry | None:
        """The entry of `scope` and `version` whose key is `keys[0]`, else the newest whose
        key starts with one of `keys`, tried in order; None when none matches."""
        ...

    def add(
        self, scope: str, key: str, version: str, blob: str, size: int, *, now: datetime
    ) -> CacheEntry | None:
        """Add an entry; None when the scope has one of that key and version already (the
        first save wins, also between servers)."""
        ...

    def listed(self, scope_prefix: str = "") -> list[CacheInfo]:
        """Entries whose scope starts with `scope_prefix`, newest first."""
        ...


# What `QueueSignals` says happened: jobs joined the queue, or running jobs must stop.
SIGNAL_QUEUED = "queued"
SIGNAL_STOP = "stop"
# The published events (`EventStore.publish` kinds) that raise each signal.
SIGNALLED_EVENTS = {
    "job.queued": SIGNAL_QUEUED,
    "job.retried": SIGNAL_QUEUED,
    "job.cancel": SIGNAL_STOP,
    "run.completed": SIGNAL_STOP,
}


class QueueSignals(Protocol):
    """Wake-ups for long polls that wait on the job queue, from every process sharing the
    database: when a transaction that published one of `SIGNALLED_EVENTS` commits, each
    listener is called with its signal (`SIGNAL_QUEUED`, `SIGNAL_STOP`), from any thread.

    A wake-up is a hint, never a message: listeners look at the store again, and keep a
    slow poll for a signal lost with a connection. `reaches_other_processes` says whether
    signals cross processes (PostgreSQL's LISTEN/NOTIFY) or stay in this one (SQLite,
    whose writers all live in one server process).
    """

    reaches_other_processes: bool

    def listen(self, listener: Callable[[str], None]) -> Callable[[], None]:
        """Call `listener(signal)` on each signal until the returned function is called."""
        ...

    def close(self) -> None:
        """Stop listening (idempotent)."""
        ...
