"""What `ShellExecutor` does beyond the executor contract: processes on this machine."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TypeVar

import pytest

from shipline.executors.base import JobEnv, StepExit, StepHandle, StepProcess
from shipline.executors.shell import ShellExecutor

T = TypeVar("T")
FOREVER = 60
LIMIT = 20


def run_bounded(coro: Coroutine[object, object, T]) -> T:
    """Run a scenario; one that hangs fails after LIMIT seconds, before any step's FOREVER."""
    return asyncio.run(asyncio.wait_for(coro, LIMIT))


@pytest.fixture
def executor() -> ShellExecutor:
    return ShellExecutor(kill_grace=0.5)


@pytest.fixture
def job(tmp_path: Path) -> JobEnv:
    root = tmp_path / "job"
    return JobEnv("job-1", root, root / "workspace", root / "temp", root / "tool_cache")


def step(
    job: JobEnv, *argv: str, timeout: float | None = None, cwd: Path | None = None
) -> StepProcess:
    return StepProcess(
        step_key="step",
        argv=argv,
        env={"PATH": os.environ["PATH"]},
        cwd=cwd or job.workspace,
        timeout=timeout,
    )


def in_job(executor: ShellExecutor, job: JobEnv, body: Callable[[], Awaitable[T]]) -> T:
    async def scenario() -> T:
        await executor.setup(job)
        try:
            return await body()
        finally:
            await executor.destroy(job)

    return run_bounded(scenario())


async def collect(executor: ShellExecutor, handle: StepHandle) -> list[bytes]:
    return [chunk async for chunk in executor.tail(handle)]


async def run_step(
    executor: ShellExecutor, job: JobEnv, process: StepProcess
) -> tuple[bytes, StepExit]:
    handle = await executor.start(job, process)
    output = b"".join(await collect(executor, handle))
    return output, await executor.wait(handle)


async def read_until(chunks: AsyncIterator[bytes], marker: bytes) -> bytes:
    seen = b""
    while marker not in seen:
        seen += await anext(chunks)
    return seen


