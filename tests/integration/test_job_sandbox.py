"""One sandbox per job: the `sandbox` executor's launcher, with real bubblewrap sandboxes.

The steps of a job run one after the other as fresh processes in the job's sandbox (as in
a job container): they share its /tmp, home and background processes, and nothing of it
survives the job. What steps must not see (other jobs, the host, the runner) is held by
`test_sandbox_attacks.py`; here: what the launcher must keep true.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from shipline.executors.base import JobEnv, StepExit, StepProcess
from shipline.executors.sandbox import STEP_UID, SandboxExecutor, probe
from tests.integration.test_sandbox_attacks import PATH, host_pids_with, make_job

REASON = probe()
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="the runner runs as root here")
T = TypeVar("T")


@pytest.fixture
def job(tmp_path: Path) -> JobEnv:
    return make_job(tmp_path / "runs", "job-a")


async def step(
    executor: SandboxExecutor, job: JobEnv, script: str, **env: str
) -> tuple[str, StepExit]:
    process = StepProcess("s", ("sh", "-c", script), {"PATH": PATH, **env}, job.workspace)
    handle = await executor.start(job, process)
    output = b"".join([chunk async for chunk in executor.tail(handle)])
    return output.decode(errors="replace"), await executor.wait(handle)


def in_job(executor: SandboxExecutor, job: JobEnv, body: Callable[[], Awaitable[T]]) -> T:
    async def scenario() -> T:
        await executor.setup(job)
        try:
            return await body()
        finally:
            await executor.destroy(job)

    return asyncio.run(asyncio.wait_for(scenario(), 60))


def test_steps_share_the_jobs_sandbox_and_nothing_outlives_the_job(job: JobEnv) -> None:
    executor = SandboxExecutor(kill_grace=0.5)
    marker = secrets.token_hex(8)
    seen: list[list[int]] = []

    async def body() -> list[str]:
        first, _ = await step(
            executor,
            job,
            f"echo one > /tmp/shared; echo home > $HOME/h; M={marker} sleep 60 > /dev/null 2>&1 &"
            " echo $!",
        )
        second, _ = await step(executor, job, "cat /tmp/shared $HOME/h")
        third, _ = await step(executor, job, f"kill -0 {first.strip()} && echo alive")
        seen.append(list(host_pids_with(f"M={marker}")))
        return [first, second, third]

    _, second, third = in_job(executor, job, body)

    assert "one sandbox per job" in executor.describe(job)[0]
    assert second == "one\nhome\n"
    assert third == "alive\n"  # a background process of step 1, as in a job container
    assert len(seen[0]) == 1
    assert list(host_pids_with(f"M={marker}")) == []  # ended with the job's sandbox


def test_a_steps_environment_is_on_no_command_line_and_not_in_the_launcher(
    job: JobEnv,
) -> None:
    secret = "token-" + secrets.token_hex(12)
    # More than one message of the launcher's protocol (one variable may hold 128 KiB).
    big = {f"BIG{i}": "x" * 100_000 for i in range(3)}
    executor = SandboxExecutor(kill_grace=0.5)
    # The step's parent is the launcher: its environment holds no step's.
    script = (
        'echo "big=${#BIG0} ${#BIG1} ${#BIG2}"; cat /proc/[0-9]*/cmdline | tr "\\0" " "; echo;'
        " tr '\\0' ' ' < /proc/$PPID/environ; echo; echo end"
    )

    output, exit_ = in_job(executor, job, lambda: step(executor, job, script, TOKEN=secret, **big))

    assert exit_.exit_code == 0
    assert output.startswith("big=100000 100000 100000\n")
    assert secret not in output
    launcher_environ = output.splitlines()[-2]
    assert launcher_environ.startswith("PATH=")
    assert "BIG0" not in launcher_environ
    assert output.endswith("end\n")


def test_the_next_step_gets_a_new_sandbox_when_a_step_killed_the_launcher(
    job: JobEnv,
) -> None:
    executor = SandboxExecutor(kill_grace=0.5)

    async def body() -> tuple[StepExit, str, StepExit]:
        _, killed = await step(executor, job, "echo x > /tmp/old; kill -KILL $PPID; sleep 30")
        output, after = await step(executor, job, "cat /tmp/old; id -u")
        return killed, output, after

    killed, output, after = in_job(executor, job, body)

    assert killed.exit_code == 137
    assert after.exit_code == 0
    assert "No such file" in output  # a fresh sandbox: the old one's /tmp went with it


def test_without_a_launcher_each_step_runs_in_a_sandbox_of_its_own(job: JobEnv) -> None:
    broken = SandboxExecutor(kill_grace=0.5, launcher="/bin/false")
    none = SandboxExecutor(kill_grace=0.5, launcher=None)

    async def twice(executor: SandboxExecutor) -> list[str]:
        first, one = await step(executor, job, "id -u; echo t > /tmp/t")
        second, two = await step(executor, job, "cat /tmp/t 2>/dev/null")
        assert (one.exit_code, two.exit_code) == (0, 1)
        return [first, second]

    first, second = in_job(broken, job, lambda: twice(broken))
    quiet, _ = in_job(none, job, lambda: twice(none))

    assert first.startswith("shipline: this step runs in a sandbox of its own: ")
    assert "launcher failed" in first
    assert "one sandbox per step (the job sandbox's launcher failed" in broken.describe(job)[0]
    assert second == ""  # a sandbox per step: nothing of step 1's /tmp
    assert not quiet.startswith("shipline:")
    want = str(STEP_UID) if os.geteuid() == 0 else str(os.geteuid())
    assert want in first.splitlines() and want in quiet.splitlines()


def test_a_job_of_one_step_gets_a_sandbox_of_its_own_and_no_launcher(job: JobEnv) -> None:
    """`JobEnv.processes == 1`: the step's own sandbox is the job's (same isolation, no
    launcher started, nothing said before the step's output); a job of more steps, or
    whose count is unknown, gets the launcher."""
    from dataclasses import replace

    single = replace(job, processes=1)
    executor = SandboxExecutor(kill_grace=0.5)

    async def body() -> tuple[str, StepExit]:
        out = await step(executor, single, "id -u; echo $HOME; ls /proc | grep -c '^[0-9]'")
        assert executor._sandboxes == {}  # no launcher was started for it
        return out

    out, ended = in_job(executor, single, body)

    assert ended.exit_code == 0
    uid, home, processes = out.split()
    assert uid == (str(STEP_UID) if os.geteuid() == 0 else str(os.geteuid()))
    assert home == str(single.root / "home")
    assert int(processes) <= 4  # its own PID namespace: the sandbox's init, sh, ls, grep
    assert "one sandbox for the job's one step" in executor.describe(single)[0]
    for other in (replace(job, processes=2), job):
        assert "one sandbox per job" in executor.describe(other)[0]


@as_root
def test_a_workspace_of_many_files_is_not_walked_per_step(
    job: JobEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    executor = SandboxExecutor(kill_grace=0.5)
    walks: list[str] = []
    real_fwalk = os.fwalk

    def counting_fwalk(top: str | Path = ".", *args: object, **kwargs: object) -> object:
        walks.append(str(top))
        return real_fwalk(top, *args, **kwargs)  # type: ignore[arg-type]

    async def body() -> list[tuple[str, StepExit]]:
        # As a checkout does: the runner (root) writes many files, some private to it.
        for d in range(20):
            folder = job.workspace / f"d{d}"
            folder.mkdir()
            for f in range(150):
                (folder / f"f{f}.txt").write_text("x\n")
        private = job.workspace / "private.txt"
        private.write_text("runner's\n")
        private.chmod(0o600)
        await executor.adopt(job)  # what the runner does after a built-in action
        monkeypatch.setattr(os, "fwalk", counting_fwalk)
        results = [
            await step(executor, job, f"echo step{i} >> d{i}/f0.txt; echo more >> private.txt")
            for i in range(5)
        ]
        (job.temp / "runner-note").write_text("written by the runner\n")
        (job.temp / "runner-note").chmod(0o600)
        results.append(await step(executor, job, f"cat {job.temp}/runner-note"))
        return results

    results = in_job(executor, job, body)

    assert [exit_.exit_code for _, exit_ in results] == [0] * 6
    assert results[-1][0] == "written by the runner\n"  # new temp entries: given per step
    assert walks == [str(p) for p in (job.workspace, job.temp, job.tool_cache, job.root / "home")]
    assert (job.workspace / "private.txt").read_text() == "runner's\n" + "more\n" * 5
    assert (job.workspace / "d4" / "f0.txt").read_text() == "x\nstep4\n"
    # Handed back to the runner at the end of the job (one walk: the four above).
    info = (job.workspace / "d0" / "f1.txt").stat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode) & 0o200) == (os.geteuid(), 0o200)


def test_a_step_gets_default_signal_dispositions_and_a_missing_program_says_so(
    job: JobEnv,
) -> None:
    # The launcher is Python, which ignores SIGPIPE for itself: its steps must not inherit
    # that (`yes | head` would then end with an error instead of quietly).
    executor = SandboxExecutor(kill_grace=0.5)
    script = job.workspace / "not-executable.sh"

    async def body() -> list[tuple[str, StepExit]]:
        script.write_text("echo never\n")
        piped = await step(executor, job, "bash -c 'yes | head -n 1; echo ${PIPESTATUS[0]}'")
        handle = await executor.start(
            job, StepProcess("s", ("./not-executable.sh",), {"PATH": PATH}, job.workspace)
        )
        output = b"".join([chunk async for chunk in executor.tail(handle)])
        return [piped, (output.decode(), await executor.wait(handle))]

    piped, refused = in_job(executor, job, body)

    assert piped[0] == "y\n141\n"
    assert refused[0] == "shipline: cannot start step: ./not-executable.sh: Permission denied\n"
    assert refused[1] == StepExit(exit_code=126)


@as_root
def test_a_job_gets_the_cgroups_of_the_limits_it_has_and_they_go_with_it(job: JobEnv) -> None:
    """cgroup v1: a job limited in processes only gets a pids cgroup (no memory one to make
    and remove); a job with both gets both; none is left once the job ends."""
    from dataclasses import replace

    from shipline.executors.base import Isolation
    from shipline.executors.limits import Limiter

    limiter = Limiter("auto")
    hierarchy = limiter.hierarchy
    if hierarchy is None or hierarchy.version != 1:
        pytest.skip("needs cgroup v1 (separate memory and pids hierarchies)")
    for isolation, controllers in (
        (Isolation(processes=64), ["pids"]),
        (Isolation(memory=256 * 1024 * 1024, processes=64), ["memory", "pids"]),
    ):
        cgroup = limiter.prepare(job.key, isolation)
        assert cgroup is not None
        roots = {"memory": hierarchy.memory, "pids": hierarchy.pids}
        assert [d.parent for d in cgroup.directories] == [roots[c] for c in controllers]
        assert all(d.is_dir() for d in cgroup.directories)
        assert cgroup.counters() == (0, 0)
        cgroup.release()
        assert not any(d.exists() for d in cgroup.directories)

    executor = SandboxExecutor(kill_grace=0.5)
    limited = replace(job, isolation=Isolation(processes=64), processes=1)
    out, ended = in_job(executor, limited, lambda: step(executor, limited, "echo ok"))
    assert (out, ended.exit_code) == ("ok\n", 0)
