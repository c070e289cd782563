"""Artifacts and caches on the local disk, for `shipline run` and the server.

Contents go to a `BlobStore`. Artifacts and the caches of `shipline run` keep a small JSON
index next to it, rewritten atomically (temporary file, then rename) so a crash leaves the
old or the new index, never a torn one; a lock makes each store safe to share between
threads of one process, and the cache index also takes a file lock (`flock`), because
several `shipline run` processes share it. The server's caches are indexed in its
database instead (`DatabaseCacheStore`), which every server process shares.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from shipline.domain.artifacts import (
    ArtifactFile,
    ArtifactRecord,
    CacheEntry,
    CacheInfo,
    check_relative_path,
)
from shipline.domain.clock import Clock, SystemClock
from shipline.store.blobs import BlobStore
from shipline.store.ports import Store

# Characters GitHub refuses in artifact names; '/' and '\\' would also make a name a path.
_BAD_NAME_CHARS = frozenset('":<>|*?\r\n\\/\x00')
_MAX_KEY = 512


def check_artifact_name(name: str) -> str:
    """Return `name` if it is a valid artifact name, else raise `ValueError`."""
    if not name or name in (".", "..") or any(c in _BAD_NAME_CHARS for c in name):
        raise ValueError(
            f"invalid artifact name {name!r}: must be non-empty and must not contain "
            'any of " : < > | * ? \\ / or line breaks'
        )
    return name


def _write_json_atomic(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=1, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        Path(name).replace(path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def normal_mode(mode: int) -> int:
    """Only the executable bit matters to a user; other bits are normalized so an artifact
    never carries setuid or world-writable modes to where it is downloaded."""
    return 0o755 if mode & 0o111 else 0o644


def _file_mode(path: Path) -> int:
    return normal_mode(path.stat().st_mode)


class LocalArtifactStore:
    """The artifacts of one run: blobs in `blobs`, the index in `run_dir/artifacts.json`."""

    def __init__(self, blobs: BlobStore, run_dir: Path) -> None:
        self.blobs = blobs
        self.index_path = run_dir / "artifacts.json"
        self._lock = threading.Lock()
        self._records: dict[str, ArtifactRecord] = self._load()

    def _load(self) -> dict[str, ArtifactRecord]:
        if not self.index_path.exists():
            return {}
        raw = json.loads(self.index_path.read_text(encoding="utf-8"))
        records = {}
        for item in raw["artifacts"]:
            files = tuple(
                ArtifactFile(f["path"], f["sha256"], int(f["size"]), int(f["mode"]))
                for f in item["files"]
            )
            records[item["name"]] = ArtifactRecord(item["name"], files, item["job_key"])
        return records

    def _save(self) -> None:
        _write_json_atomic(
            self.index_path,
            {
                "artifacts": [
                    {
                        "name": r.name,
                        "job_key": r.job_key,
                        "files": [
                            {"path": f.path, "sha256": f.sha256, "size": f.size, "mode": f.mode}
                            for f in r.files
                        ],
                    }
                    for r in self._records.values()
                ]
            },
        )

    def put(
        self,
        name: str,
        job_key: str,
        files: Sequence[tuple[str, Path]],
        *,
        overwrite: bool = False,
        modes: Mapping[str, int] | None = None,
    ) -> ArtifactRecord:
        """Store the files (path inside the artifact, local file) as artifact `name`.
        `modes` (by path in the artifact): the files' modes where the local file's is not
        theirs (a remote runner's upload, stored as a blob); normalized to 0755 or 0644.

        Raises `ValueError` for an invalid name, an unsafe or duplicate path, or an
        existing artifact of that name when `overwrite` is false.
        """
        check_artifact_name(name)
        seen: set[str] = set()
        for rel, _ in files:
            check_relative_path(rel)
            if rel in seen:
                raise ValueError(f"artifact {name!r}: path {rel!r} given twice")
            seen.add(rel)
        with self._lock:
            if name in self._records and not overwrite:
                raise ValueError(f"an artifact named {name!r} exists already in this run")
        # Hash and copy outside the lock: that is the slow part, and blobs are safe to
        # write concurrently. The name check is repeated under the lock below.
        stored = []
        for rel, local in sorted(files):
            sha, size = self.blobs.put_file(local)
            mode = normal_mode(modes[rel]) if modes and rel in modes else _file_mode(local)
            stored.append(ArtifactFile(rel, sha, size, mode))
        record = ArtifactRecord(name, tuple(stored), job_key)
        with self._lock:
            if name in self._records and not overwrite:
                raise ValueError(f"an artifact named {name!r} exists already in this run")
            self._records[name] = record
            self._save()
        return record

    def get(self, name: str) -> ArtifactRecord | None:
        with self._lock:
            return self._records.get(name)

    def list(self) -> list[ArtifactRecord]:
        with self._lock:
            return sorted(self._records.values(), key=lambda r: r.name)

    def open_file(self, file: ArtifactFile) -> Path:
        """The blob holding the file's content (read only)."""
        path = self.blobs.path(file.sha256)
        if not path.is_file():
            raise FileNotFoundError(f"blob of {file.path!r} is missing: {file.sha256}")
        return path


class LocalCacheStore:
    """Caches of every scope: archives in `blobs`, entries in the JSON file `index_path`.

    Lookup follows actions/cache: an exact match of the first key, else the newest entry
    whose key starts with one of the keys, in the order given; the version must match and
    only entries of the caller's scope are visible. Entries never change once saved.
    """

    def __init__(self, blobs: BlobStore, index_path: Path) -> None:
        self.blobs = blobs
        self.index_path = index_path
        self._lock = threading.Lock()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """This process's threads and other processes, one at a time (`flock` on a lock
        file beside the index: the index itself is replaced on every save)."""
        with self._lock:
            self.index_path.parent.mkdir(parents=True, exist_ok=True)
            lock_path = self.index_path.with_name(f".{self.index_path.name}.lock")
            with open(lock_path, "a+b") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)

    def _entries(self) -> list[dict[str, object]]:
        # Re-read on every call: several runs (processes) share one cache index.
        if not self.index_path.exists():
            return []
        entries: list[dict[str, object]] = json.loads(self.index_path.read_text(encoding="utf-8"))[
            "entries"
        ]
        return entries

    @staticmethod
    def _entry(raw: dict[str, object]) -> CacheEntry:
        return CacheEntry(
            str(raw["key"]), str(raw["version"]), str(raw["blob"]), int(str(raw["size"]))
        )

    def lookup(self, keys: Sequence[str], version: str, scope: str) -> CacheEntry | None:
        if not keys:
            return None
        with self._lock:
            candidates = [
                e for e in self._entries() if e["scope"] == scope and e["version"] == version
            ]
        for e in candidates:
            if e["key"] == keys[0]:
                return self._entry(e)
        # Newest first: the sequence number orders saves even within one clock tick.
        candidates.sort(key=lambda e: int(str(e["seq"])), reverse=True)
        for prefix in keys:
            for e in candidates:
                if str(e["key"]).startswith(prefix):
                    return self._entry(e)
        return None

    def save(self, key: str, version: str, scope: str, archive: Path) -> CacheEntry | None:
        """Store `archive` under `key`; None when the key (with this version) exists."""
        check_cache_key(key)
        blob, size = self.blobs.put_file(archive)
        with self._locked():
            entries = self._entries()
            if any(
                e["scope"] == scope and e["key"] == key and e["version"] == version for e in entries
            ):
                return None
            seq = max((int(str(e["seq"])) for e in entries), default=0) + 1
            entries.append(
                {
                    "scope": scope,
                    "key": key,
                    "version": version,
                    "blob": blob,
                    "size": size,
                    "seq": seq,
                    "created": time.time(),
                }
            )
            _write_json_atomic(self.index_path, {"entries": entries})
        return CacheEntry(key, version, blob, size)

    def listed(self, scope_prefix: str = "") -> list[CacheInfo]:
        """Entries whose scope starts with `scope_prefix`, newest first."""
        with self._lock:
            entries = [e for e in self._entries() if str(e["scope"]).startswith(scope_prefix)]
        entries.sort(key=lambda e: int(str(e["seq"])), reverse=True)
        return [
            CacheInfo(
                str(e["scope"]),
                str(e["key"]),
                str(e["version"]),
                int(str(e["size"])),
                float(str(e.get("created", 0))),
                str(e["blob"]),
            )
            for e in entries
        ]

    def open_entry(self, entry: CacheEntry) -> Path:
        """The archive of the entry (read only)."""
        path = self.blobs.path(entry.blob)
        if not path.is_file():
            raise FileNotFoundError(f"cache archive of {entry.key!r} is missing")
        return path


