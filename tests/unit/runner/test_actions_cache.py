"""actions/cache: hit, miss, restore-keys, immutability, and archives that try to escape."""

from __future__ import annotations

import asyncio
import io
import tarfile
from pathlib import Path

import pytest

from shipline.runner.actions.cache import CacheAction, cache_version
from shipline.runner.ports import ActionCall, ActionFailed
from tests.unit.runner.action_calls import Job, Run


def write(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def cache_step(
    job: Job, *, succeeded: bool = True, mode: str = "both", **inputs: str
) -> ActionCall:
    """The main part, then (like the end of the job) the post part."""
    action = CacheAction(mode)  # type: ignore[arg-type]
    call = job.call(f"actions/{action.name.removeprefix('actions/')}@v4", inputs)
    asyncio.run(action.run(call))
    asyncio.run(action.post(call, succeeded))
    return call


def test_miss_then_save_then_exact_hit(tmp_path: Path) -> None:
    run = Run(tmp_path)
    first = run.job("first")
    write(first.workspace / "deps" / "lib.txt", "built")
    call = cache_step(first, path="deps", key="deps-abc")
    assert call.outputs["cache-hit"] == "false"
    assert any("Cache saved with key: deps-abc" in line for line in first.logs)

    second = run.job("second")
    call = cache_step(second, path="deps", key="deps-abc")
    assert call.outputs["cache-hit"] == "true"
    assert (second.workspace / "deps" / "lib.txt").read_text() == "built"
    assert any("not saving cache" in line for line in second.logs)


def test_restore_keys_restore_but_do_not_count_as_hit(tmp_path: Path) -> None:
    run = Run(tmp_path)
    old = run.job("old")
    write(old.workspace / "deps" / "a.txt", "old")
    cache_step(old, path="deps", key="deps-1")
    new = run.job("new")
    call = cache_step(new, path="deps", key="deps-2", **{"restore-keys": "nothing-\ndeps-"})
    assert call.outputs["cache-hit"] == "false"
    assert call.outputs["cache-matched-key"] == "deps-1"
    assert (new.workspace / "deps" / "a.txt").read_text() == "old"
    # Saved under the new key in post, as actions/cache does.
    assert run.caches.lookup(["deps-2"], cache_version(["deps"]), "acme/app@refs/heads/main")


def test_not_saved_when_the_job_failed(tmp_path: Path) -> None:
    run = Run(tmp_path)
    job = run.job()
    write(job.workspace / "deps" / "a.txt")
    cache_step(job, succeeded=False, path="deps", key="k")
    assert run.caches.lookup(["k"], cache_version(["deps"]), "acme/app@refs/heads/main") is None


def test_entries_are_immutable(tmp_path: Path) -> None:
    run = Run(tmp_path)
    job = run.job()
    write(job.workspace / "out" / "v.txt", "first")
    cache_step(job, mode="save", path="out", key="k")
    write(job.workspace / "out" / "v.txt", "second")
    cache_step(job, mode="save", path="out", key="k")
    assert any("exists already" in line for line in job.logs)
    other = run.job("other")
    call = cache_step(other, mode="restore", path="out", key="k")
    assert call.outputs["cache-hit"] == "true"
    assert (other.workspace / "out" / "v.txt").read_text() == "first"


def test_version_follows_the_paths(tmp_path: Path) -> None:
    run = Run(tmp_path)
    job = run.job()
    write(job.workspace / "a" / "f")
    cache_step(job, mode="save", path="a", key="k")
    call = cache_step(run.job("b"), mode="restore", path="a\nb", key="k")
    assert call.outputs["cache-hit"] == "false"
    assert "cache-matched-key" not in call.outputs


def test_scopes_do_not_share(tmp_path: Path) -> None:
    run = Run(tmp_path)
    job = run.job()
    write(job.workspace / "a" / "f")
    cache_step(job, mode="save", path="a", key="k")
    fork = run.job("fork")
    action = CacheAction("restore")
    call = fork.call("actions/cache/restore@v4", {"path": "a", "key": "k"}, scope="acme/app@pr")
    asyncio.run(action.run(call))
    assert call.outputs["cache-hit"] == "false"


def test_lookup_only_and_fail_on_cache_miss(tmp_path: Path) -> None:
    run = Run(tmp_path)
    job = run.job()
    write(job.workspace / "a" / "f")
    cache_step(job, mode="save", path="a", key="k")
    other = run.job("other")
    call = cache_step(other, mode="restore", path="a", key="k", **{"lookup-only": "true"})
    assert call.outputs["cache-hit"] == "true"
    assert not (other.workspace / "a").exists()
    with pytest.raises(ActionFailed, match="fail-on-cache-miss"):
        cache_step(other, path="a", key="missing", **{"fail-on-cache-miss": "true"})


def test_home_paths_globs_and_exclusions(tmp_path: Path) -> None:
    run = Run(tmp_path)
    job = run.job()
    write(job.home / ".cache" / "pip" / "wheel.whl", "w")
    write(job.workspace / "node" / "a" / "keep.js", "k")
    write(job.workspace / "node" / "a" / "skip.log", "s")
    cache_step(job, mode="save", path="~/.cache/pip\nnode/**/*.js\n!node/**/skip*", key="k")
    other = run.job("other")
    cache_step(other, mode="restore", path="~/.cache/pip\nnode/**/*.js\n!node/**/skip*", key="k")
    assert (other.home / ".cache" / "pip" / "wheel.whl").read_text() == "w"
    assert (other.workspace / "node" / "a" / "keep.js").read_text() == "k"
    assert not (other.workspace / "node" / "a" / "skip.log").exists()


def test_paths_outside_workspace_and_home_are_not_cached(tmp_path: Path) -> None:
    run = Run(tmp_path)
    job = run.job()
    outside = write(tmp_path / "elsewhere" / "secret", "CANARY")
    cache_step(job, mode="save", path=str(outside.parent), key="k")
    assert any("outside the workspace" in line for line in job.logs)
    assert (
        run.caches.lookup(["k"], cache_version([str(outside.parent)]), "acme/app@refs/heads/main")
        is None
    )


def _evil_archive(tmp_path: Path, members: list[tarfile.TarInfo]) -> Path:
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for m in members:
            if m.isfile():
                m.size = 5
                tar.addfile(m, io.BytesIO(b"PWNED"))
            else:
                tar.addfile(m)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


@pytest.mark.parametrize(
    "members",
    [
        [_member("workspace/../../moo")],
        [_member("/etc/cron.d/x")],
        [_member("workspace//moo")],
        [_member("elsewhere/moo")],
        [_member("workspace/link", tarfile.SYMTYPE, "/tmp"), _member("workspace/link/moo")],
        [_member("workspace/up", tarfile.SYMTYPE, "../../.."), _member("workspace/up/moo")],
        [_member("workspace/hard", tarfile.LNKTYPE, "/etc/passwd")],
    ],
)
def test_hostile_archives_write_nothing_outside(
    tmp_path: Path, members: list[tarfile.TarInfo]
) -> None:
    run = Run(tmp_path)
    job = run.job()
    job.call("warm-up")
    version = cache_version(["stuff"])
    run.caches.save("k", version, "acme/app@refs/heads/main", _evil_archive(tmp_path, members))
    call = cache_step(job, mode="restore", path="stuff", key="k")
    assert call.outputs["cache-hit"] == "false"
    assert any("cache not restored" in line for line in job.logs)
    assert not list(tmp_path.rglob("moo"))
    assert not Path("/tmp/moo").exists()


def test_existing_symlink_on_disk_is_not_followed(tmp_path: Path) -> None:
    run = Run(tmp_path)
    job = run.job()
    outside = tmp_path / "outside"
    outside.mkdir()
    job.call("warm-up")
    (job.workspace / "tmp").symlink_to(outside, target_is_directory=True)
    archive = _evil_archive(tmp_path, [_member("workspace/tmp/moo")])
    run.caches.save("k", cache_version(["tmp"]), "acme/app@refs/heads/main", archive)
    cache_step(job, mode="restore", path="tmp", key="k")
    assert list(outside.iterdir()) == []


def test_symlinks_inside_the_workspace_round_trip(tmp_path: Path) -> None:
    run = Run(tmp_path)
    job = run.job()
    write(job.workspace / "d" / "real.txt", "r")
    (job.workspace / "d" / "alias.txt").symlink_to("real.txt")
    (job.workspace / "d" / "escape").symlink_to(tmp_path)
    cache_step(job, mode="save", path="d", key="k")
    other = run.job("other")
    cache_step(other, mode="restore", path="d", key="k")
    assert (other.workspace / "d" / "alias.txt").read_text() == "r"
    assert (other.workspace / "d" / "alias.txt").is_symlink()
    assert not (other.workspace / "d" / "escape").exists()


def test_required_inputs(tmp_path: Path) -> None:
    with pytest.raises(ActionFailed, match="'key' is required"):
        cache_step(Run(tmp_path).job(), path="a")
