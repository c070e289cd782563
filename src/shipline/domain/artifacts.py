"""The plain records of artifacts and caches, shared by the runner and the stores.

They live in `domain` so that `store/` and `scm/` can build them (and raise
`ActionFailed`) and `runner/` can consume them without either importing the other: the
layers forbid store -> runner. `shipline.runner.ports` re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass


class ActionFailed(Exception):
    """A built-in action failed; the message is shown as the step's error."""


@dataclass(frozen=True, slots=True)
class ArtifactFile:
    """One file of an artifact: its path inside the artifact, digest and size.

    `path` is relative, POSIX-separated and never contains `..` (stores refuse it).
    """

    path: str
    sha256: str
    size: int
    mode: int = 0o644


@dataclass(frozen=True, slots=True)
class ArtifactRecord:
    """An artifact of a run: a name and its files."""

    name: str
    files: tuple[ArtifactFile, ...]
    job_key: str = ""

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """A saved cache: its key, version (a digest of the cached paths) and archive blob."""

    key: str
    version: str
    blob: str
    size: int


def check_relative_path(path: str) -> str:
    """Return `path` if it is a safe relative POSIX path inside an artifact or cache.

    Raises `ValueError` for what could escape a target directory when joined to it: an
    empty path, an absolute one, `//`, a `.` or `..` component, a backslash (a separator on
    Windows) or a NUL byte. Names such as `foo..bar` and `.foo` are fine.
    """
    if not path or "\x00" in path or "\\" in path:
        raise ValueError(f"unsafe path {path!r}")
    if path.startswith("/") or "//" in path or path.endswith("/"):
        raise ValueError(f"unsafe path {path!r}: must be relative, without empty components")
    if any(part in (".", "..") for part in path.split("/")):
        raise ValueError(f"unsafe path {path!r}: '.' and '..' components are not allowed")
    return path


@dataclass(frozen=True, slots=True)
class CacheInfo:
    """A stored cache entry as listings show it: where it belongs (`scope`: repository and
    ref), its key and version, size, when it was saved (Unix time) and its blob digest."""

    scope: str
    key: str
    version: str
    size: int
    created: float
    blob: str