def check_cache_key(key: str) -> str:
    """Return `key` if it is a valid cache key, else raise `ValueError`."""
    if not key or len(key) > _MAX_KEY or "," in key:
        raise ValueError(f"invalid cache key {key!r}: 1-{_MAX_KEY} characters, no commas")
    return key


class DatabaseCacheStore:
    """Caches of every scope with archives in `blobs` and the index in the database
    (`CacheIndexStore`): the server's, shared by all its processes. Lookup follows the
    same rules as `LocalCacheStore`."""

    def __init__(self, blobs: BlobStore, store: Store, clock: Clock | None = None) -> None:
        self.blobs = blobs
        self.store = store
        self.clock = clock or SystemClock()

    def lookup(self, keys: Sequence[str], version: str, scope: str) -> CacheEntry | None:
        if not keys:
            return None
        with self.store.transaction(write=False) as tx:
            return tx.caches.find(scope, version, keys)

    def save(self, key: str, version: str, scope: str, archive: Path) -> CacheEntry | None:
        """Store `archive` under `key`; None when the key (with this version) exists."""
        check_cache_key(key)
        blob, size = self.blobs.put_file(archive)
        with self.store.transaction() as tx:
            return tx.caches.add(scope, key, version, blob, size, now=self.clock.now())

    def listed(self, scope_prefix: str = "") -> list[CacheInfo]:
        """Entries whose scope starts with `scope_prefix`, newest first."""
        with self.store.transaction(write=False) as tx:
            return tx.caches.listed(scope_prefix)

    def open_entry(self, entry: CacheEntry) -> Path:
        """The archive of the entry (read only)."""
        path = self.blobs.path(entry.blob)
        if not path.is_file():
            raise FileNotFoundError(f"cache archive of {entry.key!r} is missing")
        return path
