"""What the user wrote in a workflow file, as typed, frozen models.

These are the `*Spec` forms: values that may hold `${{ }}` expressions stay strings here and
are evaluated by the engine at run time. Each model keeps the line and column it came from,
so a run-time error can point at the YAML.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# A structured YAML value (matrix, `with`, inputs defaults): plain JSON-like data.
Data = object


@dataclass(frozen=True, slots=True)
class Pos:
    """Where something was written: 1-based line and column."""

    line: int = 0
    col: int = 0


@dataclass(frozen=True, slots=True)
class RefFilters:
    """`branches`, `tags`, `paths` filters of a push or pull_request trigger (None: absent)."""

    branches: tuple[str, ...] | None = None
    branches_ignore: tuple[str, ...] | None = None
    tags: tuple[str, ...] | None = None
    tags_ignore: tuple[str, ...] | None = None
    paths: tuple[str, ...] | None = None
    paths_ignore: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class EventTrigger:
    """One event under `on:` with its activity types and filters."""

    name: str
    types: tuple[str, ...] | None = None
    filters: RefFilters = field(default_factory=RefFilters)


@dataclass(frozen=True, slots=True)
class DispatchInput:
    """A typed input of `workflow_dispatch`."""

    name: str
    type: str = "string"  # string | boolean | choice | number | environment
    description: str = ""
    required: bool = False
    default: Data = None
    options: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Triggers:
    """The `on:` section."""

    events: tuple[EventTrigger, ...] = ()
    dispatch_inputs: tuple[DispatchInput, ...] = ()
    schedules: tuple[str, ...] = ()

    def get(self, name: str) -> EventTrigger | None:
        for event in self.events:
            if event.name == name:
                return event
        return None


@dataclass(frozen=True, slots=True)
class RunDefaults:
    """`defaults.run`: shell and working directory for `run` steps."""

    shell: str | None = None
    working_directory: str | None = None


@dataclass(frozen=True, slots=True)
class Concurrency:
    """`concurrency`: a group name (may hold expressions) and cancel-in-progress."""

    group: str
    cancel_in_progress: bool | str = False


@dataclass(frozen=True, slots=True)
class SandboxRequest:
    """`jobs.<id>.sandbox` (a Shipline extension): limits a job asks for; None where it
    asks nothing. Only ever tightens the runner's policy."""

    network: bool | None = None
    memory: int | None = None
    processes: int | None = None


@dataclass(frozen=True, slots=True)
class EnvironmentRef:
    """`environment`: the deploy environment a job targets."""

    name: str
    url: str | None = None


@dataclass(frozen=True, slots=True)
class StepSpec:
    """One step: either `run` (a script) or `uses` (an action) with its options.

    `index` is the step's position in its job (0-based); `key` its id or `__<index>`.
    """

    index: int
    id: str | None = None
    name: str | None = None
    if_: str | None = None
    run: str | None = None
    uses: str | None = None
    with_: tuple[tuple[str, str], ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    shell: str | None = None
    working_directory: str | None = None
    continue_on_error: bool | str = False
    timeout_minutes: float | str | None = None
    pos: Pos = field(default_factory=Pos)
    run_pos: Pos = field(default_factory=Pos)

    @property
    def key(self) -> str:
        return self.id if self.id else f"__{self.index}"

    def display_name(self) -> str:
        """The step's name as GitHub shows it when `name` is absent."""
        if self.name:
            return self.name
        if self.uses:
            return f"Run {self.uses}"
        first = (self.run or "").strip().splitlines()
        return f"Run {first[0]}" if first else f"Step {self.index + 1}"


@dataclass(frozen=True, slots=True)
class StrategySpec:
    """`strategy`: a matrix (data, or an expression string) and its options."""

    matrix: Data = None
    fail_fast: bool | str = True
    max_parallel: int | str | None = None


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One job under `jobs:`."""

    id: str
    name: str | None = None
    needs: tuple[str, ...] = ()
    if_: str | None = None
    runs_on: Data = None
    env: tuple[tuple[str, str], ...] = ()
    defaults: RunDefaults = field(default_factory=RunDefaults)
    outputs: tuple[tuple[str, str], ...] = ()
    timeout_minutes: float | str = 360
    continue_on_error: bool | str = False
    strategy: StrategySpec | None = None
    steps: tuple[StepSpec, ...] = ()
    environment: EnvironmentRef | None = None
    concurrency: Concurrency | None = None
    permissions: Data = None
    uses: str | None = None  # a reusable workflow call (not supported yet: fails the job)
    container: Data = None  # not supported by the shell executor yet: fails the job
    services: Data = None  # not supported yet: fails the job
    sandbox: SandboxRequest | None = None
    # Lets a job of a privileged pull request trigger check out the pull request's head.
    unsafe_execute_untrusted_code: bool = False
    pos: Pos = field(default_factory=Pos)

    def unsupported(self) -> str | None:
        """Why this job cannot run here, or None."""
        if self.uses:
            return (
                f"job {self.id!r} calls the reusable workflow {self.uses!r}; reusable "
                "workflows are not supported yet"
            )
        if self.container:
            return (
                f"job {self.id!r} asks for a container; the shell executor runs steps on "
                "this machine and cannot honour `container:` yet"
            )
        if self.services:
            return f"job {self.id!r} asks for service containers; `services:` is not supported yet"
        return None


@dataclass(frozen=True, slots=True)
class WorkflowSpec:
    """A whole workflow file."""

    file: str
    name: str | None = None
    run_name: str | None = None
    triggers: Triggers = field(default_factory=Triggers)
    env: tuple[tuple[str, str], ...] = ()
    defaults: RunDefaults = field(default_factory=RunDefaults)
    concurrency: Concurrency | None = None
    permissions: Data = None
    jobs: tuple[JobSpec, ...] = ()

    def job(self, job_id: str) -> JobSpec | None:
        for job in self.jobs:
            if job.id == job_id:
                return job
        return None

    @property
    def display_name(self) -> str:
        return self.name or self.file
