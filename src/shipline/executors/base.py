"""The one protocol every executor implements, and its contract.

An executor runs the processes of one job's steps somewhere: directly on this machine
(`shell`), inside a bubblewrap sandbox (`sandbox`), or in a container. The runner drives it
in this order, for each job:

    setup(job)                      once, before the first step
    start(job, step) -> handle      per step; the process is running when it returns
    tail(handle)                    the step's output (stdout and stderr merged), as chunks
                                    of bytes, until the process and its children close it
    wait(handle) -> StepExit        the exit, once the process is gone
    kill(handle)                    at any time: ends the step's whole process group
    adopt(job)                      after the runner itself wrote into the job's
                                    directories (a built-in action): what it wrote
                                    becomes the steps' to change
    destroy(job)                    once, at the end, whatever happened before
    describe(job) -> lines          what isolation the job's steps get, for the job's log

Contract (checked by `tests/contract/test_executor_contract.py` for every implementation):
- `setup` creates the job's directories and is idempotent.
- `start` never passes `StepProcess.env` values on a command line; secrets travel only in
  the environment of the step's own process.
- Output chunks are delivered in order, without loss, as soon as they are read; a chunk may
  end in the middle of a line (consumers re-assemble lines).
- `wait` returns after the process has exited; `timeout` (seconds) ends the process group
  and reports `timed_out=True`; `kill` ends it and reports `cancelled=True`. Neither leaves
  a child process behind, even one that ignores SIGTERM (SIGKILL follows after
  `kill_grace` seconds).
- `kill` and `destroy` are safe to call more than once, and `destroy` is safe even when
  `setup` or `start` failed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Isolation:
    """What a job's steps may use: the network, memory (bytes) and processes (at once).

    None means no limit of the job's own. An executor that cannot enforce a field says so
    in `describe`; none silently claims to.
    """

    network: bool = True
    memory: int | None = None
    processes: int | None = None


@dataclass(frozen=True, slots=True)
class JobEnv:
    """Where a job lives on the machine that runs it.

    `root` holds everything of the job: `workspace` (GITHUB_WORKSPACE), `temp`
    (RUNNER_TEMP, also where step scripts and command files go) and `tool_cache`.
    `isolation` is what the runner's policy and the job's `sandbox:` key allow its steps.
    `event` is the event payload file (GITHUB_EVENT_PATH) its steps may read, if any.
    `processes` is how many step processes the job starts at most, when the runner knows
    (a job of `run` steps only: one per step); an executor may spare a job of one step
    machinery that only pays off across steps (the sandbox's per-job launcher).
    `remove`: `destroy` removes `root` and all in it (a server's runner, whose jobs leave
    nothing behind), with its own clean-up.
    """

    key: str
    root: Path
    workspace: Path
    temp: Path
    tool_cache: Path
    isolation: Isolation = Isolation()
    event: Path | None = None
    processes: int | None = None
    remove: bool = False


@dataclass(frozen=True, slots=True)
class StepProcess:
    """One process to run for a step: argv, its whole environment, its directory."""

    step_key: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: Path
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class StepExit:
    """How a step's process ended; `reason` says why when a limit of the job ended it
    (the memory limit's out-of-memory kill, the process limit refusing forks)."""

    exit_code: int
    timed_out: bool = False
    cancelled: bool = False
    reason: str | None = None


@dataclass(slots=True)
class StepHandle:
    """A running step, as returned by `Executor.start`; `native` is the executor's own."""

    step_key: str
    native: object = None
    extra: dict[str, object] = field(default_factory=dict)


class Executor(Protocol):
    """Runs step processes of jobs; see the module docstring for the call order."""

    name: str

    async def setup(self, job: JobEnv) -> None: ...

    async def start(self, job: JobEnv, process: StepProcess) -> StepHandle: ...

    def tail(self, handle: StepHandle) -> AsyncIterator[bytes]: ...

    async def wait(self, handle: StepHandle) -> StepExit: ...

    async def kill(self, handle: StepHandle) -> None: ...

    async def adopt(self, job: JobEnv) -> None: ...

    async def destroy(self, job: JobEnv) -> None: ...

    def describe(self, job: JobEnv) -> list[str]: ...
