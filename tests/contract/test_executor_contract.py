"""The executor contract of `shipline.executors.base`, run against every implementation.

Each test describes a step as a real process (argv, env, cwd). Executors that run real
processes run it; the `FakeExecutor` is given, through `when_fake`, the behaviour that
process has, so the code around a step (output, exit, timeout, kill) is held to the same
rules by both.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import stat
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import pytest

from shipline.executors import sandbox
from shipline.executors.base import Executor, JobEnv, StepExit, StepProcess
from shipline.executors.shell import ShellExecutor
from shipline.testing import FakeExecutor, FakeStep

T = TypeVar("T")
KILL_GRACE = 0.5
# Far longer than any test may take: a step still running this long was not ended.
FOREVER = 60
LIMIT = 20


def run_bounded(coro: Coroutine[object, object, T]) -> T:
    """Run a scenario; one that hangs fails after LIMIT seconds, before any step's FOREVER."""
    return asyncio.run(asyncio.wait_for(coro, LIMIT))


@pytest.fixture(params=["shell", "sandbox", "fake"])
def executor(request: pytest.FixtureRequest) -> Iterator[Executor]:
    if request.param == "shell":
        yield ShellExecutor(kill_grace=KILL_GRACE)
    elif request.param == "sandbox":
        reason = sandbox.probe()
        if reason is not None:
            pytest.skip(reason)
        yield sandbox.SandboxExecutor(kill_grace=KILL_GRACE)
    else:
        yield FakeExecutor()


@pytest.fixture
def job(tmp_path: Path) -> JobEnv:
    root = tmp_path / "job"
    return JobEnv(
        key="job-1",
        root=root,
        workspace=root / "workspace",
        temp=root / "temp",
        tool_cache=root / "tool_cache",
    )


def when_fake(executor: Executor, behaviour: FakeStep | Callable[[StepProcess], FakeStep]) -> None:
    """Make a fake executor behave as the test's real process does; others run the process."""
    if isinstance(executor, FakeExecutor):
        if isinstance(behaviour, FakeStep):
            step = behaviour
            executor.script = lambda _process: step
        else:
            executor.script = behaviour


def runs_processes(executor: Executor) -> bool:
    return not isinstance(executor, FakeExecutor)


def step(job: JobEnv, *argv: str, timeout: float | None = None, **env: str) -> StepProcess:
    return StepProcess(
        step_key="step",
        argv=argv,
        env={"PATH": os.environ["PATH"], **env},
        cwd=job.workspace,
        timeout=timeout,
    )


def in_job(executor: Executor, job: JobEnv, body: Callable[[], Awaitable[T]]) -> T:
    """Run `body` between the job's setup and destroy, as a runner does."""

    async def scenario() -> T:
        await executor.setup(job)
        try:
            return await body()
        finally:
            await executor.destroy(job)

    return run_bounded(scenario())


async def run_step(executor: Executor, job: JobEnv, process: StepProcess) -> tuple[bytes, StepExit]:
    """Start a step, read all its output, then wait: a runner's simplest loop."""
    handle = await executor.start(job, process)
    output = b"".join([chunk async for chunk in executor.tail(handle)])
    return output, await executor.wait(handle)


