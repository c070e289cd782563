"""Memory and process-count limits for a job's steps.

Where the machine lets this process create cgroups with the `memory` and `pids` controllers
(cgroup v1 hierarchies, or a cgroup v2 tree whose subtree this process may control), each
job gets its own cgroup(s) under this process's own, with `memory` and `pids` limits; every
step process joins them before it executes anything, so everything a step starts is counted
and nothing escapes by forking early. The cgroup also tells why a step died: an
out-of-memory kill, forks refused at the process limit.

Otherwise the limits fall back to rlimits set on the step's process (`prlimit`):
`RLIMIT_AS` (address space, a rough stand-in for memory) and `RLIMIT_NPROC` (counted per
user, so it only applies when steps run as their own unprivileged uid).

`Limiter.describe()` says which mechanism is in use; the job log shows it.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from shipline.domain.sizes import format_size
from shipline.executors.base import Isolation

MECHANISMS = ("auto", "cgroup", "rlimit")
_PREFIX = "shipline-"
# Joins the cgroups named by the arguments before `--`, then executes what follows, as the
# same process: nothing of the step runs outside them.
_JOIN = 'for f; do shift; [ "$f" = -- ] && break; echo $$ > "$f" || exit 125; done; exec "$@"'
_names = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Hierarchy:
    """Where this process may create child cgroups: the directory of its own cgroup for
    the memory and the pids controllers (one directory on cgroup v2)."""

    version: int
    memory: Path
    pids: Path


def find_hierarchy(mountinfo: str, own_cgroups: str) -> Hierarchy | str:
    """The cgroup directories of this process for `memory` and `pids`, from the texts of
    /proc/self/mountinfo and /proc/self/cgroup; or why there are none."""
    v1: dict[str, Path] = {}
    v2: Path | None = None
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields, extra = left.split(), right.split()
        if len(fields) < 5 or len(extra) < 3:
            continue
        root, mount = fields[3], Path(fields[4])
        if root != "/":
            continue  # a bind mount of a sub-tree: our own path is not below it as is
        if extra[0] == "cgroup2":
            v2 = mount
        elif extra[0] == "cgroup":
            for option in extra[2].split(","):
                if option in ("memory", "pids"):
                    v1[option] = mount
    paths: dict[str, str] = {}
    for line in own_cgroups.splitlines():
        number, controllers, path = [*line.split(":", 2), "", ""][:3]
        for controller in controllers.split(",") if controllers else ["" if number else "?"]:
            paths[controller] = path.lstrip("/")
    if "memory" in v1 and "pids" in v1:
        return Hierarchy(
            1,
            v1["memory"] / paths.get("memory", ""),
            v1["pids"] / paths.get("pids", ""),
        )
    if v2 is not None:
        own = v2 / paths.get("", "")
        try:
            available = (own / "cgroup.controllers").read_text().split()
        except OSError as exc:
            return f"cgroup v2 at {v2} is not readable ({exc.strerror})"
        missing = {"memory", "pids"} - set(available)
        if missing:
            return f"cgroup v2 at {own} does not offer {', '.join(sorted(missing))}"
        return Hierarchy(2, own, own)
    if v1:
        return "the memory and pids cgroup controllers are not both mounted"
    return "no cgroup hierarchy is mounted"


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _counter(path: Path, key: str) -> int:
    """The value of `key` in a flat-keyed cgroup file (`memory.events`, `pids.events`)."""
    try:
        text = _read(path)
    except OSError:
        return 0
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key and value.strip().isdigit():
            return int(value)
    return 0


@dataclass(slots=True)
class JobCgroup:
    """One job's cgroup(s) and what it was allowed."""

    hierarchy: Hierarchy
    directories: tuple[Path, ...]
    memory: int | None
    processes: int | None

    @property
    def memory_dir(self) -> Path:
        """The directory of the memory controller (the first; the only one on v2)."""
        return self.directories[0]

    @property
    def pids_dir(self) -> Path:
        """The directory of the pids controller (the last; the only one on v2)."""
        return self.directories[-1]

    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.directories]

    def counters(self) -> tuple[int, int]:
        """(out-of-memory kills, forks refused at the process limit) so far (0 for a
        limit the job does not have)."""
        events = "memory.events" if self.hierarchy.version == 2 else "memory.oom_control"
        return (
            _counter(self.memory_dir / events, "oom_kill") if self.memory is not None else 0,
            _counter(self.pids_dir / "pids.events", "max") if self.processes is not None else 0,
        )

    def reason(self, before: tuple[int, int]) -> str | None:
        """Why a step that started at counters `before` failed, when a limit was involved."""
        oom, forks = self.counters()
        if oom > before[0] and self.memory is not None:
            return (
                f"the job's memory limit ({format_size(self.memory)}) was reached: the "
                "kernel killed a process of the step (out of memory)"
            )
        if forks > before[1] and self.processes is not None:
            return (
                f"the job's process limit ({self.processes} processes and threads) was "
                f"reached: {forks - before[1]} fork(s) refused"
            )
        return None

    def release(self) -> None:
        """Kill whatever is left in the job's cgroups and remove them."""
        for directory in self.directories:
            _remove(directory)


def _remove(directory: Path) -> None:
    deadline = time.monotonic() + 2.0
    kill = directory / "cgroup.kill"
    while True:
        try:
            pids = [int(p) for p in _read(directory / "cgroup.procs").split()]
        except OSError:
            return  # gone already
        if not pids:
            break
        if kill.exists():
            with contextlib.suppress(OSError):
                kill.write_text("1")
        else:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            break
        time.sleep(0.01)
    with contextlib.suppress(OSError):
        directory.rmdir()


