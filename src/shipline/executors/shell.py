"""The `shell` executor: runs step processes directly on this machine.

Each step runs in a session and process group of its own, so that ending the step ends
everything it started in the background as well. There is no isolation beyond that: a
step sees the machine as the runner's user does. Use the sandbox executor for untrusted
code.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from shipline.executors.base import JobEnv, StepExit, StepHandle, StepProcess

_CHUNK = 65536
# Output read ahead of the consumer before reading pauses: the pipe stays bounded, so a
# step whose output nobody reads waits at its next write.
_READ_AHEAD = 4 * _CHUNK
# Exit codes a POSIX shell reports when a command cannot run: found but not executable,
# and not found (also used for a missing working directory).
_EXIT_NOT_EXECUTABLE = 126
_EXIT_NOT_FOUND = 127
# After SIGKILL processes vanish at once unless stuck in uninterruptible I/O; do not wait
# for those forever.
_KILLED_WAIT = 5.0


class OutputPipe:
    """A step's output pipe, read by the event loop as data arrives.

    Plain `add_reader` on the pipe rather than asyncio's subprocess transport: a step
    costs fewer tasks, futures and loop iterations, which is most of a short step's price.
    """

    def __init__(self, pipe: IO[bytes]) -> None:
        self._pipe = pipe
        self._fd = pipe.fileno()
        os.set_blocking(self._fd, False)
        self._loop = asyncio.get_running_loop()
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._eof = False
        self._reading = False
        self._waiter: asyncio.Future[None] | None = None
        self._resume()

    def _resume(self) -> None:
        if not self._reading and not self._eof:
            self._loop.add_reader(self._fd, self._on_readable)
            self._reading = True

    def _pause(self) -> None:
        if self._reading:
            self._loop.remove_reader(self._fd)
            self._reading = False

    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, _CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if data:
            self._chunks.append(data)
            self._size += len(data)
            if self._size >= _READ_AHEAD:
                self._pause()
        else:
            self._eof = True
            self._pause()
            self._pipe.close()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def read(self) -> bytes:
        """What has arrived since the last read (waiting for some); b"" at the end."""
        while not self._chunks and not self._eof:
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        data = b"".join(self._chunks)
        self._chunks.clear()
        self._size = 0
        self._resume()
        return data


@dataclass(slots=True, eq=False)
class _Run:
    """The executor's state for one started step; lives in `StepHandle.native`."""

    proc: subprocess.Popen[bytes] | None
    output: OutputPipe | None = None
    startup_output: bytes = b""
    startup_exit: int = 0
    exited: asyncio.Task[int] | None = None
    ending: asyncio.Task[None] | None = None
    timed_out: bool = False
    cancelled: bool = False


