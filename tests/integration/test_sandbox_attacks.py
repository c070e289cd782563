"""Attacks on the `sandbox` executor, with real bubblewrap sandboxes and real processes.

Each test runs a step that tries something a build step must not manage (see
`../shared/SECURITY-CASES.md`, cases 17, 19, 26-28) and asserts that it fails. Most need
the runner to be root, as runners here and on CI are: that is the case that matters.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from shipline.executors.base import Isolation, JobEnv, StepExit, StepProcess
from shipline.executors.sandbox import SandboxExecutor, probe

REASON = probe()
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="the runner runs as root here")
PATH = "/usr/local/bin:/usr/bin:/bin"


def make_job(base: Path, key: str) -> JobEnv:
    root = base / key
    return JobEnv(key, root, root / "workspace", root / "temp", root / "tool_cache")


def sandboxed(
    job: JobEnv,
    script: str,
    *,
    network: bool = True,
    timeout: float | None = None,
    limits: str = "auto",
) -> tuple[str, StepExit]:
    """Run `script` as one sandboxed step of `job` (setup, step, destroy), with the network
    as given and the memory and process limits of `job.isolation`."""
    executor = SandboxExecutor(kill_grace=0.5, limits=limits)
    job = replace(job, isolation=replace(job.isolation, network=network))

    async def scenario() -> tuple[str, StepExit]:
        await executor.setup(job)
        try:
            process = StepProcess("s", ("sh", "-c", script), {"PATH": PATH}, job.workspace, timeout)
            handle = await executor.start(job, process)
            output = b"".join([chunk async for chunk in executor.tail(handle)])
            return output.decode(errors="replace"), await executor.wait(handle)
        finally:
            await executor.destroy(job)

    return asyncio.run(asyncio.wait_for(scenario(), 30))


@pytest.fixture
def job(tmp_path: Path) -> JobEnv:
    return make_job(tmp_path / "runs", "job-a")


@as_root
def test_the_state_dir_and_its_signing_key_are_not_visible(job: JobEnv, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    key = state / "signing.key"
    key.write_text(secrets.token_hex(32))
    key.chmod(0o600)
    public = tmp_path / "elsewhere" / "notes.txt"
    public.parent.mkdir()
    public.write_text("readable on the host\n")
    public.chmod(0o644)

    output, exit_ = sandboxed(job, f"cat {key}; cat {public}; ls {state}; echo end")

    assert exit_.exit_code == 0
    assert key.read_text() not in output
    assert "readable on the host" not in output
    assert output.count("No such file or directory") == 3
    assert output.endswith("end\n")


@as_root
def test_roots_home_is_not_readable() -> None:
    canary = Path("/root") / f".shipline-canary-{secrets.token_hex(4)}"
    canary.write_text("root-only " + secrets.token_hex(16))
    try:
        job = make_job(Path("/tmp") / f"shipline-attack-{secrets.token_hex(4)}", "job")
        output, _ = sandboxed(job, f"id -u; cat {canary}; cat /root/.bashrc; ls /root")
    finally:
        canary.unlink()
    assert output.startswith("65534\n")
    assert "root-only" not in output


def test_another_jobs_workspace_is_not_visible(job: JobEnv, tmp_path: Path) -> None:
    other = make_job(tmp_path / "runs", "job-b")
    other.workspace.mkdir(parents=True)
    (other.workspace / "secret.txt").write_text("job b's file\n")

    output, _ = sandboxed(job, f"ls {other.root}; cat {other.workspace}/secret.txt")

    assert "job b's file" not in output
    assert "No such file or directory" in output


def test_only_the_sandboxs_processes_are_visible(job: JobEnv) -> None:
    output, exit_ = sandboxed(
        job,
        "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done;"
        f" test -e /proc/{os.getpid()}/environ && echo runner visible || echo no runner",
    )

    *commands, runner = output.splitlines()
    assert exit_.exit_code == 0
    assert commands[0].startswith("bwrap ")  # /proc/1: the sandbox's init
    # The init, the job's launcher (python3 reading its program from its stdin), the step's
    # shell and its `tr`s (one per process listed; those of earlier ones have exited).
    sandbox = ("bwrap ", "/usr/bin/python3 -I -S -B - ", "sh -c ", "tr ")
    assert [c for c in commands if c and not c.startswith(sandbox)] == []
    assert runner == "no runner" or os.getpid() < 5


@as_root
def test_writes_outside_the_job_do_not_reach_the_next_job(tmp_path: Path) -> None:
    first = make_job(tmp_path / "runs", "job-1")
    output, _ = sandboxed(
        first,
        "echo x > /usr/bin/shipline-x; echo evil >> $HOME/.bashrc; echo t > /tmp/x;"
        " echo $HOME; ls $HOME/.bashrc /tmp/x",
    )
    assert "/usr/bin/shipline-x" in output  # refused: read-only
    assert not Path("/usr/bin/shipline-x").exists()

    second = make_job(tmp_path / "runs", "job-2")
    later, _ = sandboxed(second, "cat $HOME/.bashrc /tmp/x /usr/bin/shipline-x 2>/dev/null; echo")
    assert later == "\n"
    assert not (first.root / "home").exists()


def test_no_network_means_no_connection_to_the_hosts_loopback(job: JobEnv) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    accepted: list[socket.socket] = []

    def accept() -> None:
        server.settimeout(10)
        with contextlib.suppress(OSError):
            accepted.append(server.accept()[0])

    thread = threading.Thread(target=accept)
    thread.start()
    script = f"exec 3<>/dev/tcp/127.0.0.1/{port} && echo connected || echo refused"
    try:
        offline, _ = sandboxed(job, f"bash -c '{script}'", network=False)
        online, _ = sandboxed(job, f"bash -c '{script}'", network=True)
    finally:
        server.close()
        thread.join()
        for conn in accepted:
            conn.close()

    assert "refused" in offline
    assert "connected" in online


def host_pids_with(marker: str) -> Iterator[int]:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "environ").read_bytes():
                    stat = (entry / "stat").read_bytes()
                    if stat[stat.rfind(b")") + 2 :][:1] not in (b"Z", b"X"):
                        yield int(entry.name)
            except OSError:
                continue


def test_a_step_ignoring_sigterm_is_killed_on_timeout_with_its_grandchildren(
    job: JobEnv,
) -> None:
    marker = secrets.token_hex(8)
    script = (
        f"export M={marker}; trap '' TERM; (sh -c 'trap \"\" TERM; sleep 60' &);"
        " sleep 60 & echo ready; wait"
    )
    began = time.monotonic()

    output, exit_ = sandboxed(job, script, timeout=0.5)

    assert time.monotonic() - began < 20
    assert output == "ready\n"
    assert exit_.timed_out
    assert list(host_pids_with(f"M={marker}")) == []


def limited(job: JobEnv, *, memory: int | None = None, processes: int | None = None) -> JobEnv:
    return replace(job, isolation=Isolation(memory=memory, processes=processes))


@pytest.mark.parametrize("mechanism", ["auto", "rlimit"])
def test_a_memory_hog_is_stopped_by_the_memory_limit(job: JobEnv, mechanism: str) -> None:
    job = limited(job, memory=64 << 20)
    hog = "python3 -c 'x = bytearray(512 << 20); print(\"allocated\")'; echo exit=$?"

    output, _ = sandboxed(job, hog, limits=mechanism)

    assert "allocated" not in output
    assert "exit=0" not in output
    if mechanism == "auto" and SandboxExecutor(limits="auto").limiter.hierarchy is not None:
        # Killed by the kernel (137) or refused memory (MemoryError, 1): either way not 0.
        assert re.search(r"exit=(137|1)\b", output)
    assert subprocess.run(["true"], check=False).returncode == 0  # the runner is unharmed


@as_root
def test_a_fork_bomb_is_stopped_by_the_process_limit(job: JobEnv) -> None:
    job = limited(job, processes=64)
    marker = secrets.token_hex(8)
    bomb = f"export M={marker}; bomb() {{ bomb | bomb & }}; bomb; sleep 30"
    executor = SandboxExecutor(kill_grace=0.5)

    output, exit_ = sandboxed(job, bomb, timeout=3)

    assert exit_.timed_out or exit_.exit_code != 0
    if executor.limiter.hierarchy is not None:
        assert exit_.reason is not None and "process limit (64" in exit_.reason
    else:
        assert "Resource temporarily unavailable" in output
    assert list(host_pids_with(f"M={marker}")) == []
    # The runner can still start processes.
    assert subprocess.run(["true"], check=False).returncode == 0


def test_a_limit_that_did_not_end_the_step_gives_no_reason(job: JobEnv) -> None:
    _, exit_ = sandboxed(limited(job, memory=256 << 20, processes=64), "exit 3")
    assert exit_.exit_code == 3
    assert exit_.reason is None


def test_another_running_jobs_workspace_and_environment_are_not_visible(tmp_path: Path) -> None:
    secret = "job-a-" + secrets.token_hex(12)
    first = make_job(tmp_path / "runs", "job-a")
    second = make_job(tmp_path / "runs", "job-b")
    executor = SandboxExecutor(kill_grace=0.5)
    spy = (
        f"ls {first.workspace}; cat {first.workspace}/notes.txt;"
        " cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n';"
        " ps -eo args 2>/dev/null || true; echo end"
    )

    async def scenario() -> str:
        await executor.setup(first)
        await executor.setup(second)
        (first.workspace / "notes.txt").write_text(secret)
        try:
            running = await executor.start(
                first,
                StepProcess(
                    "a",
                    ("sh", "-c", f"echo started; sleep 20 # {secret}"),
                    {"PATH": PATH, "TOKEN": secret},
                    first.workspace,
                ),
            )
            tail = executor.tail(running)
            assert await anext(tail) == b"started\n"
            spying = await executor.start(
                second, StepProcess("b", ("sh", "-c", spy), {"PATH": PATH}, second.workspace)
            )
            output = b"".join([chunk async for chunk in executor.tail(spying)])
            await executor.wait(spying)
            await executor.kill(running)
            return output.decode(errors="replace")
        finally:
            await executor.destroy(first)
            await executor.destroy(second)

    output = asyncio.run(asyncio.wait_for(scenario(), 30))

    assert output.endswith("end\n")
    assert secret not in output
    assert "No such file or directory" in output
