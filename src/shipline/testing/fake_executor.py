"""`FakeExecutor`: the executor contract in memory, for tests of the code that drives it.

No process ever runs. A test scripts what each step does (`FakeStep`), then reads what the
code under test asked for (`FakeExecutor.started`, `FakeExecutor.calls`).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from shipline.executors.base import JobEnv, StepExit, StepHandle, StepProcess
from shipline.executors.shell import remove_job_dir

# What a process ended by SIGTERM reports (128 + 15), as the real executors do.
KILLED_EXIT_CODE = 143
_FAKE_EXIT = re.compile(rb"#fake exit (\d+)\s*\Z")


@dataclass(frozen=True, slots=True)
class FakeStep:
    """What one fake step does: print `output` (or `chunks`, one by one), run for
    `delay` seconds, then exit with `exit_code`.

    The output is available as soon as the step starts. A step killed, or whose `timeout`
    is shorter than `delay`, ends early with exit code 143, as if by SIGTERM.
    """

    output: bytes = b""
    exit_code: int = 0
    delay: float = 0.0
    chunks: list[bytes] | None = None


def default_script(process: StepProcess) -> FakeStep:
    """Run nothing and exit 0, unless an argument names a file whose first line is
    `#fake exit N` (a comment to a shell): then exit N.

    This lets one step script serve a real and a fake executor alike: `sh step.sh`, with
    `#fake exit 3` and `exit 3` in `step.sh`, exits 3 with either.
    """
    for arg in process.argv:
        code = _fake_exit_of(process.cwd / arg)
        if code is not None:
            return FakeStep(exit_code=code)
    return FakeStep()


def _fake_exit_of(path: Path) -> int | None:
    try:
        with path.open("rb") as f:
            first = f.readline(256)
    except (OSError, ValueError):  # not a readable file (ValueError: NUL in the name)
        return None
    match = _FAKE_EXIT.match(first)
    return int(match.group(1)) if match else None


@dataclass(slots=True, eq=False)
class _FakeRun:
    step: FakeStep
    done: asyncio.Event = field(default_factory=asyncio.Event)
    kill_requested: asyncio.Event = field(default_factory=asyncio.Event)
    exit: StepExit | None = None
    life: asyncio.Task[None] | None = None


class FakeExecutor:
    """An `Executor` that runs no process: each step does what `script` returns for it.

    `script` maps the started `StepProcess` to a `FakeStep`; without one, `default_script`
    applies. `setup` creates the job's directories, as real executors do, so code that
    writes step scripts into `job.temp` works unchanged.

    Records, for assertions: `started`, every `StepProcess` in order; `calls`, every call
    as `"<method>:<key>"`, the key being the job's for `setup`/`destroy` and the step's
    for the others (e.g. `["setup:j1", "start:build", "tail:build", "wait:build",
    "destroy:j1"]`).
    """

    name = "fake"

    def __init__(self, script: Callable[[StepProcess], FakeStep] | None = None) -> None:
        self.script = script if script is not None else default_script
        self.started: list[StepProcess] = []
        self.calls: list[str] = []
        self._runs: dict[str, list[_FakeRun]] = {}

    async def setup(self, job: JobEnv) -> None:
        self.calls.append(f"setup:{job.key}")
        for path in (job.root, job.workspace, job.temp, job.tool_cache):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        job.root.chmod(0o700)
        job.temp.chmod(0o700)

    async def start(self, job: JobEnv, process: StepProcess) -> StepHandle:
        self.calls.append(f"start:{process.step_key}")
        self.started.append(process)
        run = _FakeRun(step=self.script(process))
        run.life = asyncio.create_task(_live(run, process.timeout))
        self._runs.setdefault(job.key, []).append(run)
        return StepHandle(step_key=process.step_key, native=run)

    async def tail(self, handle: StepHandle) -> AsyncIterator[bytes]:
        self.calls.append(f"tail:{handle.step_key}")
        run = _run_of(handle)
        step = run.step
        for chunk in step.chunks if step.chunks is not None else [step.output]:
            if chunk:
                yield chunk
        # Like a pipe, the output ends when the process does.
        await run.done.wait()

    async def wait(self, handle: StepHandle) -> StepExit:
        self.calls.append(f"wait:{handle.step_key}")
        run = _run_of(handle)
        await run.done.wait()
        assert run.exit is not None
        return run.exit

    async def kill(self, handle: StepHandle) -> None:
        self.calls.append(f"kill:{handle.step_key}")
        await _kill(_run_of(handle))

    async def adopt(self, job: JobEnv) -> None:
        self.calls.append(f"adopt:{job.key}")

    def describe(self, job: JobEnv) -> list[str]:
        return ["Executor fake: no process runs."]

    async def destroy(self, job: JobEnv) -> None:
        self.calls.append(f"destroy:{job.key}")
        for run in list(self._runs.get(job.key, [])):
            await _kill(run)
        self._runs.pop(job.key, None)
        if job.remove:
            await asyncio.to_thread(remove_job_dir, job.root)


async def _live(run: _FakeRun, timeout: float | None) -> None:
    """The fake process: runs `delay` seconds unless killed or timed out first."""
    delay = run.step.delay
    limit = delay if timeout is None else min(delay, timeout)
    try:
        await asyncio.wait_for(run.kill_requested.wait(), limit)
    except TimeoutError:
        if timeout is not None and delay > timeout:
            run.exit = StepExit(exit_code=KILLED_EXIT_CODE, timed_out=True)
        else:
            run.exit = StepExit(exit_code=run.step.exit_code)
    else:
        run.exit = StepExit(exit_code=KILLED_EXIT_CODE, cancelled=True)
    run.done.set()


async def _kill(run: _FakeRun) -> None:
    if not run.done.is_set():
        run.kill_requested.set()
    await run.done.wait()


def _run_of(handle: StepHandle) -> _FakeRun:
    if not isinstance(handle.native, _FakeRun):
        raise TypeError(f"handle of step {handle.step_key!r} was not made by FakeExecutor")
    return handle.native