class ShellExecutor:
    """Runs each step as a local process group, with the runner's own user and rights.

    `kill_grace` is how many seconds a step gets between SIGTERM and SIGKILL when it is
    killed, times out or its job is destroyed.

    A step's output must be read through `tail` while it runs (the pipe is bounded; a step
    nobody reads from stops at its next write until its timeout ends it). A step's
    `timeout` counts from `start`, whether or not anyone is in `wait` yet.
    """

    name = "shell"

    def __init__(self, kill_grace: float = 5.0, *, warning: str | None = None) -> None:
        self.kill_grace = kill_grace
        # Why this executor runs instead of the sandbox (a runner's fallback), or None.
        self.warning = warning
        self._runs: dict[str, list[_Run]] = {}

    def describe(self, job: JobEnv) -> list[str]:
        lines = [
            "Executor shell: steps run on this machine as the runner's user, NOT isolated: "
            "they can read what that user can, and no network, memory or process limit "
            "applies."
        ]
        if self.warning:
            lines.insert(0, f"Warning: {self.warning}")
        return lines

    async def setup(self, job: JobEnv) -> None:
        # In a worker thread: directory operations can take milliseconds on a busy disk
        # (other jobs' directories are being removed beside this one), and the event loop
        # runs every other slot's steps and the server's requests meanwhile.
        await asyncio.to_thread(make_job_dirs, job)

    async def start(
        self, job: JobEnv, process: StepProcess, *, pass_fds: tuple[int, ...] = ()
    ) -> StepHandle:
        """Start the step (see `Executor.start`); `pass_fds` are descriptors its process
        inherits (for executors built on this one: bwrap's `--info-fd`)."""
        if not process.argv:
            raise ValueError(f"step {process.step_key!r} has an empty argv")
        try:
            proc = subprocess.Popen(
                process.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=process.env,
                cwd=process.cwd,
                # Own session, so its process group is the step's and nothing of the
                # runner's; set by the spawn itself (no preexec_fn), which keeps vfork.
                start_new_session=True,
                pass_fds=pass_fds,
            )
        except OSError as exc:
            run = _failed_start(process, exc)
        else:
            assert proc.stdout is not None  # asked for a pipe
            run = _Run(proc=proc, output=OutputPipe(proc.stdout))
            run.exited = asyncio.create_task(self._supervise(run, proc, process.timeout))
        self._runs.setdefault(job.key, []).append(run)
        return StepHandle(step_key=process.step_key, native=run)

    def failed_start(self, job: JobEnv, process: StepProcess, exc: OSError) -> StepHandle:
        """A handle of a step that could not start because of `exc`: its output says why,
        as a shell would, and it exits 126 or 127 (for executors that check first)."""
        del job  # a run that never started has nothing to end
        return StepHandle(step_key=process.step_key, native=_failed_start(process, exc))

    async def tail(self, handle: StepHandle) -> AsyncIterator[bytes]:
        run = _run_of(handle)
        if run.proc is None:
            yield run.startup_output
            return
        assert run.output is not None  # start() always asks for a pipe
        while chunk := await run.output.read():
            yield chunk

    async def wait(self, handle: StepHandle) -> StepExit:
        run = _run_of(handle)
        if run.exited is None:
            return StepExit(exit_code=run.startup_exit)
        # Shielded: a caller that stops waiting must not stop the timeout from applying.
        code = await asyncio.shield(run.exited)
        return StepExit(exit_code=code, timed_out=run.timed_out, cancelled=run.cancelled)

    async def kill(self, handle: StepHandle) -> None:
        await self._kill(_run_of(handle))

    async def adopt(self, job: JobEnv) -> None:
        """Nothing to do: steps run as the runner's user, who wrote the files."""

    async def destroy(self, job: JobEnv) -> None:
        runs = list(self._runs.get(job.key, []))
        # Concurrently: each group's grace runs at the same time, not one after another.
        await asyncio.gather(*(self._kill(run) for run in runs))
        exits = [run.exited for run in runs if run.exited is not None]
        await asyncio.gather(*exits, return_exceptions=True)
        # Forgotten only now, so that a second destroy called meanwhile waits as well.
        self._runs.pop(job.key, None)
        if job.remove:
            await asyncio.to_thread(remove_job_dir, job.root)

    async def _kill(self, run: _Run) -> None:
        if run.proc is None:
            return
        if run.proc.poll() is None and not run.timed_out:
            run.cancelled = True
        await self._end(run, run.proc.pid)

    async def _supervise(
        self, run: _Run, proc: subprocess.Popen[bytes], timeout: float | None
    ) -> int:
        """The step's exit code, ending its group first if it outlives `timeout`."""
        try:
            return await asyncio.wait_for(exit_code(proc), timeout)
        except TimeoutError:
            if not run.cancelled:
                run.timed_out = True
            await self._end(run, proc.pid)
            return await exit_code(proc)

    async def _end(self, run: _Run, pgid: int) -> None:
        # One termination per step, however many callers (kill, timeout, destroy) ask;
        # shielded so a cancelled caller cannot stop it between SIGTERM and SIGKILL.
        if run.ending is None:
            run.ending = asyncio.create_task(_terminate_group(pgid, self.kill_grace))
        await asyncio.shield(run.ending)


