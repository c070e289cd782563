"""Finding the cgroups a runner may use, from real /proc texts of three kinds of machine."""

from __future__ import annotations

from pathlib import Path

from shipline.domain.sizes import format_size, parse_size
from shipline.executors.base import Isolation
from shipline.executors.limits import Hierarchy, Limiter, find_hierarchy

V1_MOUNTS = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
V1_OWN = """\
8:pids:/
4:memory:/process_api/6fb4
0::/
"""


def test_cgroup_v1_uses_the_memory_and_pids_hierarchies_at_our_own_paths() -> None:
    assert find_hierarchy(V1_MOUNTS, V1_OWN) == Hierarchy(
        1, Path("/sys/fs/cgroup/memory/process_api/6fb4"), Path("/sys/fs/cgroup/pids")
    )


def test_cgroup_v2_needs_both_controllers_in_our_cgroup(tmp_path: Path) -> None:
    own = tmp_path / "user.slice" / "runner.service"
    own.mkdir(parents=True)
    mounts = f"25 1 0:22 / {tmp_path} rw - cgroup2 cgroup2 rw\n"
    (own / "cgroup.controllers").write_text("cpu io memory pids\n")
    assert find_hierarchy(mounts, "0::/user.slice/runner.service\n") == Hierarchy(2, own, own)
    (own / "cgroup.controllers").write_text("cpu io\n")
    reason = find_hierarchy(mounts, "0::/user.slice/runner.service\n")
    assert reason == f"cgroup v2 at {own} does not offer memory, pids"


def test_no_cgroups_or_half_of_them_is_a_reason() -> None:
    assert find_hierarchy("", "") == "no cgroup hierarchy is mounted"
    memory_only = "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
    assert "not both mounted" in str(find_hierarchy(memory_only, V1_OWN))


def test_rlimits_are_described_with_what_they_cannot_do() -> None:
    limiter = Limiter("rlimit", drop=False)
    line = limiter.describe(Isolation(memory=1 << 30, processes=100))
    assert "memory 1 GiB, 100 processes" in line
    assert "RLIMIT_AS" in line
    assert "process limit is NOT enforced" in line
    assert limiter.prefix(None, Isolation(memory=1 << 30, processes=100)) == (
        "prlimit",
        f"--as={1 << 30}",
        "--",
    )
    dropping = Limiter("rlimit", drop=True)
    assert dropping.prefix(None, Isolation(processes=100)) == ("prlimit", "--nproc=100", "--")
    assert dropping.prefix(None, Isolation()) == ()
    assert limiter.describe(Isolation()) == "limits: none"


def test_sizes_read_and_written() -> None:
    assert parse_size("512M") == 512 << 20
    assert parse_size("2GiB") == 2 << 30
    assert parse_size("1.5g") == 3 << 29
    assert parse_size("4096") == 4096
    for bad in ("", "G", "lots", "-1G", "0", "inf", "nan"):
        assert parse_size(bad) is None, bad
    assert format_size(2 << 30) == "2 GiB"
    assert format_size(1536 << 10) == "1.5 MiB"
    assert format_size(100) == "100 bytes"