def running(pid: int) -> bool:
    """Whether `pid` is a process that still runs (a zombie does not: where PID 1 does not
    reap orphans, as in many containers, killed orphans stay zombies)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return stat_line[stat_line.rfind(b")") + 2 :][:1] not in (b"Z", b"X")


def pids_in(directory: Path) -> list[int]:
    return [int(p.read_text()) for p in sorted(directory.glob("*.pid"))]


def marked(marker: str) -> list[int]:
    """Pids, as this process sees them, of running processes whose environment holds
    `marker` (a step's own pids may be those of another PID namespace)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if marker.encode() in environ.split(b"\0") and running(int(entry.name)):
                found.append(int(entry.name))
    return found


def stubborn(job: JobEnv) -> tuple[StepProcess, str]:
    """The STUBBORN step, with an environment marker to find its processes by."""
    marker = "SHIPLINE_STUBBORN=" + secrets.token_hex(8)
    name, value = marker.split("=")
    return step(job, "sh", "-c", STUBBORN, **{name: value}), marker


# A step that ignores SIGTERM (so does its child, which inherits that), starts a
# background child, records both pids and says "ready".
STUBBORN = (
    f"trap '' TERM; sleep {FOREVER} & echo $! > child.pid; echo $$ > main.pid; echo ready; wait"
)


async def read_until(chunks: AsyncIterator[bytes], marker: bytes) -> bytes:
    seen = b""
    while marker not in seen:
        seen += await anext(chunks)
    return seen


def test_setup_creates_private_job_directories_and_can_repeat(
    executor: Executor, job: JobEnv
) -> None:
    async def body() -> None:
        await executor.setup(job)

    in_job(executor, job, body)

    for path in (job.root, job.workspace, job.temp, job.tool_cache):
        assert path.is_dir()
    assert stat.S_IMODE(job.root.stat().st_mode) == 0o700
    assert stat.S_IMODE(job.temp.stat().st_mode) == 0o700


@pytest.mark.parametrize("code", [0, 3])
def test_a_steps_exit_code_is_reported(executor: Executor, job: JobEnv, code: int) -> None:
    async def body() -> tuple[bytes, StepExit]:
        script = job.temp / "step.sh"
        script.write_text(f"#fake exit {code}\nexit {code}\n")
        return await run_step(executor, job, step(job, "sh", str(script)))

    _, exit_ = in_job(executor, job, body)

    assert exit_ == StepExit(exit_code=code)


def test_output_arrives_in_order_without_loss(executor: Executor, job: JobEnv) -> None:
    expected = b"".join(b"%d\n" % i for i in range(1, 100_001))
    # Chunks that end in the middle of lines, as reads from a pipe do.
    when_fake(
        executor, FakeStep(chunks=[expected[i : i + 7001] for i in range(0, len(expected), 7001)])
    )

    output, exit_ = in_job(
        executor, job, lambda: run_step(executor, job, step(job, "seq", "100000"))
    )

    assert exit_.exit_code == 0
    assert output.split(b"\n")[:-1] == [b"%d" % i for i in range(1, 100_001)]
    assert output == expected


def test_stdout_and_stderr_arrive_merged_in_order(executor: Executor, job: JobEnv) -> None:
    when_fake(executor, FakeStep(output=b"one\ntwo\nthree\n"))
    process = step(job, "sh", "-c", "echo one; echo two >&2; echo three")

    output, _ = in_job(executor, job, lambda: run_step(executor, job, process))

    assert output == b"one\ntwo\nthree\n"


def test_env_reaches_the_process_and_not_its_command_line(
    executor: Executor, job: JobEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    canary = "canary-" + secrets.token_hex(8)
    # Set in the runner's own environment: the step gets the env it is given, nothing else.
    monkeypatch.setenv("SHIPLINE_TEST_RUNNER_ONLY", "runner-" + secrets.token_hex(8))
    when_fake(
        executor,
        lambda p: FakeStep(
            output=b"\0".join(a.encode() for a in p.argv)
            + b"\n--environ--\n"
            + b"\0".join(f"{k}={v}".encode() for k, v in p.env.items())
        ),
    )
    process = step(
        job,
        "sh",
        "-c",
        'cat /proc/$$/cmdline; printf "\\n--environ--\\n"; cat /proc/$$/environ',
        SHIPLINE_CANARY=canary,
    )

    output, _ = in_job(executor, job, lambda: run_step(executor, job, process))

    cmdline, environ = output.split(b"\n--environ--\n")
    assert canary.encode() not in cmdline
    assert b"SHIPLINE_CANARY" not in cmdline.split(b"\0")  # argv only names it in the script
    assert f"SHIPLINE_CANARY={canary}".encode() in environ.split(b"\0")
    assert b"SHIPLINE_TEST_RUNNER_ONLY" not in environ


def test_timeout_ends_the_step_and_reports_timed_out(executor: Executor, job: JobEnv) -> None:
    when_fake(executor, FakeStep(output=b"started\n", delay=FOREVER))
    process = step(job, "sh", "-c", f"echo started; sleep {FOREVER}", timeout=0.3)
    began = time.monotonic()

    # Output is read to its end before `wait`: the timeout must apply all the same.
    output, exit_ = in_job(executor, job, lambda: run_step(executor, job, process))

    assert time.monotonic() - began < FOREVER / 2
    assert output == b"started\n"
    assert exit_.timed_out
    assert not exit_.cancelled
    assert exit_.exit_code != 0


def test_kill_ends_a_step_that_ignores_sigterm_and_its_background_child(
    executor: Executor, job: JobEnv
) -> None:
    when_fake(executor, FakeStep(output=b"ready\n", delay=FOREVER))

    process, marker = stubborn(job)
    seen: list[int] = []

    async def body() -> tuple[bytes, StepExit]:
        handle = await executor.start(job, process)
        chunks = executor.tail(handle)
        output = await read_until(chunks, b"ready\n")
        seen.extend(marked(marker))
        await executor.kill(handle)
        output += b"".join([chunk async for chunk in chunks])
        return output, await executor.wait(handle)

    output, exit_ = in_job(executor, job, body)

    assert output == b"ready\n"
    assert exit_.cancelled
    assert not exit_.timed_out
    assert_all_ended(executor, job, seen, marker)


def assert_all_ended(executor: Executor, job: JobEnv, seen: list[int], marker: str) -> None:
    """The stubborn step's two processes were seen running, and none runs any more."""
    pids = pids_in(job.workspace)
    if runs_processes(executor):
        assert len(pids) == 2
    if isinstance(executor, sandbox.SandboxExecutor):  # pids of another PID namespace
        assert len(seen) >= 2
        assert marked(marker) == []
    else:
        assert [pid for pid in pids if running(pid)] == []


def test_kill_and_destroy_can_be_called_again(executor: Executor, job: JobEnv) -> None:
    when_fake(executor, FakeStep(delay=FOREVER))

    async def body() -> StepExit:
        handle = await executor.start(job, step(job, "sleep", str(FOREVER)))
        await executor.kill(handle)
        await executor.kill(handle)
        exit_ = await executor.wait(handle)
        await executor.destroy(job)
        await executor.destroy(job)
        await executor.kill(handle)
        return exit_

    exit_ = in_job(executor, job, body)

    assert exit_.cancelled


def test_kill_after_the_step_exited_changes_nothing(executor: Executor, job: JobEnv) -> None:
    async def body() -> StepExit:
        handle = await executor.start(job, step(job, "true"))
        _ = [chunk async for chunk in executor.tail(handle)]
        exit_ = await executor.wait(handle)
        await executor.kill(handle)
        assert await executor.wait(handle) == exit_
        return exit_

    assert in_job(executor, job, body) == StepExit(exit_code=0)


def test_destroy_ends_steps_still_running(executor: Executor, job: JobEnv) -> None:
    when_fake(executor, FakeStep(output=b"ready\n", delay=FOREVER))

    process, marker = stubborn(job)
    seen: list[int] = []

    async def scenario() -> StepExit:
        await executor.setup(job)
        handle = await executor.start(job, process)
        await read_until(executor.tail(handle), b"ready\n")
        seen.extend(marked(marker))
        await executor.destroy(job)
        return await executor.wait(handle)

    exit_ = run_bounded(scenario())

    assert exit_.cancelled
    assert_all_ended(executor, job, seen, marker)


@pytest.mark.parametrize("remove", [False, True])
def test_destroy_removes_the_jobs_directory_when_asked(
    executor: Executor, job: JobEnv, remove: bool
) -> None:
    """A server's runner asks (`remove`): nothing of the job stays, whoever owns it (the
    sandbox's step user wrote into it); else the directories stay the runner's own."""
    job = replace(job, remove=remove)
    when_fake(executor, FakeStep())

    async def body() -> StepExit:
        written = job.workspace / "out" / "file"
        return (
            await run_step(
                executor,
                job,
                step(job, "sh", "-c", f"mkdir -p {written.parent} && echo x > {written}"),
            )
        )[1]

    assert in_job(executor, job, body).exit_code == 0
    assert job.root.exists() is not remove
    if not remove:
        assert all(p.stat().st_uid == os.geteuid() for p in (job.workspace, job.temp))


def test_destroy_is_safe_when_setup_failed_or_never_ran(executor: Executor, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    root = blocker / "job"
    job = JobEnv("job-2", root, root / "workspace", root / "temp", root / "tool_cache")

    async def scenario() -> None:
        with pytest.raises(OSError):
            await executor.setup(job)
        await executor.destroy(job)
        await executor.destroy(JobEnv("job-3", root, root, root, root))

    run_bounded(scenario())


def test_a_missing_program_exits_127_with_a_readable_line(executor: Executor, job: JobEnv) -> None:
    line = b"shipline: cannot start step: shipline-no-such-program: No such file or directory\n"
    when_fake(executor, FakeStep(output=line, exit_code=127))

    output, exit_ = in_job(
        executor, job, lambda: run_step(executor, job, step(job, "shipline-no-such-program"))
    )

    assert output == line
    assert exit_ == StepExit(exit_code=127)