def _failed_start(process: StepProcess, exc: OSError) -> _Run:
    """A run that never started: it prints why, as a shell would, and exits 126 or 127."""
    what = exc.filename if exc.filename is not None else process.argv[0]
    reason = exc.strerror or type(exc).__name__
    line = f"shipline: cannot start step: {os.fsdecode(what)}: {reason}\n"
    code = _EXIT_NOT_EXECUTABLE if isinstance(exc, PermissionError) else _EXIT_NOT_FOUND
    return _Run(proc=None, startup_output=line.encode(), startup_exit=code)


def _run_of(handle: StepHandle) -> _Run:
    if not isinstance(handle.native, _Run):
        raise TypeError(f"handle of step {handle.step_key!r} was not made by ShellExecutor")
    return handle.native


async def exit_code(proc: subprocess.Popen[bytes]) -> int:
    """The exit code once the process has exited, 128+signo if a signal ended it.

    The process is reaped here (`poll`), as soon as its pidfd says it has exited: no
    child watcher, and a background child still holding the output pipe does not hold
    the step's exit back.
    """
    if proc.poll() is None:
        await _exited(proc.pid)
    delay = 0.0005
    while proc.poll() is None:  # no pidfd: poll, backing off
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)
    code = proc.returncode
    return 128 - code if code < 0 else code


async def _exited(pid: int) -> None:
    """Wait until `pid` exits, woken by its pidfd (Linux 5.3+) rather than by polling.

    Returns at once where pidfds are unavailable or the process is already gone; the
    caller's polling loop covers those cases.
    """
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        return
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not done.done():
            done.set_result(None)

    try:
        loop.add_reader(fd, wake)
        await done
    finally:
        loop.remove_reader(fd)
        os.close(fd)


async def _terminate_group(pgid: int, grace: float) -> None:
    """SIGTERM the group, SIGKILL whatever is still running `grace` seconds later."""
    if not _signal_group(pgid, signal.SIGTERM):
        return
    # A stopped process would only see SIGTERM once continued.
    _signal_group(pgid, signal.SIGCONT)
    if await _until_gone(pgid, grace):
        return
    _signal_group(pgid, signal.SIGKILL)
    await _until_gone(pgid, _KILLED_WAIT)


def _signal_group(pgid: int, signo: signal.Signals) -> bool:
    """Send `signo` to the group; False if no process of it is left."""
    try:
        os.killpg(pgid, signo)
    except ProcessLookupError:
        return False
    return True


async def _until_gone(pgid: int, seconds: float) -> bool:
    """Wait up to `seconds` for the group to have no running process; True if it has none."""
    deadline = time.monotonic() + seconds
    delay = 0.002
    while _group_running(pgid):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        await asyncio.sleep(min(delay, remaining))
        delay = min(delay * 2, 0.05)
    return True


def _group_running(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # killpg also finds zombies, and orphans become zombies forever where PID 1 does not
    # reap (many containers): where /proc exists, only count members that still run.
    return _live_member_in_proc(pgid)


def _live_member_in_proc(pgid: int) -> bool:
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:  # the process ended while we looked
            continue
        # Fields after the command name, which may itself contain spaces and parentheses:
        # state, ppid, pgrp, ...
        fields = stat[stat.rfind(b")") + 2 :].split(b" ", 3)
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


def make_job_dirs(job: JobEnv) -> None:
    """The job's directories, private to the runner's user."""
    for path in (job.root, job.workspace, job.temp, job.tool_cache):
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    # mkdir's mode is filtered by the umask and ignored for existing directories; the
    # job root and temp hold step scripts and command files, so no one else may look.
    job.root.chmod(0o700)
    job.temp.chmod(0o700)


def remove_job_dir(root: Path) -> None:
    """The job's directory and all in it, gone (nothing there if it is not)."""
    shutil.rmtree(root, ignore_errors=True)
