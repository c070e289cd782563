"""LocalArtifactStore and LocalCacheStore: persistence, validation, matching rules."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from shipline.store.blobs import BlobStore
from shipline.store.local import LocalArtifactStore, LocalCacheStore


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs")


def _file(tmp_path: Path, name: str, content: bytes, mode: int = 0o644) -> Path:
    path = tmp_path / "src" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    path.chmod(mode)
    return path


# --- artifacts ---------------------------------------------------------------------------


def test_artifact_round_trip_and_persistence(tmp_path: Path, blobs: BlobStore) -> None:
    store = LocalArtifactStore(blobs, tmp_path / "run")
    a = _file(tmp_path, "a.whl", b"wheel")
    tool = _file(tmp_path, "tool", b"#!/bin/sh\n", 0o775)
    record = store.put("dist", "build", [("a.whl", a), ("bin/tool", tool)])
    assert [f.path for f in record.files] == ["a.whl", "bin/tool"]
    assert record.size == len(b"wheel") + len(b"#!/bin/sh\n")
    assert [f.mode for f in record.files] == [0o644, 0o755]
    assert store.open_file(record.files[0]).read_bytes() == b"wheel"

    reopened = LocalArtifactStore(blobs, tmp_path / "run")
    assert reopened.get("dist") == record
    assert reopened.list() == [record]
    assert json.loads((tmp_path / "run" / "artifacts.json").read_text())["artifacts"]


def test_artifact_names_are_unique_unless_overwritten(tmp_path: Path, blobs: BlobStore) -> None:
    store = LocalArtifactStore(blobs, tmp_path / "run")
    one, two = _file(tmp_path, "1", b"1"), _file(tmp_path, "2", b"2")
    store.put("logs", "a", [("x", one)])
    with pytest.raises(ValueError, match="exists already"):
        store.put("logs", "b", [("x", two)])
    replaced = store.put("logs", "b", [("x", two)], overwrite=True)
    assert store.get("logs") == replaced
    assert store.open_file(replaced.files[0]).read_bytes() == b"2"


@pytest.mark.parametrize(
    "bad", ["../../etc/passwd", "/etc/cron.d/x", "//moo", "tmp/../../moo", "a/./b", "", "a\\b"]
)
def test_artifact_paths_that_could_escape_are_refused(
    tmp_path: Path, blobs: BlobStore, bad: str
) -> None:
    store = LocalArtifactStore(blobs, tmp_path / "run")
    with pytest.raises(ValueError, match="unsafe path"):
        store.put("x", "j", [(bad, _file(tmp_path, "f", b"f"))])
    assert store.get("x") is None


def test_dotted_names_are_fine(tmp_path: Path, blobs: BlobStore) -> None:
    store = LocalArtifactStore(blobs, tmp_path / "run")
    f = _file(tmp_path, "f", b"f")
    record = store.put("x", "j", [("foo..bar", f), (".foo", f), ("d/.hidden..x", f)])
    assert len(record.files) == 3


@pytest.mark.parametrize("bad", ["", "a/b", "..", "a:b", "a*", "line\nbreak"])
def test_invalid_artifact_names(tmp_path: Path, blobs: BlobStore, bad: str) -> None:
    with pytest.raises(ValueError, match="invalid artifact name"):
        LocalArtifactStore(blobs, tmp_path / "run").put(bad, "j", [])


def test_duplicate_paths_in_one_artifact(tmp_path: Path, blobs: BlobStore) -> None:
    f = _file(tmp_path, "f", b"f")
    with pytest.raises(ValueError, match="given twice"):
        LocalArtifactStore(blobs, tmp_path / "run").put("x", "j", [("a", f), ("a", f)])


def test_parallel_uploads_all_land_in_the_index(tmp_path: Path, blobs: BlobStore) -> None:
    store = LocalArtifactStore(blobs, tmp_path / "run")
    files = [_file(tmp_path, f"f{i}", str(i).encode()) for i in range(20)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: store.put(f"a{i}", "j", [("f", files[i])]), range(20)))
    assert len(LocalArtifactStore(blobs, tmp_path / "run").list()) == 20


# --- caches ------------------------------------------------------------------------------


def _archive(tmp_path: Path, content: bytes) -> Path:
    return _file(tmp_path, "archive.tgz", content)


def test_cache_exact_match_first(tmp_path: Path, blobs: BlobStore) -> None:
    caches = LocalCacheStore(blobs, tmp_path / "caches.json")
    caches.save("deps-linux-abc", "v1", "s", _archive(tmp_path, b"exact"))
    caches.save("deps-linux-abcdef", "v1", "s", _archive(tmp_path, b"newer"))
    entry = caches.lookup(["deps-linux-abc", "deps-"], "v1", "s")
    assert entry is not None
    assert entry.key == "deps-linux-abc"
    assert caches.open_entry(entry).read_bytes() == b"exact"


def test_cache_restore_keys_match_newest_prefix_in_order(tmp_path: Path, blobs: BlobStore) -> None:
    caches = LocalCacheStore(blobs, tmp_path / "caches.json")
    caches.save("deps-linux-1", "v1", "s", _archive(tmp_path, b"1"))
    caches.save("deps-linux-2", "v1", "s", _archive(tmp_path, b"2"))
    caches.save("deps-mac-3", "v1", "s", _archive(tmp_path, b"3"))
    found = caches.lookup(["deps-linux-9", "deps-linux-", "deps-"], "v1", "s")
    assert found is not None and found.key == "deps-linux-2"
    found = caches.lookup(["nothing", "deps-"], "v1", "s")
    assert found is not None and found.key == "deps-mac-3"
    assert caches.lookup(["nothing", "other-"], "v1", "s") is None


def test_cache_version_and_scope_must_match(tmp_path: Path, blobs: BlobStore) -> None:
    caches = LocalCacheStore(blobs, tmp_path / "caches.json")
    caches.save("k", "v1", "repo@refs/heads/main", _archive(tmp_path, b"x"))
    assert caches.lookup(["k"], "v2", "repo@refs/heads/main") is None
    assert caches.lookup(["k"], "v1", "repo@refs/pull/1/merge") is None
    assert caches.lookup(["k"], "v1", "repo@refs/heads/main") is not None


def test_cache_entries_are_immutable(tmp_path: Path, blobs: BlobStore) -> None:
    caches = LocalCacheStore(blobs, tmp_path / "caches.json")
    first = caches.save("k", "v1", "s", _archive(tmp_path, b"first"))
    assert first is not None
    assert caches.save("k", "v1", "s", _archive(tmp_path, b"second")) is None
    reopened = LocalCacheStore(blobs, tmp_path / "caches.json")
    entry = reopened.lookup(["k"], "v1", "s")
    assert entry == first
    assert reopened.open_entry(entry).read_bytes() == b"first"


@pytest.mark.parametrize("bad", ["", "a,b", "k" * 513])
def test_invalid_cache_keys(tmp_path: Path, blobs: BlobStore, bad: str) -> None:
    caches = LocalCacheStore(blobs, tmp_path / "caches.json")
    with pytest.raises(ValueError, match="invalid cache key"):
        caches.save(bad, "v1", "s", _archive(tmp_path, b"x"))
