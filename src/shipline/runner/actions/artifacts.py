"""`actions/upload-artifact` and `actions/download-artifact`, with GitHub's path semantics.

Upload: `path` lines are globs (`!` excludes); files are stored relative to the least
common ancestor of the search paths (the literal part of each pattern), so uploading
`dist/` stores `a.whl`, and a single file is stored under its own name. Hidden files
(any component starting with `.`) are left out unless `include-hidden-files: true`.

Security (SECURITY-CASES 34, 35): a file is uploaded only if its real path, with every
symlink resolved, is inside the workspace; a link that leaves it (to a runner token,
another job's workspace, /etc) is skipped with a warning. Stored paths are checked by
`check_relative_path`. Download writes each file through a temporary file renamed into
place, creates directories one component at a time and refuses any that resolve outside
the target directory, and verifies each file's SHA-256 against the record.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from fnmatch import fnmatchcase
from pathlib import Path

from shipline.domain.artifacts import ArtifactFile, ArtifactRecord, check_relative_path
from shipline.runner.actions._common import (
    expand,
    flag,
    glob_paths,
    glob_regex,
    is_inside,
    lexical,
    lines,
    search_root,
    text,
)
from shipline.runner.ports import ActionCall, ActionFailed, ArtifactStore

_CHUNK = 1024 * 1024


def collect_upload(
    call: ActionCall, patterns: list[str], *, include_hidden: bool
) -> list[tuple[str, Path]]:
    """(path inside the artifact, real local file) for what `patterns` select."""
    workspace = lexical(call.workspace)
    real_workspace = Path(os.path.realpath(workspace))
    excludes = [
        glob_regex(str(lexical(expand(call, p[1:], workspace)))) for p in patterns if p[0] == "!"
    ]
    includes = [lexical(expand(call, p, workspace)) for p in patterns if p[0] != "!"]
    searches = [Path(search_root(str(p))) for p in includes]
    found: dict[Path, Path] = {}  # lexical path -> real path

    def add_file(path: Path) -> None:
        if any(rx.fullmatch(str(path)) for rx in excludes):
            return
        rel = path.relative_to(workspace).parts if path.is_relative_to(workspace) else ()
        if not include_hidden and any(part.startswith(".") for part in rel):
            return
        real = Path(os.path.realpath(path))
        if not real.is_relative_to(real_workspace):
            call.log(f"Warning: skipping {path}: it resolves to {real}, outside the workspace")
            return
        found.setdefault(path, real)

    def walk(path: Path, seen: frozenset[Path]) -> None:
        real = Path(os.path.realpath(path))
        if not real.is_relative_to(real_workspace):
            call.log(f"Warning: skipping {path}: it resolves to {real}, outside the workspace")
        elif real.is_dir():
            if real in seen:
                return  # a symlink loop
            for child in sorted(path.iterdir()):
                walk(child, seen | {real})
        elif real.is_file():
            add_file(path)

    for pattern in includes:
        for hit in glob_paths(pattern):
            walk(hit, frozenset())
    if not found:
        return []
    if len(searches) == 1:
        only = searches[0]
        root = only.parent if list(found) == [only] else only
    else:
        root = Path(os.path.commonpath(searches))
    files = []
    for path, real in sorted(found.items()):
        try:
            rel = check_relative_path(path.relative_to(root).as_posix())
        except ValueError as exc:
            call.log(f"Warning: skipping {path}: {exc}")
            continue
        files.append((rel, real))
    return files


def _artifact_digest(record: ArtifactRecord) -> str:
    listing = "".join(f"{f.sha256}  {f.path}\n" for f in record.files)
    return hashlib.sha256(listing.encode()).hexdigest()


class UploadArtifactAction:
    """`actions/upload-artifact@*`."""

    name = "actions/upload-artifact"

    async def run(self, call: ActionCall) -> None:
        name = text(call, "name", "artifact")
        patterns = lines(call, "path")
        if not patterns:
            raise ActionFailed("input 'path' is required")
        missing = text(call, "if-no-files-found", "warn").lower()
        if missing not in ("warn", "error", "ignore"):
            raise ActionFailed(f"if-no-files-found must be warn, error or ignore: {missing!r}")
        if text(call, "retention-days"):
            call.log("retention-days is recorded by the server; local runs keep artifacts")
        files = await asyncio.to_thread(
            collect_upload,
            call,
            patterns,
            include_hidden=flag(call, "include-hidden-files", False),
        )
        if not files:
            message = f"No files were found with the provided path: {', '.join(patterns)}."
            if missing == "error":
                raise ActionFailed(message + " No artifacts will be uploaded.")
            if missing == "warn":
                call.log(f"Warning: {message} No artifacts will be uploaded.")
            return
        job_key = str(call.github.get("job") or "")
        try:
            record = await asyncio.to_thread(
                call.artifacts.put,
                name,
                job_key,
                files,
                overwrite=flag(call, "overwrite", False),
            )
        except ValueError as exc:
            raise ActionFailed(f"cannot upload artifact {name!r}: {exc}") from None
        call.log(f"Uploaded artifact {name!r}: {len(record.files)} files, {record.size} bytes")
        call.outputs["artifact-id"] = record.name
        call.outputs["artifact-digest"] = _artifact_digest(record)

    async def post(self, call: ActionCall, job_succeeded: bool) -> None:
        return None


def _safe_dir(target: Path, parts: tuple[str, ...]) -> Path:
    """Create `target/parts...` one level at a time, refusing symlinks that leave it."""
    current = target
    for part in parts:
        current = current / part
        if current.is_symlink():
            if not is_inside(current, target):
                raise ActionFailed(f"refusing to write through symlink {current}")
        elif not current.exists():
            current.mkdir()
        if not current.is_dir():
            raise ActionFailed(f"cannot create directory {current}: a file is in the way")
    return current


def _write_file(store: ArtifactStore, file: ArtifactFile, target: Path) -> None:
    try:
        rel = check_relative_path(file.path)
    except ValueError as exc:
        raise ActionFailed(f"refusing artifact entry: {exc}") from None
    *folders, name = rel.split("/")
    folder = _safe_dir(target, tuple(folders))
    dest = folder / name
    if dest.is_dir() and not dest.is_symlink():
        raise ActionFailed(f"cannot write {dest}: a directory is in the way")
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, store.open_file(file).open("rb") as src:
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != file.sha256:
            raise ActionFailed(f"artifact file {rel!r} does not match its SHA-256 digest")
        tmp.chmod(file.mode & 0o755)
        # rename replaces a symlink at `dest` itself instead of writing where it points.
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)


def download(store: ArtifactStore, record: ArtifactRecord, target: Path) -> None:
    """Write the artifact's files below `target` (created if needed)."""
    for file in record.files:  # refuse a bad artifact before writing any of it
        try:
            check_relative_path(file.path)
        except ValueError as exc:
            raise ActionFailed(f"refusing artifact {record.name!r}: {exc}") from None
    target.mkdir(parents=True, exist_ok=True)
    real_target = Path(os.path.realpath(target))
    for file in record.files:
        _write_file(store, file, real_target)


