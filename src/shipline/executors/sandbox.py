"""The `sandbox` executor: runs a job's steps inside a bubblewrap sandbox.

A step is untrusted code. Inside the sandbox it has its own PID, IPC, UTS, cgroup and mount
namespaces (and network namespace when `network=False`); it sees read-only system
directories (`/usr`, `/bin`, `/lib*`, `/sbin`, `/etc`), a private `/tmp`, its own `/proc`
and a minimal `/dev`, and read-write only the job's workspace, temp dir, tool cache and a
fresh home, each at the same path as outside (so `GITHUB_WORKSPACE` and friends stay valid).
Nothing else of the host is there: not `/root`, not the state directory, not other jobs'
directories, not `/run` or a Docker socket.

When the runner runs as root, the steps run as uid/gid 65534 (nobody/nogroup) with no
supplementary groups and no new privileges (`setpriv`), inside the sandbox: a user
namespace mapping the step to the outer root would keep root's file access. The job's
writable directories belong to that uid for the whole job (`setup`, then `adopt` after
the runner wrote there itself), and are given back to the runner's user by `destroy`.

Each job's `Isolation` decides the rest: with `network=False` the job gets an empty
network namespace (loopback only, not the host's); `memory` and `processes` become the
job's cgroup limits (or rlimits; see `limits.py`), and a step a limit ended says so.

One sandbox per job (`jobsandbox.py`): started with the job's first step, with a launcher
in it (`launcher.py`, run by the sandbox's python3) that starts each step as a fresh
process group; steps of a job share its /tmp, home and background processes, as in a job
container. `destroy` kills the sandbox: the kernel ends its whole PID namespace. Where the
launcher cannot run, and for a job of one step (`JobEnv.processes`: nothing to share, and
the launcher's Python would cost more than the step), each step gets a sandbox of its own,
composed on the shell executor:
the bwrap process is the step's process group, and when it ends `--die-with-parent` kills
the sandbox's init and with it the namespace. `wait`, `kill` and `destroy` return only
once the step's processes are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

from shipline.executors.base import JobEnv, StepExit, StepHandle, StepProcess
from shipline.executors.jobsandbox import (
    NAMESPACE_GONE,
    JobSandbox,
    RemoteStep,
    SandboxFailed,
    await_exit,
    init_pidfd,
    open_sandbox,
    with_info_fd,
)
from shipline.executors.limits import JobCgroup, Limiter
from shipline.executors.shell import OutputPipe, ShellExecutor, make_job_dirs, remove_job_dir

# The unprivileged user and group steps run as when the runner is root.
STEP_UID = 65534
STEP_GID = 65534
# System directories bound read-only (or re-created as symlinks, for merged /usr).
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
# Where the launcher's interpreter is looked for: the sandbox shows only system directories.
LAUNCHER_PYTHONS = ("/usr/bin/python3", "/bin/python3")


@dataclass(slots=True, eq=False)
class _Sandboxed:
    """One started step: the shell executor's handle for bwrap and the sandbox's init."""

    inner: StepHandle
    job: JobEnv
    cgroup: JobCgroup | None = None
    counters: tuple[int, int] = (0, 0)
    init_pidfd: asyncio.Task[int | None] | None = None
    gone: asyncio.Task[None] | None = None
    # Said before the step's own output (why it runs in a sandbox of its own).
    prelude: bytes = b""


@dataclass(slots=True, eq=False)
class _Launched:
    """One step started by the launcher of its job's sandbox."""

    sandbox: JobSandbox
    remote: RemoteStep
    output: OutputPipe
    cgroup: JobCgroup | None
    counters: tuple[int, int]
    supervisor: asyncio.Task[int] | None = None
    ending: asyncio.Task[None] | None = None
    timed_out: bool = False
    cancelled: bool = False


def home_of(job: JobEnv) -> Path:
    """The fresh home directory of a job's steps (under the job's root)."""
    return job.root / "home"


