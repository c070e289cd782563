"""What the engine hands a runner (a job assignment) and what comes back (a job result)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from shipline.domain.records import Trust
from shipline.domain.status import Conclusion
from shipline.plan.compile import PlannedJob
from shipline.plan.events import Event
from shipline.runner.commands import Annotation
from shipline.runner.ports import Deployer
from shipline.spec.models import WorkflowSpec


@dataclass(frozen=True, slots=True)
class JobAssignment:
    """One job to run, with everything it may see.

    `github` is the `github` context; `needs` the results of the jobs it needs (`outputs`,
    `result`); `secrets` only the values this job may receive (never logged or persisted);
    `trust` the run's trust class, decided by the server (it picks the sandbox's defaults);
    `token` the job's token, a secret like the others.
    """

    run_id: str
    planned: PlannedJob
    workflow: WorkflowSpec
    event: Event
    github: Mapping[str, object]
    needs: Mapping[str, object] = field(default_factory=dict)
    vars: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)
    inputs: Mapping[str, object] = field(default_factory=dict)
    debug: bool = False
    trust: Trust = Trust.TRUSTED
    # Where caches are saved, and what else restores may read; decided by the server from
    # (project, ref, trust). None: `<repository>@<ref>` (a local run).
    cache_scope: str | None = None
    cache_restore_scopes: tuple[str, ...] = ()
    # The server's deployment controller for this job (`shipline/deploy`); None: no server.
    deployer: Deployer | None = None
    # The job's token (`shp_j_...`, server jobs only): `github.token` and
    # `secrets.GITHUB_TOKEN` to the steps that reference it, masked everywhere.
    token: str | None = None

    @property
    def key(self) -> str:
        return self.planned.key


@dataclass(slots=True)
class StepResult:
    """How one step ended. `outcome` is before continue-on-error, `conclusion` after."""

    key: str
    id: str | None
    name: str
    conclusion: Conclusion = Conclusion.SKIPPED
    outcome: Conclusion = Conclusion.SKIPPED
    exit_code: int | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    started: float = 0.0
    finished: float = 0.0
    error: str | None = None
    summary: str = ""  # what the step wrote to GITHUB_STEP_SUMMARY, masked


@dataclass(slots=True)
class JobResult:
    """How one job ended, with its outputs and its steps."""

    key: str
    job_id: str
    name: str
    conclusion: Conclusion
    outputs: dict[str, str] = field(default_factory=dict)
    steps: list[StepResult] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0
    error: str | None = None
    annotations: list[Annotation] = field(default_factory=list)


class JobObserver(Protocol):
    """Receives everything a job does, as it happens (a terminal, a log store, SSE)."""

    def job_started(self, job_key: str, name: str) -> None: ...

    def step_started(self, job_key: str, step_key: str, name: str) -> None: ...

    def output(self, job_key: str, step_key: str, lines: list[str]) -> None: ...

    def step_finished(self, job_key: str, result: StepResult) -> None: ...

    def job_finished(self, result: JobResult) -> None: ...
