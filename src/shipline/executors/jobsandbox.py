"""One sandbox per job: bwrap started once, at the job's first step, with the launcher of
`launcher.py` in it; each step is a fresh process the launcher starts there.

What GitHub Actions does with a job container and `docker exec` per step: the sandbox's
fixed cost (namespaces, /dev, /proc, the mounts, the drop to the step user, the cgroup
join) is paid once per job instead of once per step. The runner talks to the launcher over
a SOCK_SEQPACKET socketpair: a step's argv, cwd and environment go over it (never on a
command line, never on disk), its output comes back through a pipe whose write end travels
with the request (SCM_RIGHTS), and its exit status and the end of a kill come back as
messages. Closing the sandbox kills bwrap, whose init takes the PID namespace down.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TypeVar

from shipline.executors.launcher import CHUNK
from shipline.executors.shell import exit_code

T = TypeVar("T")

# How long the launcher may take to say it is ready (a loaded machine starts Python slowly).
READY_TIMEOUT = 30.0
# How long bwrap may take to tell the sandbox's init, and its namespace to empty.
FIND_INIT = 2.0
NAMESPACE_GONE = 5.0
# The exit code reported for a step whose sandbox ended under it (as SIGKILL would).
_SANDBOX_GONE_EXIT = 128 + signal.SIGKILL
# Kept of what bwrap and the launcher print (their errors), for the reason of a failure.
_DIAGNOSTICS = 4096


class SandboxFailed(Exception):
    """The job's sandbox could not start, or ended: the message says why."""


def launcher_source() -> bytes:
    """The launcher's program text, handed to the sandbox's python3 on its stdin."""
    return resources.files("shipline.executors").joinpath("launcher.py").read_bytes()


@dataclass(slots=True, eq=False)
class RemoteStep:
    """A step started by the launcher: what it said of it, as futures."""

    step_id: int
    # None once started; else what kept it from starting: (errno, message, filename).
    started: asyncio.Future[tuple[int, str, str] | None]
    exit: asyncio.Future[int]
    ended: asyncio.Future[None] | None = None