class SandboxExecutor:
    """Runs a job's steps in a bubblewrap sandbox; see the module docstring.

    `kill_grace` is how many seconds a step gets between SIGTERM and SIGKILL when it is
    killed, times out or its job is destroyed. `limits` picks how memory and process limits
    are enforced: `auto` (cgroups when this process may create them, else rlimits),
    `cgroup` or `rlimit`. `launcher` is the sandbox's Python for the job's launcher (`auto`:
    the first of LAUNCHER_PYTHONS that exists; None: a sandbox per step, no launcher).
    """

    name = "sandbox"

    def __init__(
        self, *, kill_grace: float = 5.0, limits: str = "auto", launcher: str | None = "auto"
    ) -> None:
        self.kill_grace = kill_grace
        self._shell = ShellExecutor(kill_grace=kill_grace)
        self._steps: dict[str, list[_Sandboxed]] = {}
        self._launched: dict[str, list[_Launched]] = {}
        self._sandboxes: dict[str, asyncio.Future[JobSandbox | str]] = {}
        self._noted: set[str] = set()
        self._cgroups: dict[str, JobCgroup | None] = {}
        self._drop = os.geteuid() == 0
        self.limiter = Limiter(limits, drop=self._drop)
        self.python = _launcher_python() if launcher == "auto" else launcher
        # Why this executor starts a sandbox per step (no launcher), or None.
        self.per_step: str | None = None
        if self.python is None:
            self.per_step = f"no python3 in the sandbox ({' or '.join(LAUNCHER_PYTHONS)})"

    def describe(self, job: JobEnv) -> list[str]:
        who = f"uid {STEP_UID} (nobody)" if self._drop else "the runner's uid in its own namespaces"
        network = "on" if job.isolation.network else "off (loopback only)"
        if self.per_step is not None:
            how = f"one sandbox per step ({self.per_step})"
        elif _one_step(job):
            how = "one sandbox for the job's one step"
        else:
            how = "one sandbox per job, each step a fresh process in it"
        return [
            f"Executor sandbox (bubblewrap): {how}; steps run as {who}, with a private /tmp, "
            "read-only system directories and only the job's own directories writable; "
            f"network {network}; {self.limiter.describe(job.isolation)}"
        ]

    async def setup(self, job: JobEnv) -> None:
        # In one worker thread: the job's directories, its home and its cgroup (which
        # takes milliseconds to make), given to the step user. The event loop runs every
        # other slot's steps meanwhile.
        cgroup = self._cgroups.get(job.key)
        self._cgroups[job.key] = await asyncio.to_thread(
            self._prepare, job, job.key not in self._cgroups, cgroup
        )
        if self.per_step is None and not _one_step(job) and job.key not in self._sandboxes:
            # Started now, used by the first step: its start-up overlaps with the runner's
            # work until then (a checkout, say).
            self._sandboxes[job.key] = asyncio.ensure_future(self._open(job, None))

    def _prepare(self, job: JobEnv, new: bool, cgroup: JobCgroup | None) -> JobCgroup | None:
        """`setup`'s file work; `new`: the job has no cgroup yet (else `cgroup` is it)."""
        make_job_dirs(job)
        home_of(job).mkdir(mode=0o700, exist_ok=True)
        if new:
            cgroup = self.limiter.prepare(job.key, job.isolation)
        # The job's directories belong to the step user for the whole job; the runner,
        # root, works in them all the same (see `adopt` for what it writes there).
        if self._drop:
            _give(_writable(job), STEP_UID, STEP_GID)
        return cgroup

    async def adopt(self, job: JobEnv) -> None:
        """Give what the runner wrote into the job's directories (checkouts, restored
        caches, downloaded artifacts) to the step user: a walk of the tree, once per
        built-in action rather than twice per step."""
        if self._drop:
            await asyncio.to_thread(_give, _writable(job), STEP_UID, STEP_GID)

    async def start(self, job: JobEnv, process: StepProcess) -> StepHandle:
        if not process.argv:
            raise ValueError(f"step {process.step_key!r} has an empty argv")
        missing = _missing(process)
        if missing is not None:
            inner = self._shell.failed_start(job, process, missing)
            return StepHandle(step_key=process.step_key, native=_Sandboxed(inner, job))
        if self._drop:
            # The step's script and the runner's command-file folder, written since the
            # last step: new entries at the top of the job's temp dir, not a tree walk.
            _give_entries(job.temp, STEP_UID, STEP_GID)
        env = dict(process.env)
        env["HOME"] = str(home_of(job))
        process = replace(process, env=env)
        sandbox = await self._sandbox(job, process)
        if isinstance(sandbox, JobSandbox):
            launched = await self._launch(job, sandbox, process)
            if launched is not None:
                return launched
            sandbox = "the job's sandbox ended just before it"
        return await self._start_alone(job, process, sandbox)

    async def _sandbox(self, job: JobEnv, process: StepProcess) -> JobSandbox | str | None:
        """The job's sandbox (started with its first step). Else the step runs alone: None
        when the job log says so already, else why (once per job, for the step's output)."""
        opening = self._sandboxes.get(job.key)
        if opening is None and (self.per_step is not None or _one_step(job)):
            return None
        if opening is not None and opening.done():
            old = opening.result()
            if isinstance(old, JobSandbox) and not old.alive:
                # A step killed the launcher (or the memory limit did): the next step gets
                # a new sandbox; the old one is gone, its processes with it.
                await old.close()
                opening = None
        if opening is None:
            opening = asyncio.ensure_future(self._open(job, process))
            self._sandboxes[job.key] = opening
        sandbox = await asyncio.shield(opening)
        if isinstance(sandbox, str):
            if job.key in self._noted:
                return None
            self._noted.add(job.key)
        return sandbox

    async def _open(self, job: JobEnv, process: StepProcess | None) -> JobSandbox | str:
        """Start the job's sandbox; `process`, the step that needs it, if known (for its
        event file when the job does not name one)."""
        assert self.python is not None
        cgroup = self._cgroups.get(job.key)
        prefix = self.limiter.prefix(cgroup, job.isolation)
        env = process.env if process is not None else {}

        def command(program: tuple[str, ...]) -> tuple[str, ...]:
            launcher = StepProcess("launcher", program, env, job.workspace)
            return (*prefix, *self.command(job, launcher))

        try:
            return await open_sandbox(command, self.python, job.root)
        except SandboxFailed as exc:
            # Steps still run isolated, each in a sandbox of its own; later jobs do not
            # try again (a launcher that cannot start here will not start next time).
            self.per_step = f"the job sandbox's launcher failed: {exc}"
            return self.per_step

    async def _launch(
        self, job: JobEnv, sandbox: JobSandbox, process: StepProcess
    ) -> StepHandle | None:
        """Start the step in the job's sandbox; None when the sandbox ended meanwhile."""
        cgroup = self._cgroups.get(job.key)
        counters = cgroup.counters() if cgroup is not None else (0, 0)
        out_read, out_write = os.pipe()
        try:
            remote = await sandbox.start(process.argv, process.env, process.cwd, out_write)
        except SandboxFailed:
            os.close(out_read)
            return None
        except BaseException:
            os.close(out_read)
            raise
        finally:
            os.close(out_write)
        failure = await remote.started
        if failure is not None:
            code, error, filename = failure
            os.close(out_read)
            exc = OSError(code or errno.ENOENT, error, filename or process.argv[0])
            inner = self._shell.failed_start(job, process, exc)
            return StepHandle(step_key=process.step_key, native=_Sandboxed(inner, job))
        # The pipe's file is closed by OutputPipe at the end of the output.
        output = OutputPipe(open(out_read, "rb", buffering=0))  # noqa: SIM115
        step = _Launched(sandbox, remote, output, cgroup, counters)
        step.supervisor = asyncio.create_task(self._supervise(step, process.timeout))
        self._launched.setdefault(job.key, []).append(step)
        return StepHandle(step_key=process.step_key, native=step)

    async def _supervise(self, step: _Launched, timeout: float | None) -> int:
        """The step's exit code, ending its group first if it outlives `timeout`."""
        try:
            return await asyncio.wait_for(asyncio.shield(step.remote.exit), timeout)
        except TimeoutError:
            if not step.cancelled:
                step.timed_out = True
            await self._end(step)
            return await step.remote.exit

    async def _end(self, step: _Launched) -> None:
        # One termination per step, however many callers (kill, timeout, destroy) ask.
        if step.ending is None:
            step.ending = asyncio.ensure_future(step.sandbox.kill(step.remote, self.kill_grace))
        await asyncio.shield(step.ending)

    async def _start_alone(self, job: JobEnv, process: StepProcess, why: str | None) -> StepHandle:
        """Start the step in a sandbox of its own (bwrap per step: no launcher); `why`, if
        given, is said first in its output."""
        # The environment travels in bwrap's own environment (inherited by the step), never
        # on its command line.
        cgroup = self._cgroups.get(job.key)
        argv = (*self.limiter.prefix(cgroup, job.isolation), *self.command(job, process))
        wrapped = replace(process, argv=argv, cwd=job.root)
        counters = cgroup.counters() if cgroup is not None else (0, 0)
        # bwrap tells the sandbox's init pid on this pipe (`--info-fd`) once it is running.
        info_read, info_write = os.pipe()
        os.set_blocking(info_read, False)
        wrapped = replace(wrapped, argv=with_info_fd(wrapped.argv, info_write))
        try:
            inner = await self._shell.start(job, wrapped, pass_fds=(info_write,))
        finally:
            os.close(info_write)
        prelude = b""
        if why is not None:
            prelude = f"shipline: this step runs in a sandbox of its own: {why}\n".encode()
        step = _Sandboxed(inner, job, cgroup, counters, prelude=prelude)
        step.init_pidfd = asyncio.create_task(init_pidfd(info_read))
        self._steps.setdefault(job.key, []).append(step)
        return StepHandle(step_key=process.step_key, native=step)

    def command(self, job: JobEnv, process: StepProcess) -> tuple[str, ...]:
        """The bwrap command line that runs `process` sandboxed (no env values on it)."""
        read_only: list[Path] = []
        event = job.event or Path(process.env.get("GITHUB_EVENT_PATH", "") or "relative")
        if event.is_absolute() and event.is_file():
            read_only.append(event)
        return sandbox_argv(
            process.argv,
            cwd=process.cwd,
            writable=_writable(job),
            read_only=read_only,
            network=job.isolation.network,
            drop=self._drop,
        )

    async def tail(self, handle: StepHandle) -> AsyncIterator[bytes]:
        step = _step_of(handle)
        if isinstance(step, _Launched):
            while chunk := await step.output.read():
                yield chunk
            return
        if step.prelude:
            yield step.prelude
        async for chunk in self._shell.tail(step.inner):
            yield chunk

    async def wait(self, handle: StepHandle) -> StepExit:
        step = _step_of(handle)
        if isinstance(step, _Launched):
            assert step.supervisor is not None
            code = await asyncio.shield(step.supervisor)
            if step.ending is not None:
                await asyncio.shield(step.ending)
            exit_ = StepExit(exit_code=code, timed_out=step.timed_out, cancelled=step.cancelled)
            if step.sandbox.crashed and not (step.timed_out or step.cancelled):
                exit_ = replace(exit_, reason="the job's sandbox ended during the step")
        else:
            exit_ = await self._shell.wait(step.inner)
            await _namespace_gone(step)
        if exit_.exit_code != 0 and step.cgroup is not None:
            reason = step.cgroup.reason(step.counters)
            if reason is not None:
                exit_ = replace(exit_, reason=reason)
        return exit_

    async def kill(self, handle: StepHandle) -> None:
        step = _step_of(handle)
        if isinstance(step, _Launched):
            await self._kill(step)
            return
        await self._shell.kill(step.inner)
        await _namespace_gone(step)

    async def _kill(self, step: _Launched) -> None:
        if not step.remote.exit.done() and not step.timed_out:
            step.cancelled = True
        await self._end(step)

    async def destroy(self, job: JobEnv) -> None:
        launched = list(self._launched.get(job.key, []))
        # Steps still running get their grace, concurrently; what finished steps left in
        # the background ends with the sandbox (as GitHub ends a job's orphan processes).
        running = [step for step in launched if not step.remote.exit.done()]
        await asyncio.gather(*(self._kill(step) for step in running))
        supervisors = [step.supervisor for step in launched if step.supervisor is not None]
        await asyncio.gather(*supervisors, return_exceptions=True)
        opening = self._sandboxes.pop(job.key, None)
        if opening is not None:
            sandbox = await asyncio.shield(opening)
            if isinstance(sandbox, JobSandbox):
                await sandbox.close()
        self._launched.pop(job.key, None)
        self._noted.discard(job.key)
        await self._shell.destroy(replace(job, remove=False))  # removed below
        for step in self._steps.pop(job.key, []):
            await _namespace_gone(step)
        await asyncio.to_thread(self._clean, job, self._cgroups.pop(job.key, None))

    def _clean(self, job: JobEnv, cgroup: JobCgroup | None) -> None:
        """`destroy`'s file work, in one worker thread."""
        if cgroup is not None:
            cgroup.release()
        if job.remove:
            remove_job_dir(job.root)  # as root, whoever owns what is in it
            return
        if self._drop:
            with contextlib.suppress(OSError):  # setup may have failed
                _give(_writable(job), os.geteuid(), os.getegid())
        # Nothing a step wrote into its home survives the job.
        shutil.rmtree(home_of(job), ignore_errors=True)