def _is_plain_name(name: str) -> bool:
    # Each artifact goes to `path/<name>/`: the name must be one safe path component.
    return "/" not in name and name not in (".", "..") and "\\" not in name and "\x00" not in name


class DownloadArtifactAction:
    """`actions/download-artifact@*`: one artifact by `name`, or all (matching `pattern`)."""

    name = "actions/download-artifact"

    async def run(self, call: ActionCall) -> None:
        name = text(call, "name")
        target = lexical(expand(call, text(call, "path", "."), call.workspace))
        if name:
            record = call.artifacts.get(name)
            if record is None:
                raise ActionFailed(f"Artifact not found for name: {name}")
            await asyncio.to_thread(download, call.artifacts, record, target)
            call.log(f"Downloaded artifact {name!r} to {target}")
        else:
            pattern = text(call, "pattern")
            records = [
                r for r in call.artifacts.list() if not pattern or fnmatchcase(r.name, pattern)
            ]
            merge = flag(call, "merge-multiple", False)
            for record in records:
                if not merge and not _is_plain_name(record.name):
                    raise ActionFailed(f"refusing artifact with unsafe name {record.name!r}")
                dest = target if merge else target / record.name
                await asyncio.to_thread(download, call.artifacts, record, dest)
            call.log(f"Downloaded {len(records)} artifacts to {target}")
        call.outputs["download-path"] = str(target)

    async def post(self, call: ActionCall, job_succeeded: bool) -> None:
        return None