@dataclass(slots=True, eq=False)
class JobSandbox:
    """A running job sandbox and its launcher, as seen from the runner (see the module
    docstring). Built by `open_sandbox`."""

    proc: subprocess.Popen[bytes]
    sock: socket.socket
    init_pidfd: asyncio.Task[int | None]
    ready: asyncio.Future[None]
    steps: dict[int, RemoteStep] = field(default_factory=dict)
    diagnostics: bytearray = field(default_factory=bytearray)
    alive: bool = True
    closed: bool = False
    # Ended by itself (its launcher killed: by a step, the out-of-memory killer), not closed.
    crashed: bool = False
    next_id: int = 1
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def _on_message(self) -> None:
        while self.alive:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._gone("the job's sandbox ended" + self.said())
                return
            self._dispatch([f.decode(errors="surrogateescape") for f in data.split(b"\0")])

    def _dispatch(self, fields: list[str]) -> None:
        op, *rest = fields
        if op == "ready":
            _resolve(self.ready, None)
            return
        step = self.steps.get(int(rest[0])) if rest and rest[0].isdigit() else None
        if step is None:
            return
        if op == "started":
            _resolve(step.started, None)
        elif op == "failed" and len(rest) == 4:
            _resolve(step.started, (int(rest[1]), rest[2], rest[3]))
        elif op == "exit" and len(rest) == 2:
            _resolve(step.exit, int(rest[1]))
        elif op == "ended" and step.ended is not None:
            _resolve(step.ended, None)

    def drain_diagnostics(self) -> None:
        """Keep the end of what bwrap and the launcher printed (read as it arrives)."""
        stdout = self.proc.stdout
        if stdout is None or stdout.closed:
            return
        while True:
            try:
                data = os.read(stdout.fileno(), 4096)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                asyncio.get_running_loop().remove_reader(stdout.fileno())
                return
            self.diagnostics.extend(data)
            del self.diagnostics[:-_DIAGNOSTICS]

    def said(self) -> str:
        text = self.diagnostics.decode(errors="replace").strip()
        return f": {text.splitlines()[-1]}" if text else ""

    def _gone(self, why: str) -> None:
        """The launcher is gone: every step it ran is over."""
        if not self.alive:
            return
        self.alive = False
        self.crashed = not self.closed
        asyncio.get_running_loop().remove_reader(self.sock.fileno())
        if not self.ready.done():
            self.ready.set_exception(SandboxFailed(why))
        for step in self.steps.values():
            # A step whose start it did not confirm may have run (and killed it): the
            # end of the sandbox ended it, as SIGKILL would.
            _resolve(step.started, None)
            _resolve(step.exit, _SANDBOX_GONE_EXIT)
            if step.ended is not None:
                _resolve(step.ended, None)

    async def _send(self, data: bytes, fds: tuple[int, ...] = ()) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self.alive:
                raise SandboxFailed("the job's sandbox ended" + self.said())
            try:
                if fds:
                    rights = array.array("i", fds)
                    self.sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights)])
                else:
                    self.sock.send(data)
                return
            except BlockingIOError:
                writable: asyncio.Future[None] = loop.create_future()
                loop.add_writer(self.sock.fileno(), _resolve, writable, None)
                try:
                    await writable
                finally:
                    loop.remove_writer(self.sock.fileno())
            except OSError:
                self._gone("the job's sandbox ended" + self.said())

    async def start(
        self, argv: tuple[str, ...], env: Mapping[str, str], cwd: Path, output: int
    ) -> RemoteStep:
        """Have the launcher start `argv` with its output to descriptor `output` (which
        the caller closes). The step's `started` future says whether it could start."""
        fields = [str(cwd), *argv, *(f"{name}={value}" for name, value in env.items())]
        if any("\0" in field for field in fields):
            # As subprocess says for the shell executor: exec cannot pass a NUL byte.
            raise ValueError("a step's argument or environment holds an embedded null byte")
        loop = asyncio.get_running_loop()
        step = RemoteStep(self.next_id, loop.create_future(), loop.create_future())
        self.next_id += 1
        self.steps[step.step_id] = step
        # The launcher's format: NUL-separated fields (see launcher.py).
        encoded = [os.fsencode(field) for field in fields]
        body = b"\0".join([encoded[0], b"%d" % len(argv), *encoded[1:]])
        header = b"start\0%d\0%d" % (step.step_id, len(body))
        async with self.lock:  # a start's messages must not interleave with others
            await self._send(header, (output,))
            for at in range(0, len(body), CHUNK):
                await self._send(body[at : at + CHUNK])
        return step

    async def kill(self, step: RemoteStep, grace: float) -> None:
        """End the step's process group (SIGTERM, SIGKILL after `grace` seconds); returns
        once none of its processes runs."""
        if step.ended is None:
            step.ended = asyncio.get_running_loop().create_future()
            message = b"kill\0%d\0%s" % (step.step_id, str(grace).encode())
            try:
                async with self.lock:
                    await self._send(message)
            except SandboxFailed:
                _resolve(step.ended, None)
        await asyncio.shield(step.ended)

    async def close(self) -> None:
        """Kill the sandbox; returns once its PID namespace is empty. Safe to repeat."""
        if self.closed:
            return
        self.closed = True
        self._gone("the job's sandbox was closed")
        loop = asyncio.get_running_loop()
        if self.proc.stdout is not None:
            loop.remove_reader(self.proc.stdout.fileno())
            self.proc.stdout.close()
        self.sock.close()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        fd = await self.init_pidfd
        if fd is not None:
            try:
                await asyncio.wait_for(await_exit(fd), NAMESPACE_GONE)
            except TimeoutError:
                pass
            finally:
                os.close(fd)
        await exit_code(self.proc)