def _one_step(job: JobEnv) -> bool:
    """Whether the job starts one step process at most: a sandbox of its own for that
    step is the job's sandbox, without the launcher's start (a Python) to pay for."""
    return job.processes is not None and job.processes <= 1


def _writable(job: JobEnv) -> tuple[Path, ...]:
    """The job's directories a step may write: each bound at its own path."""
    return (job.workspace, job.temp, job.tool_cache, home_of(job))


def _give(paths: tuple[Path, ...], uid: int, gid: int) -> None:
    for path in paths:
        chown_tree(path, uid, gid)


def _give_entries(folder: Path, uid: int, gid: int) -> None:
    """Give `folder`'s own entries (not what is below them) to uid:gid where they are not
    theirs yet, never following a symlink."""
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
            if st.st_uid != uid or st.st_gid != gid:
                os.chown(entry.path, uid, gid, follow_symlinks=False)
        except FileNotFoundError:
            continue


@functools.cache
def _launcher_python() -> str | None:
    """The sandbox's python3 for the job's launcher, if it has one."""
    for path in LAUNCHER_PYTHONS:
        if os.access(path, os.X_OK):
            return path
    return None


def chown_tree(root: Path, uid: int, gid: int) -> None:
    """Give `root` and everything under it to uid:gid, never following a symlink.

    Walks by directory descriptors (`os.fwalk`), so a step that swaps a directory for a
    symlink meanwhile cannot make the walk leave the tree.
    """
    try:
        os.chown(root, uid, gid, follow_symlinks=False)
    except FileNotFoundError:
        return
    for _dir, dirs, files, dir_fd in os.fwalk(root, follow_symlinks=False):
        for name in (*dirs, *files):
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                if st.st_uid != uid or st.st_gid != gid:
                    os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue


