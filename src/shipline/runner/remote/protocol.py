"""The messages between a remote runner and the server, in both directions.

Bodies the server receives are strict (`extra="forbid"`, bounded): they come from a machine
the server does not control. `assignment_of` rebuilds the `JobAssignment` a `JobRunner`
runs from the job a server handed out: the workflow is parsed again on the runner from the
text the run was created with, and the job's planned form (key, matrix cell, needs) is
taken as the server decided it.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints

from shipline.domain.records import Trust
from shipline.domain.status import Conclusion, Status
from shipline.plan.compile import PlannedJob
from shipline.plan.events import Event
from shipline.runner.model import JobAssignment
from shipline.spec.models import WorkflowSpec
from shipline.spec.workflow import load_workflow

_PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
Label = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[^\s,]+$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=_PRINTABLE)]
# Long enough for a whole job's wait; servers cap it further.
MAX_WAIT = 60.0
MAX_JOBS = 1024


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterIn(_In):
    """Exchange a registration token for a runner credential."""

    name: Name
    labels: list[Label] = Field(default_factory=list, max_length=64)
    version: Annotated[str, StringConstraints(max_length=64)] = ""
    slots: int = Field(default=1, ge=1, le=1024)


class RegisterOut(BaseModel):
    """The new runner and its credential (shown this once; the server keeps its hash)."""

    id: int
    name: str
    token: str


class JobRequestIn(_In):
    """Ask for a job; the server holds the request up to `wait` seconds for one."""

    labels: list[Label] | None = Field(default=None, max_length=64)
    version: Annotated[str, StringConstraints(max_length=64)] | None = None
    slots: int | None = Field(default=None, ge=1, le=1024)
    wait: float = Field(default=20.0, ge=0, le=MAX_WAIT)


class EventOut(BaseModel):
    name: str
    ref: str
    sha: str
    repository: str
    actor: str
    inputs: dict[str, JsonValue] = Field(default_factory=dict)
    payload: JsonValue = None


class JobOut(BaseModel):
    """A claimed job: everything the runner needs, and the token for this job only.

    `next_seq` and `first_step` are where the runner's log and step numbering start (an
    earlier try's log and steps are kept); `lease_seconds` and `heartbeat_seconds` are
    the server's lease policy.
    """

    job_id: int
    run_id: int
    try_number: int
    token: str
    key: str
    workflow_job: str
    name: str
    matrix: list[tuple[str, JsonValue]] = Field(default_factory=list)
    matrix_index: int = 0
    matrix_total: int = 1
    needs_ids: list[str] = Field(default_factory=list)
    workflow_file: str
    workflow_text: str
    event: EventOut
    github: dict[str, JsonValue]
    needs: dict[str, JsonValue] = Field(default_factory=dict)
    inputs: dict[str, JsonValue] = Field(default_factory=dict)
    # The run's trust class (the runner's sandbox policy depends on it) and the secrets
    # the job references, opened for this claim only: never logged or written by a runner.
    trust: str = "trusted"
    secrets: dict[str, str] = Field(default_factory=dict)
    next_seq: int = 0
    first_step: int = 0
    lease_seconds: float
    heartbeat_seconds: float


class HeartbeatIn(_In):
    """Renew the leases of the runner's jobs; the server answers at once when one of them
    must stop, else after `wait` seconds."""

    jobs: list[int] = Field(default_factory=list, max_length=MAX_JOBS)
    wait: float = Field(default=0.0, ge=0, le=MAX_WAIT)


class HeartbeatOut(BaseModel):
    """`cancel`: jobs to stop (cancelled, their run ended); `lost`: jobs this runner no
    longer holds (its lease ran out): stop them and send nothing more about them."""

    cancel: list[int] = Field(default_factory=list)
    lost: list[int] = Field(default_factory=list)


class LogChunkIn(_In):
    seq: int = Field(ge=0, le=2**31 - 1)
    step: int | None = Field(default=None, ge=0, le=100_000)
    text: Annotated[str, StringConstraints(max_length=4 * 1024 * 1024)]


class LogBatchIn(_In):
    """Log chunks, numbered: a chunk resent after a lost reply is stored once."""

    chunks: list[LogChunkIn] = Field(max_length=1000)


class StepIn(_In):
    """A step started (status in_progress) or ended (completed, with its conclusion)."""

    index: int = Field(ge=0, le=100_000)
    key: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    name: Annotated[str, StringConstraints(max_length=1024)]
    status: Status
    conclusion: Conclusion | None = None
    exit_code: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class ReportIn(_In):
    """What a job did since its last message: log chunks (numbered, stored once) and
    steps (started or ended, in the order they happened), stored in one transaction."""

    chunks: list[LogChunkIn] = Field(default_factory=list, max_length=1000)
    steps: list[StepIn] = Field(default_factory=list, max_length=1000)


# The header of a finish message that asks for the runner's next job: the runner's own
# credential (the job token cannot claim: a step might hold it).
RUNNER_HEADER = "X-Shipline-Runner"


class NextJobIn(_In):
    """With a finish: claim the runner's next job at once, as `POST .../request` with
    `wait=0` would (the runner credential in the `RUNNER_HEADER` header)."""

    labels: list[Label] | None = Field(default=None, max_length=64)
    version: Annotated[str, StringConstraints(max_length=64)] | None = None
    slots: int | None = Field(default=None, ge=1, le=1024)


class FinishIn(ReportIn):
    """How the job ended, with what the runner had not sent yet (its last log chunks and
    steps: for a short job, everything it did), all stored with the end in one
    transaction."""

    conclusion: Conclusion
    outputs: dict[Annotated[str, StringConstraints(max_length=255)], str] = Field(
        default_factory=dict, max_length=1000
    )
    error: Annotated[str, StringConstraints(max_length=65536)] | None = None
    # Ask for the next job in the same request (the answer is then the job, or 204).
    next: NextJobIn | None = None


class ArtifactFileIn(_In):
    path: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    size: int = Field(ge=0)
    mode: int = Field(default=0o644, ge=0, le=0o777)


class ArtifactIn(_In):
    """An artifact whose files' blobs were uploaded first (`PUT .../blobs/{sha256}`)."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    files: list[ArtifactFileIn] = Field(max_length=100_000)
    overwrite: bool = False