class Limiter:
    """Applies a job's `Isolation.memory` and `.processes` to its steps, by the best
    mechanism this machine offers (`auto`), or the one asked for (`cgroup`, `rlimit`).

    `drop` says the steps run as their own unprivileged uid (so a per-user process rlimit
    is meaningful).
    """

    def __init__(self, mechanism: str = "auto", *, drop: bool = True) -> None:
        if mechanism not in MECHANISMS:
            raise ValueError(f"no limit mechanism {mechanism!r} ({', '.join(MECHANISMS)})")
        self.drop = drop
        self.hierarchy: Hierarchy | None = None
        self.why_not_cgroups = "rlimits were asked for"
        if mechanism != "rlimit":
            found = usable_hierarchy()
            if isinstance(found, Hierarchy):
                self.hierarchy = found
            else:
                self.why_not_cgroups = found
                if mechanism == "cgroup":
                    raise RuntimeError(f"cgroups cannot be used here: {found}")

    @property
    def mechanism(self) -> str:
        if self.hierarchy is not None:
            return f"cgroup v{self.hierarchy.version}"
        return "rlimit"

    def describe(self, isolation: Isolation) -> str:
        """One line for the job log: the limits and how they are enforced."""
        parts = []
        if isolation.memory is not None:
            parts.append(f"memory {format_size(isolation.memory)}")
        if isolation.processes is not None:
            parts.append(f"{isolation.processes} processes")
        if not parts:
            return "limits: none"
        if self.hierarchy is not None:
            return f"limits: {', '.join(parts)} (through {self.mechanism})"
        how = "rlimits: memory as address space (RLIMIT_AS)"
        if isolation.processes is not None:
            how += (
                ", processes per user (RLIMIT_NPROC)"
                if self.drop
                else "; the process limit is NOT enforced (steps run as the runner's user)"
            )
        return f"limits: {', '.join(parts)} (through {how}; cgroups: {self.why_not_cgroups})"

    def prepare(self, job_key: str, isolation: Isolation) -> JobCgroup | None:
        """The job's cgroup(s) with its limits set, or None when rlimits are used (or
        there is nothing to limit)."""
        if self.hierarchy is None or (isolation.memory is None and isolation.processes is None):
            return None
        name = f"{_PREFIX}{os.getpid()}-{next(_names)}"
        h = self.hierarchy
        if h.memory == h.pids:  # v2: one cgroup, both controllers
            dirs: tuple[Path, ...] = (h.memory / name,)
        else:  # v1: a cgroup in each hierarchy whose limit the job has
            dirs = tuple(
                root / name
                for root, limit in ((h.memory, isolation.memory), (h.pids, isolation.processes))
                if limit is not None
            )
        for directory in dirs:
            directory.mkdir()
        cgroup = JobCgroup(h, dirs, isolation.memory, isolation.processes)
        try:
            if isolation.memory is not None:
                if h.version == 2:
                    (cgroup.memory_dir / "memory.max").write_text(str(isolation.memory))
                    swap = cgroup.memory_dir / "memory.swap.max"
                    if swap.exists():
                        swap.write_text("0")
                else:
                    (cgroup.memory_dir / "memory.limit_in_bytes").write_text(str(isolation.memory))
                    memsw = cgroup.memory_dir / "memory.memsw.limit_in_bytes"
                    if memsw.exists():
                        memsw.write_text(str(isolation.memory))
            if isolation.processes is not None:
                (cgroup.pids_dir / "pids.max").write_text(str(isolation.processes))
        except OSError:
            cgroup.release()
            raise
        return cgroup

    def prefix(self, cgroup: JobCgroup | None, isolation: Isolation) -> tuple[str, ...]:
        """What goes before a step's command line to put it under the job's limits."""
        if cgroup is not None:
            return ("/bin/sh", "-c", _JOIN, "shipline-limits", *cgroup.procs_files(), "--")
        rlimits = []
        if isolation.memory is not None:
            rlimits.append(f"--as={isolation.memory}")
        if isolation.processes is not None and self.drop:
            rlimits.append(f"--nproc={isolation.processes}")
        if not rlimits:
            return ()
        return ("prlimit", *rlimits, "--")


@functools.cache
def usable_hierarchy() -> Hierarchy | str:
    """Where this process can make job cgroups, or why it cannot (looked up once)."""
    try:
        found = find_hierarchy(
            _read(Path("/proc/self/mountinfo")), _read(Path("/proc/self/cgroup"))
        )
    except OSError as exc:
        return f"cannot read this process's cgroups ({exc.strerror})"
    if isinstance(found, str):
        return found
    if found.version == 2:
        control = found.memory / "cgroup.subtree_control"
        try:
            enabled = set(_read(control).split())
            if not {"memory", "pids"} <= enabled:
                control.write_text("+memory +pids")
        except OSError as exc:
            return (
                f"cannot enable the memory and pids controllers below {found.memory} "
                f"({exc.strerror}; a delegated cgroup is needed)"
            )
    if shutil.which("sh") is None:
        return "no /bin/sh to join cgroups with"
    for directory in {found.memory, found.pids}:
        _reap_stale(directory)
        probe = directory / f"{_PREFIX}probe-{os.getpid()}"
        try:
            probe.mkdir(exist_ok=True)
            probe.rmdir()
        except OSError as exc:
            return f"cannot create cgroups in {directory} ({exc.strerror})"
    return found


def _reap_stale(directory: Path) -> None:
    """Remove job cgroups left by runner processes that no longer exist."""
    with contextlib.suppress(OSError):
        for child in directory.iterdir():
            if not child.name.startswith(_PREFIX) or not child.is_dir():
                continue
            owner = child.name[len(_PREFIX) :].split("-", 1)[0]
            if owner.isdigit() and not Path(f"/proc/{owner}").exists():
                _remove(child)