async def open_sandbox(
    command: Callable[[tuple[str, ...]], tuple[str, ...]], python: str, cwd: Path
) -> JobSandbox:
    """Start a job sandbox: `command(program)` is the bwrap command line (limits prefix
    included) running `program`; `python` the sandbox's interpreter for the launcher.
    Raises SandboxFailed when the launcher does not say it is ready."""
    loop = asyncio.get_running_loop()
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    source_read, source_write = os.pipe()
    info_read, info_write = os.pipe()
    os.set_blocking(info_read, False)
    try:
        source = launcher_source()
        assert len(source) < 65536, "the launcher must fit in a pipe's buffer"
        os.write(source_write, source)
    finally:
        os.close(source_write)
    try:
        program = (python, "-I", "-S", "-B", "-", str(child.fileno()))
        argv = with_info_fd(command(program), info_write)
        proc = subprocess.Popen(
            argv,
            stdin=source_read,  # python3 reads the launcher's text from it
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={"PATH": os.defpath},  # nothing of the runner's, nothing of a step's
            cwd=cwd,
            start_new_session=True,
            pass_fds=(child.fileno(), info_write),
        )
    except OSError as exc:
        parent.close()
        os.close(info_read)
        raise SandboxFailed(f"bwrap cannot start: {exc}") from None
    finally:
        child.close()
        os.close(source_read)
        os.close(info_write)
    parent.setblocking(False)
    sandbox = JobSandbox(
        proc, parent, asyncio.create_task(init_pidfd(info_read)), loop.create_future()
    )
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    loop.add_reader(proc.stdout.fileno(), sandbox.drain_diagnostics)
    loop.add_reader(parent.fileno(), sandbox._on_message)
    try:
        await asyncio.wait_for(asyncio.shield(sandbox.ready), READY_TIMEOUT)
    except (SandboxFailed, TimeoutError) as exc:
        with contextlib.suppress(TimeoutError):  # what bwrap or python3 said, to the end
            await asyncio.wait_for(exit_code(proc), 2.0)
        sandbox.drain_diagnostics()
        why = f"the launcher did not start within {READY_TIMEOUT:g} s"
        if isinstance(exc, SandboxFailed):
            why = "the launcher did not start"
        await sandbox.close()
        raise SandboxFailed(why + sandbox.said()) from None
    return sandbox


async def await_exit(fd: int) -> None:
    """Return once the process of pidfd `fd` has exited."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    loop.add_reader(fd, _resolve, done, None)
    try:
        await done
    finally:
        loop.remove_reader(fd)


def with_info_fd(argv: tuple[str, ...], fd: int) -> tuple[str, ...]:
    """`argv` (a limits prefix, then bwrap's command line) with `--info-fd fd` for bwrap."""
    at = argv.index("bwrap") + 1
    return (*argv[:at], "--info-fd", str(fd), *argv[at:])


async def init_pidfd(info_read: int) -> int | None:
    """A pidfd of the sandbox's init, from what bwrap writes on its `--info-fd` (one JSON
    object with `child-pid`); None when bwrap ended before telling, or the init is gone
    already. Closes `info_read`."""
    loop = asyncio.get_running_loop()
    data = bytearray()
    done: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        try:
            chunk = os.read(info_read, 4096)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        data.extend(chunk)
        if not chunk:
            _resolve(done, None)
        with contextlib.suppress(ValueError):
            json.loads(bytes(data))  # whole: bwrap writes it at once, then closes its end
            _resolve(done, None)

    loop.add_reader(info_read, readable)
    try:
        await asyncio.wait_for(done, FIND_INIT + NAMESPACE_GONE)
    except TimeoutError:
        return None
    finally:
        loop.remove_reader(info_read)
        os.close(info_read)
    try:
        pid = int(json.loads(bytes(data))["child-pid"])
    except (ValueError, KeyError, TypeError):
        return None
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _resolve(future: asyncio.Future[T], value: T) -> None:
    if not future.done():
        future.set_result(value)