def sandbox_argv(
    program: tuple[str, ...],
    *,
    cwd: Path,
    writable: tuple[Path, ...] = (),
    read_only: list[Path] | tuple[Path, ...] = (),
    network: bool = True,
    drop: bool = True,
) -> tuple[str, ...]:
    """The bwrap command line running `program` in `cwd` with only the system directories
    and the given paths (each at its own path); `drop` runs it as 65534 via setpriv."""
    argv = [
        "bwrap",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        *(() if network else ("--unshare-net",)),
        "--die-with-parent",
        "--new-session",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--perms",
        "1777",
        "--tmpfs",
        "/tmp",
    ]
    argv += _system_dirs()
    made: set[Path] = {Path("/"), *(Path(d) for d in SYSTEM_DIRS), Path("/tmp")}
    for path in writable:
        argv += _bind(path, "--bind", made)
    for path in read_only:
        argv += _bind(path, "--ro-bind", made)
    argv += ["--chdir", str(cwd)]
    if drop:
        argv += [
            "setpriv",
            f"--reuid={STEP_UID}",
            f"--regid={STEP_GID}",
            "--clear-groups",
            "--no-new-privs",
            "--",
        ]
    return (*argv, *program)


@functools.cache
def _system_dirs() -> tuple[str, ...]:
    """bwrap options showing the host's system directories read-only (looked up once: a
    runner's machine does not change its layout under it)."""
    argv: list[str] = []
    for directory in SYSTEM_DIRS:
        path = Path(directory)
        if path.is_symlink():
            argv += ["--symlink", str(path.readlink()), directory]
        elif path.is_dir():
            argv += ["--ro-bind", directory, directory]
    return tuple(argv)