class ArtifactFileOut(BaseModel):
    path: str
    sha256: str
    size: int
    mode: int


class ArtifactOut(BaseModel):
    name: str
    job_key: str
    files: list[ArtifactFileOut]


class CacheLookupIn(_In):
    keys: list[Annotated[str, StringConstraints(min_length=1, max_length=512)]] = Field(
        max_length=100
    )
    version: Annotated[str, StringConstraints(max_length=255)]


class CacheSaveIn(_In):
    key: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    version: Annotated[str, StringConstraints(max_length=255)]
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class CacheEntryOut(BaseModel):
    key: str
    version: str
    sha256: str
    size: int


class AssignmentError(ValueError):
    """A job from the server that this runner cannot rebuild (its workflow no longer
    loads here, a version mismatch)."""


class WorkflowCache:
    """Workflows parsed on the runner, by file and text: the jobs of one run (a matrix of
    hundreds of cells) share one parse. The models are frozen, so sharing them is safe."""

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self._parsed: OrderedDict[tuple[str, str], tuple[WorkflowSpec | None, str]] = OrderedDict()

    def load(self, text: str, file: str) -> tuple[WorkflowSpec | None, str]:
        """The workflow, or None and the first problem."""
        key = (file, text)
        found = self._parsed.get(key)
        if found is not None:
            self._parsed.move_to_end(key)
            return found
        spec, diagnostics = load_workflow(text, file)
        first = diagnostics[0].message if diagnostics else "it does not load"
        found = (spec, first)
        self._parsed[key] = found
        while len(self._parsed) > self.size:
            self._parsed.popitem(last=False)
        return found


def assignment_of(job: JobOut, workflows: WorkflowCache | None = None) -> JobAssignment:
    """The `JobAssignment` a `JobRunner` runs, rebuilt from a claimed job (its workflow
    parsed through `workflows` when given)."""
    spec, first = (workflows or WorkflowCache(1)).load(job.workflow_text, job.workflow_file)
    if spec is None:
        raise AssignmentError(f"{job.workflow_file}: {first}")
    found = next((j for j in spec.jobs if j.id == job.workflow_job), None)
    if found is None:
        raise AssignmentError(f"{job.workflow_file}: no job {job.workflow_job!r}")
    planned = PlannedJob(
        key=job.key,
        job_id=job.workflow_job,
        spec=found,
        needs=tuple(job.needs_ids),
        matrix=tuple((k, v) for k, v in job.matrix),
        matrix_index=job.matrix_index,
        matrix_total=job.matrix_total,
    )
    ev = job.event
    event = Event(
        name=ev.name,
        ref=ev.ref,
        sha=ev.sha,
        repository=ev.repository,
        actor=ev.actor,
        inputs=tuple(ev.inputs.items()),
        payload=ev.payload,
    )
    return JobAssignment(
        run_id=str(job.run_id),
        planned=planned,
        workflow=spec,
        event=event,
        github=job.github,
        needs=job.needs,
        inputs=job.inputs,
        trust=Trust(job.trust),
        secrets=job.secrets,
        token=job.token,
    )
