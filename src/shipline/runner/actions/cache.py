"""`actions/cache` (and its `restore` and `save` halves): directories kept across runs.

Semantics follow actions/cache: `path` (lines, globs, `~`, `!` exclusions), `key`,
`restore-keys` (prefixes, newest entry first), `lookup-only`, `fail-on-cache-miss`;
`cache-hit` is "true" only for an exact key match; the cache is saved after the job
when it succeeded and the key did not hit. The version is a digest of the `path` input,
so a key saved for other paths is not restored.

Archives are tar.gz files whose members are named `workspace/...` or `home/...`: only
those two roots are ever cached or written to. Restoring rejects absolute names, `..`,
links and anything that would land outside its root, including through a symlink that
already exists on disk (tarfile's `data` filter resolves the destination).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tarfile
import tempfile
from pathlib import Path
from typing import Literal

from shipline.domain.artifacts import check_relative_path
from shipline.runner.actions._common import (
    expand,
    flag,
    glob_paths,
    glob_regex,
    home,
    is_inside,
    lexical,
    lines,
    text,
)
from shipline.runner.ports import ActionCall, ActionFailed

Mode = Literal["both", "restore", "save"]


def cache_version(paths: list[str]) -> str:
    """The version of a cache: which paths it holds and how they are packed."""
    return hashlib.sha256("|".join([*paths, "tar.gz", "shipline-1"]).encode()).hexdigest()


def _roots(call: ActionCall) -> dict[str, Path]:
    # The workspace first: it usually lies inside the home directory.
    return {"workspace": call.workspace, "home": home(call)}


def _collect(call: ActionCall, patterns: list[str]) -> list[tuple[str, Path]]:
    """Archive names and local paths of what `patterns` select, inside the two roots."""
    roots = {tag: lexical(root) for tag, root in _roots(call).items()}
    excludes = [
        glob_regex(str(lexical(expand(call, p[1:], call.workspace))))
        for p in patterns
        if p.startswith("!")
    ]
    picked: dict[str, Path] = {}

    def add(path: Path) -> None:
        if any(rx.fullmatch(str(path)) for rx in excludes):
            return
        for tag, root in roots.items():
            if path == root:
                return  # a root itself has no archive name; its content is walked
            if path.is_relative_to(root):
                if not is_inside(path.parent, root):
                    break  # reached through a symlinked directory that leaves the root
                picked.setdefault(f"{tag}/{path.relative_to(root).as_posix()}", path)
                return
        call.log(f"Warning: not caching {path}: outside the workspace and home directory")

    for pattern in patterns:
        if pattern.startswith("!"):
            continue
        for hit in glob_paths(lexical(expand(call, pattern, call.workspace))):
            add(hit)
            if hit.is_dir() and not hit.is_symlink():
                # os.walk does not follow symlinked directories: links are archived as links.
                for folder, dirs, files in os.walk(hit):
                    for name in sorted(dirs + files):
                        add(Path(folder) / name)
    return sorted(picked.items())


def _pack(items: list[tuple[str, Path]], roots: dict[str, Path], dest: Path) -> int:
    """Write the archive; returns how many entries it holds."""
    count = 0
    with tarfile.open(dest, "w:gz") as tar:
        for arcname, path in items:
            info = tar.gettarinfo(str(path), arcname)
            if info.issym():
                # A link is kept only if it resolves inside its own root.
                root = roots[arcname.partition("/")[0]]
                if not is_inside(path, root):
                    continue
            elif info.islnk():
                info.type, info.linkname = tarfile.REGTYPE, ""
                info.size = path.stat().st_size
            elif not (info.isfile() or info.isdir()):
                continue  # devices, fifos and sockets are not cacheable
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if info.isfile():
                with path.open("rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
            count += 1
    return count


def _unpack(archive: Path, roots: dict[str, Path]) -> int:
    """Extract into the roots; raises `ActionFailed` for any member that could escape."""
    with tarfile.open(archive, "r:gz") as tar:
        members = tar.getmembers()
        placed: list[tuple[tarfile.TarInfo, Path]] = []
        for m in members:
            tag, _, rel = m.name.partition("/")
            root = roots.get(tag)
            try:
                if root is None:
                    raise ValueError("not below workspace/ or home/")
                check_relative_path(rel.rstrip("/"))
                if m.islnk() or not (m.isfile() or m.isdir() or m.issym()):
                    raise ValueError("only files, directories and symlinks are restored")
            except ValueError as exc:
                raise ActionFailed(f"refusing cache archive member {m.name!r}: {exc}") from None
            placed.append((m.replace(name=rel, deep=False), root))
        for member, root in placed:
            try:
                tar.extract(member, path=root, filter="data")
            except (tarfile.FilterError, OSError) as exc:
                raise ActionFailed(
                    f"refusing cache archive member {member.name!r}: {exc}"
                ) from None
    return len(placed)


class CacheAction:
    """`actions/cache@*` (mode "both"), `actions/cache/restore@*` and `actions/cache/save@*`."""

    def __init__(self, mode: Mode = "both") -> None:
        self.mode: Mode = mode
        self.name = {
            "both": "actions/cache",
            "restore": "actions/cache/restore",
            "save": "actions/cache/save",
        }[mode]

    async def run(self, call: ActionCall) -> None:
        paths = lines(call, "path")
        key = text(call, "key")
        if not paths:
            raise ActionFailed("input 'path' is required")
        if not key:
            raise ActionFailed("input 'key' is required")
        if self.mode == "save":
            await self._save(call, paths, key)
            return
        keys = [key, *lines(call, "restore-keys")]
        version = cache_version(paths)
        entry = None
        # The run's own scope first, then those the server lets it read (the default
        # branch's); it saves only to its own.
        for scope in dict.fromkeys((call.cache_scope, *call.cache_restore_scopes)):
            entry = call.caches.lookup(keys, version, scope)
            if entry is not None:
                break
        call.state.update({"primary-key": key, "matched-key": entry.key if entry else ""})
        call.outputs["cache-primary-key"] = key
        if entry is None:
            call.outputs["cache-hit"] = "false"
            if flag(call, "fail-on-cache-miss", False):
                raise ActionFailed(
                    "Failed to restore cache entry. Exiting as fail-on-cache-miss is set. "
                    f"Input key: {key}"
                )
            call.log(f"Cache not found for input keys: {', '.join(keys)}")
            return
        call.outputs["cache-hit"] = "true" if entry.key == key else "false"
        call.outputs["cache-matched-key"] = entry.key
        if flag(call, "lookup-only", False):
            call.log(f"Cache found and can be restored from key: {entry.key}")
            return
        archive = call.caches.open_entry(entry)
        try:
            count = await asyncio.to_thread(_unpack, archive, _roots(call))
        except ActionFailed as exc:
            # A cache is an optimization: a bad archive is a miss, not a failed job.
            call.log(f"Warning: cache not restored: {exc}")
            call.outputs["cache-hit"] = "false"
            call.state["matched-key"] = ""
            return
        call.log(f"Cache restored from key: {entry.key} ({count} entries, {entry.size} bytes)")

    async def post(self, call: ActionCall, job_succeeded: bool) -> None:
        if self.mode != "both":
            return
        key = call.state.get("primary-key", "")
        if not key:
            return
        if not job_succeeded:
            call.log("Not saving cache: the job did not succeed")
        elif call.state.get("matched-key") == key:
            call.log(f"Cache hit occurred on the primary key {key}, not saving cache.")
        else:
            await self._save(call, lines(call, "path"), key)

    async def _save(self, call: ActionCall, paths: list[str], key: str) -> None:
        items = await asyncio.to_thread(_collect, call, paths)
        if not items:
            call.log(
                "Warning: Path Validation Error: Path(s) specified in the action for "
                "caching do(es) not exist, hence no cache is being saved."
            )
            return
        call.temp.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=call.temp, prefix="cache-", suffix=".tar.gz")
        os.close(fd)
        archive = Path(name)
        try:
            await asyncio.to_thread(_pack, items, _roots(call), archive)
            try:
                entry = call.caches.save(key, cache_version(paths), call.cache_scope, archive)
            except ValueError as exc:
                call.log(f"Warning: cache not saved: {exc}")
                return
        finally:
            archive.unlink(missing_ok=True)
        if entry is None:
            call.log(f"Cache not saved: an entry for key {key} exists already")
        else:
            call.log(f"Cache saved with key: {key} ({entry.size} bytes)")