def _bind(path: Path, option: str, made: set[Path]) -> list[str]:
    """bwrap options binding `path` at itself, its missing parents made traversable."""
    argv: list[str] = []
    for parent in reversed(path.parents):
        if parent not in made:
            argv += ["--perms", "0755", "--dir", str(parent)]
            made.add(parent)
    made.add(path)
    return [*argv, option, str(path), str(path)]


def _missing(process: StepProcess) -> OSError | None:
    """Why the step's program or directory cannot be found (as `exec` would say), or None.

    The sandbox shows the same paths as the host where a step's program can be (system
    directories, the job's directories), so this is checked on the host, to report a
    missing program exactly as the shell executor does.
    """
    if not process.cwd.is_dir():
        return FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(process.cwd))
    program = process.argv[0]
    if "/" in program:
        found = (process.cwd / program).exists()
    else:
        found = shutil.which(program, path=process.env.get("PATH", os.defpath)) is not None
    if found:
        return None
    return FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)


async def _namespace_gone(step: _Sandboxed) -> None:
    """Wait until the sandbox's init has exited: the kernel ends every other process of
    the PID namespace before its init exits."""
    if step.init_pidfd is None:
        return
    if step.gone is None:
        step.gone = asyncio.create_task(_init_exited(step.init_pidfd))
    await asyncio.shield(step.gone)


