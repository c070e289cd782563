"""Attacks on the `sandbox` executor, with real bubblewrap sandboxes and real processes.

Each test runs a step that tries something a build step must not manage (see
`../shared/SECURITY-CASES.md`, cases 17, 19, 26-28) and asserts that it fails. Most need
the runner to be root, as runners here and on CI are: that is the case that matters.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipline.executors.base import JobEnv, StepExit, StepProcess
from shipline.executors.sandbox import SandboxExecutor, probe

REASON = probe()
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="the runner runs as root here")
PATH = "/usr/local/bin:/usr/bin:/bin"


def make_job(base: Path, key: str) -> JobEnv:
    root = base / key
    return JobEnv(key, root, root / "workspace", root / "temp", root / "tool_cache")


def sandboxed(
    job: JobEnv, script: str, *, network: bool = True, timeout: float | None = None
) -> tuple[str, StepExit]:
    """Run `script` as one sandboxed step of `job` (setup, step, destroy)."""
    executor = SandboxExecutor(network=network, kill_grace=0.5)

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
        "ls /proc | grep -c '^[0-9]' ; tr '\\0' ' ' < /proc/1/cmdline; echo;"
        f" test -e /proc/{os.getpid()}/environ && echo runner visible || echo no runner",
    )

    count, cmdline, runner = output.splitlines()
    assert exit_.exit_code == 0
    assert int(count) <= 4  # bwrap's init, sh, ls, grep
    assert cmdline.startswith("bwrap ")
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
