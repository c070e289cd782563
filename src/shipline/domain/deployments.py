"""The plain records of the deployment control plane: environments the server has read,
releases (an artifact with its verified provenance), deployments (one release to one
environment, queued per environment), protection gates of jobs and the reviewers'
decisions on them.

Frozen data; stores build them, services read them. Times are timezone-aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class GateState(StrEnum):
    """Where a job's protection gate is: `waiting` for reviewers, the wait timer or a freeze
    window to end; `approved` (the job was released to the queue); `rejected` by a
    reviewer; `refused` by a rule no reviewer can lift (branch, untrusted run, no file)."""

    WAITING = "waiting"
    APPROVED = "approved"
    REJECTED = "rejected"
    REFUSED = "refused"


class DeploymentState(StrEnum):
    """A deployment's life: `queued` behind others of its environment, `in_progress`, then
    one of the final states."""

    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    SUCCESS = "success"
    FAILURE = "failure"
    ROLLED_BACK = "rolled_back"
    SKIPPED = "skipped"
    REFUSED = "refused"

    @property
    def final(self) -> bool:
        return self not in (DeploymentState.QUEUED, DeploymentState.IN_PROGRESS)


class DeploymentKind(StrEnum):
    """Why a deployment exists: a workflow step or `shipline deploy` (`deploy`), `shipline
    rollback` (`rollback`), or a roll forward to a newer release after a rollback."""

    DEPLOY = "deploy"
    ROLLBACK = "rollback"
    ROLL_FORWARD = "roll_forward"


@dataclass(frozen=True, slots=True)
class EnvironmentRecord:
    """An environment file the server read from the project's default branch, and the
    commit it read it at."""

    id: int
    project_id: int
    name: str
    source_sha: str
    read_at: datetime


@dataclass(frozen=True, slots=True)
class ReleaseRecord:
    """An artifact of a run whose signed provenance was verified: `digest` covers every
    file of the artifact (`sha256:` of its sorted `path digest` lines), `provenance` is the
    SHA-256 of the DSSE envelope that was verified."""

    id: int
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
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DeploymentRecord:
    """One release going to one environment. `run_id`/`job_id` name the workflow job that
    asked for it (None for one asked from the CLI); `previous_release_id` what the
    environment ran before; `reason` why it ended as it did."""

    id: int
    project_id: int
    environment: str
    release_id: int
    kind: DeploymentKind
    state: DeploymentState
    actor: str
    ref: str
    sha: str
    run_id: int | None = None
    job_id: int | None = None
    previous_release_id: int | None = None
    reason: str = ""
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class GateRecord:
    """The protection gate of one job that targets an environment.

    `actor` is who started the run (they may not approve it when the environment prevents
    self-review); `required` how many approvals it needs; `wait_until` when the wait timer
    ends (None: no timer)."""

    id: int
    project_id: int
    run_id: int
    job_id: int
    environment: str
    state: GateState
    actor: str
    ref: str
    sha: str
    required: int
    reason: str = ""
    wait_until: datetime | None = None
    created_at: datetime | None = None
    decided_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """A reviewer's decision on a gate: `approve` or `reject`, with an optional comment."""

    id: int
    gate_id: int
    user: str
    decision: str
    comment: str
    at: datetime


class ReleaseOutcome(StrEnum):
    """How a release's rollout to an environment ended, as release history records it:
    `success` (it went live), `rolled_back` (it failed and the environment went back to
    `rolled_back_to`), `failure` (it failed and could not be rolled back)."""

    SUCCESS = "success"
    ROLLED_BACK = "rolled_back"
    FAILURE = "failure"


@dataclass(frozen=True, slots=True)
class ReleaseHistoryRecord:
    """One rollout of a release to an environment: the record of release history.

    Which release (`release_id`, `artifact`, `digest`), when (`started_at`,
    `finished_at`), by whom (`actor`), from which run and commit (`run_id` built it at
    `ref`@`sha`), why (`kind`: deploy, rollback, roll_forward) and the outcome; `cause`
    (`hooks`, `health`, `analysis`, `target`) and `reason` say why it did not succeed."""

    id: int
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
    finished_at: datetime | None = None
