"""The `sandbox` executor: runs each step process inside a bubblewrap sandbox.

A step is untrusted code. Inside the sandbox it has its own PID, IPC, UTS, cgroup and mount
namespaces (and network namespace when `network=False`); it sees read-only system
directories (`/usr`, `/bin`, `/lib*`, `/sbin`, `/etc`), a private `/tmp`, its own `/proc`
and a minimal `/dev`, and read-write only the job's workspace, temp dir, tool cache and a
fresh home, each at the same path as outside (so `GITHUB_WORKSPACE` and friends stay valid).
Nothing else of the host is there: not `/root`, not the state directory, not other jobs'
directories, not `/run` or a Docker socket.

When the runner runs as root, the step drops to uid/gid 65534 (nobody/nogroup) with no
supplementary groups and no new privileges (`setpriv`), inside the sandbox: a user
namespace mapping the step to the outer root would keep root's file access. The job's
writable directories are handed to that uid before each step.

Each job's `Isolation` decides the rest: with `network=False` the step gets an empty
network namespace (loopback only, not the host's); `memory` and `processes` become the
job's cgroup limits (or rlimits; see `limits.py`), and a step a limit ended says so.

Output, timeouts and kills are the shell executor's, by composition: the bwrap process is
the step's process group; when it ends, `--die-with-parent` kills the sandbox's init and
with it the whole PID namespace. `wait`, `kill` and `destroy` return only once the
namespace's processes are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

from shipline.executors.base import JobEnv, StepExit, StepHandle, StepProcess
from shipline.executors.limits import JobCgroup, Limiter
from shipline.executors.shell import ShellExecutor

# The unprivileged user and group steps run as when the runner is root.
STEP_UID = 65534
STEP_GID = 65534
# System directories bound read-only (or re-created as symlinks, for merged /usr).
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
# How long bwrap may take to tell the sandbox's init, and its namespace to empty.
_FIND_INIT = 2.0
_NAMESPACE_GONE = 5.0


@dataclass(slots=True, eq=False)
class _Sandboxed:
    """One started step: the shell executor's handle for bwrap and the sandbox's init."""

    inner: StepHandle
    job: JobEnv
    cgroup: JobCgroup | None = None
    counters: tuple[int, int] = (0, 0)
    init_pidfd: asyncio.Task[int | None] | None = None
    gone: asyncio.Task[None] | None = None


def home_of(job: JobEnv) -> Path:
    """The fresh home directory of a job's steps (under the job's root)."""
    return job.root / "home"


class SandboxExecutor:
    """Runs each step in a bubblewrap sandbox; see the module docstring.

    `kill_grace` is the shell executor's: SIGTERM reaches bwrap, which takes the sandbox
    down at once. `limits` picks how memory and process limits are enforced: `auto` (cgroups
    when this process may create them, else rlimits), `cgroup` or `rlimit`.
    """

    name = "sandbox"

    def __init__(self, *, kill_grace: float = 5.0, limits: str = "auto") -> None:
        self._shell = ShellExecutor(kill_grace=kill_grace)
        self._steps: dict[str, list[_Sandboxed]] = {}
        self._cgroups: dict[str, JobCgroup | None] = {}
        self._drop = os.geteuid() == 0
        self.limiter = Limiter(limits, drop=self._drop)

    def describe(self, job: JobEnv) -> list[str]:
        who = f"uid {STEP_UID} (nobody)" if self._drop else "the runner's uid in its own namespaces"
        network = "on" if job.isolation.network else "off (loopback only)"
        return [
            f"Executor sandbox (bubblewrap): steps run as {who}, with a private /tmp, "
            "read-only system directories and only the job's own directories writable; "
            f"network {network}; {self.limiter.describe(job.isolation)}"
        ]

    async def setup(self, job: JobEnv) -> None:
        await self._shell.setup(job)
        home = home_of(job)
        home.mkdir(mode=0o700, exist_ok=True)
        if job.key not in self._cgroups:
            self._cgroups[job.key] = self.limiter.prepare(job.key, job.isolation)

    async def start(self, job: JobEnv, process: StepProcess) -> StepHandle:
        if not process.argv:
            raise ValueError(f"step {process.step_key!r} has an empty argv")
        missing = _missing(process)
        if missing is not None:
            inner = self._shell.failed_start(job, process, missing)
            return StepHandle(step_key=process.step_key, native=_Sandboxed(inner, job))
        self._hand_over(job, STEP_UID, STEP_GID)
        env = dict(process.env)
        env["HOME"] = str(home_of(job))
        # The environment travels in bwrap's own environment (inherited by the step), never
        # on its command line.
        cgroup = self._cgroups.get(job.key)
        argv = (*self.limiter.prefix(cgroup, job.isolation), *self.command(job, process))
        wrapped = replace(process, argv=argv, env=env, cwd=job.root)
        counters = cgroup.counters() if cgroup is not None else (0, 0)
        # bwrap tells the sandbox's init pid on this pipe (`--info-fd`) once it is running.
        info_read, info_write = os.pipe()
        os.set_blocking(info_read, False)
        wrapped = replace(wrapped, argv=_with_info_fd(wrapped.argv, info_write))
        try:
            inner = await self._shell.start(job, wrapped, pass_fds=(info_write,))
        finally:
            os.close(info_write)
        step = _Sandboxed(inner, job, cgroup, counters)
        step.init_pidfd = asyncio.create_task(init_pidfd(info_read))
        self._steps.setdefault(job.key, []).append(step)
        return StepHandle(step_key=process.step_key, native=step)

    def command(self, job: JobEnv, process: StepProcess) -> tuple[str, ...]:
        """The bwrap command line that runs `process` sandboxed (no env values on it)."""
        read_only: list[Path] = []
        event = Path(process.env.get("GITHUB_EVENT_PATH", "") or "relative")
        if event.is_absolute() and event.is_file():
            read_only.append(event)
        return sandbox_argv(
            process.argv,
            cwd=process.cwd,
            writable=(job.workspace, job.temp, job.tool_cache, home_of(job)),
            read_only=read_only,
            network=job.isolation.network,
            drop=self._drop,
        )

    def tail(self, handle: StepHandle) -> AsyncIterator[bytes]:
        return self._shell.tail(_step_of(handle).inner)

    async def wait(self, handle: StepHandle) -> StepExit:
        step = _step_of(handle)
        exit_ = await self._shell.wait(step.inner)
        await _namespace_gone(step)
        self._hand_over(step.job, os.geteuid(), os.getegid())
        if exit_.exit_code != 0 and step.cgroup is not None:
            reason = step.cgroup.reason(step.counters)
            if reason is not None:
                exit_ = replace(exit_, reason=reason)
        return exit_

    async def kill(self, handle: StepHandle) -> None:
        step = _step_of(handle)
        await self._shell.kill(step.inner)
        await _namespace_gone(step)

    async def destroy(self, job: JobEnv) -> None:
        await self._shell.destroy(job)
        for step in self._steps.pop(job.key, []):
            await _namespace_gone(step)
        cgroup = self._cgroups.pop(job.key, None)
        if cgroup is not None:
            cgroup.release()
        with contextlib.suppress(OSError):  # setup may have failed
            self._hand_over(job, os.geteuid(), os.getegid())
        # Nothing a step wrote into its home survives the job.
        shutil.rmtree(home_of(job), ignore_errors=True)

    def _hand_over(self, job: JobEnv, uid: int, gid: int) -> None:
        """Give the job's writable directories to uid:gid: to the step user before a step
        (with what the runner wrote there: checkouts, command files), back to the runner's
        user after it (so that, e.g., git run by the runner trusts the workspace)."""
        if not self._drop:
            return
        for path in (job.workspace, job.temp, job.tool_cache, home_of(job)):
            chown_tree(path, uid, gid)


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


async def _init_exited(init_pidfd: asyncio.Task[int | None]) -> None:
    fd = await init_pidfd
    if fd is None:
        return
    try:
        await asyncio.wait_for(await_exit(fd), _NAMESPACE_GONE)
    except TimeoutError:
        pass
    finally:
        os.close(fd)


def _with_info_fd(argv: tuple[str, ...], fd: int) -> tuple[str, ...]:
    """`argv` (a limits prefix, then bwrap's command line) with `--info-fd fd` for bwrap."""
    at = argv.index("bwrap") + 1
    return (*argv[:at], "--info-fd", str(fd), *argv[at:])


async def init_pidfd(info_read: int) -> int | None:
    """A pidfd of the sandbox's init, from what bwrap writes on its `--info-fd` (one JSON
    object with `child-pid`); None when bwrap ended before telling, or the init is gone
    already."""
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
        if done.done():
            return
        if not chunk:
            done.set_result(None)
        with contextlib.suppress(ValueError):
            json.loads(bytes(data))  # whole: bwrap writes it at once, then closes its end
            done.set_result(None)

    loop.add_reader(info_read, readable)
    try:
        await asyncio.wait_for(done, _FIND_INIT + _NAMESPACE_GONE)
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


async def await_exit(fd: int) -> None:
    """Return once the process of pidfd `fd` has exited."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(fd, wake)
    try:
        await done
    finally:
        loop.remove_reader(fd)


def _step_of(handle: StepHandle) -> _Sandboxed:
    if not isinstance(handle.native, _Sandboxed):
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