def running(pid: int) -> bool:
    """Whether `pid` still runs; zombies do not (orphans stay zombies where PID 1 does not
    reap them)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(b")") + 2 :][:1] not in (b"Z", b"X")


@pytest.mark.parametrize(("script", "code"), [("kill -KILL $$", 137), ("kill -TERM $$", 143)])
def test_a_signal_death_reports_128_plus_the_signal(
    executor: ShellExecutor, job: JobEnv, script: str, code: int
) -> None:
    _, exit_ = in_job(executor, job, lambda: run_step(executor, job, step(job, "sh", "-c", script)))

    assert exit_ == StepExit(exit_code=code)


def test_stdin_is_empty(executor: ShellExecutor, job: JobEnv) -> None:
    output, exit_ = in_job(
        executor, job, lambda: run_step(executor, job, step(job, "cat", timeout=5))
    )

    assert output == b""
    assert exit_ == StepExit(exit_code=0)


def test_the_step_runs_in_its_directory_and_in_a_session_of_its_own(
    executor: ShellExecutor, job: JobEnv
) -> None:
    # Fields 5 and 6 of /proc/PID/stat are the process group and the session.
    script = "pwd; echo $$; cut -d' ' -f5,6 /proc/$$/stat"

    output, _ = in_job(
        executor, job, lambda: run_step(executor, job, step(job, "sh", "-c", script))
    )

    cwd, pid, group_and_session = output.decode().splitlines()
    assert Path(cwd).resolve() == job.workspace.resolve()
    assert group_and_session == f"{pid} {pid}"


def test_output_comes_in_large_chunks_not_lines(executor: ShellExecutor, job: JobEnv) -> None:
    async def body() -> list[bytes]:
        handle = await executor.start(job, step(job, "seq", "200000"))
        chunks = await collect(executor, handle)
        await executor.wait(handle)
        return chunks

    chunks = in_job(executor, job, body)

    assert b"".join(chunks).count(b"\n") == 200_000
    assert max(len(c) for c in chunks) <= 65536
    assert len(chunks) < 2000  # 200,000 lines: a reader per line would yield far more


def test_a_file_that_is_not_executable_exits_126(executor: ShellExecutor, job: JobEnv) -> None:
    async def body() -> tuple[bytes, StepExit]:
        script = job.temp / "step.sh"
        script.write_text("echo hi\n")
        return await run_step(executor, job, step(job, str(script)))

    output, exit_ = in_job(executor, job, body)

    assert (
        output == f"shipline: cannot start step: {job.temp}/step.sh: Permission denied\n".encode()
    )
    assert exit_ == StepExit(exit_code=126)


def test_a_missing_working_directory_is_named(executor: ShellExecutor, job: JobEnv) -> None:
    missing = job.workspace / "nowhere"
    process = step(job, "true", cwd=missing)

    output, exit_ = in_job(executor, job, lambda: run_step(executor, job, process))

    assert output == f"shipline: cannot start step: {missing}: No such file or directory\n".encode()
    assert exit_ == StepExit(exit_code=127)


def test_the_step_exits_even_if_a_background_child_holds_its_output(
    executor: ShellExecutor, job: JobEnv
) -> None:
    script = f"sleep {FOREVER} & echo $! > child.pid; exit 4"

    async def scenario() -> tuple[StepExit, float, bool, list[bytes]]:
        await executor.setup(job)
        began = time.monotonic()
        handle = await executor.start(job, step(job, "sh", "-c", script, timeout=FOREVER))
        chunks = asyncio.create_task(collect(executor, handle))
        exit_ = await executor.wait(handle)
        took = time.monotonic() - began
        # The child keeps the pipe open, so the output has not ended ...
        still_open = not chunks.done()
        await executor.destroy(job)
        # ... until destroy ends the child.
        return exit_, took, still_open, await chunks

    exit_, took, still_open, chunks = run_bounded(scenario())

    assert exit_ == StepExit(exit_code=4)
    assert took < FOREVER / 2
    assert still_open
    assert chunks == []
    assert not running(int((job.workspace / "child.pid").read_text()))


def test_sigkill_follows_the_grace_for_a_step_that_ignores_sigterm(
    executor: ShellExecutor, job: JobEnv
) -> None:
    async def body() -> StepExit:
        handle = await executor.start(
            job, step(job, "sh", "-c", f"trap '' TERM; echo ready; sleep {FOREVER}")
        )
        await read_until(executor.tail(handle), b"ready")
        await executor.kill(handle)
        return await executor.wait(handle)

    assert in_job(executor, job, body) == StepExit(exit_code=137, cancelled=True)


def test_a_stopped_step_still_gets_sigterm(executor: ShellExecutor, job: JobEnv) -> None:
    async def body() -> StepExit:
        handle = await executor.start(
            job, step(job, "sh", "-c", f"echo ready; kill -STOP $$; sleep {FOREVER}")
        )
        await read_until(executor.tail(handle), b"ready")
        await asyncio.sleep(0.05)  # let it stop
        await executor.kill(handle)
        return await executor.wait(handle)

    # 143 (SIGTERM), not 137: SIGCONT let it act on SIGTERM before the grace ran out.
    assert in_job(executor, job, body) == StepExit(exit_code=143, cancelled=True)


def test_a_handle_of_another_executor_is_refused(executor: ShellExecutor) -> None:
    with pytest.raises(TypeError, match="not made by ShellExecutor"):
        run_bounded(executor.wait(StepHandle(step_key="step", native=object())))


def test_an_empty_argv_is_a_bug_of_the_caller(executor: ShellExecutor, job: JobEnv) -> None:
    async def body() -> None:
        await executor.start(job, step(job))

    with pytest.raises(ValueError, match="empty argv"):
        in_job(executor, job, body)