async def _init_exited(pidfd: asyncio.Task[int | None]) -> None:
    fd = await pidfd
    if fd is None:
        return
    try:
        await asyncio.wait_for(await_exit(fd), NAMESPACE_GONE)
    except TimeoutError:
        pass
    finally:
        os.close(fd)


def _step_of(handle: StepHandle) -> _Sandboxed | _Launched:
    if not isinstance(handle.native, _Sandboxed | _Launched):
        raise TypeError(f"handle of step {handle.step_key!r} was not made by SandboxExecutor")
    return handle.native


def probe(limits: str = "auto") -> str | None:
    """None when sandboxed steps work on this machine, else why not.

    Works means: bwrap is installed, a sandboxed `id -u` runs (as 65534 when this process
    is root), and the limit mechanism `limits` (see `Limiter`) is available.
    """
    try:
        Limiter(limits, drop=os.geteuid() == 0)
    except RuntimeError as exc:
        return str(exc)
    if shutil.which("bwrap") is None:
        return "bwrap not found (install the Debian package bubblewrap)"
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        return "setpriv not found (install the Debian package util-linux)"
    drop = os.geteuid() == 0
    argv = sandbox_argv(("id", "-u"), cwd=Path("/"), network=False, drop=drop)
    try:
        done = subprocess.run(
            argv, env={"PATH": os.defpath}, capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap cannot run: {exc}"
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip() or f"exit {done.returncode}"
        return f"bwrap cannot run a sandbox here: {reason}"
    want = str(STEP_UID) if drop else str(os.geteuid())
    got = done.stdout.decode(errors="replace").strip()
    if got != want:
        return f"a sandboxed step runs as uid {got}, not {want}"
    return None
