"""BlobStore: content addressing, dedupe, atomic writes, digest validation."""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from shipline.store.blobs import BlobStore


def test_put_bytes_stores_content_under_its_digest(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    sha, size = blobs.put_bytes(b"hello")
    assert sha == hashlib.sha256(b"hello").hexdigest()
    assert size == 5
    assert blobs.path(sha) == tmp_path / "sha256" / sha[:2] / sha[2:]
    assert blobs.path(sha).read_bytes() == b"hello"
    assert blobs.exists(sha)


def test_put_file_streams_large_files_and_dedupes(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    blobs = BlobStore(tmp_path / "blobs")
    sha, size = blobs.put_file(src)
    assert (sha, size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert blobs.put_bytes(data) == (sha, size)
    stored = [p for p in (tmp_path / "blobs" / "sha256").rglob("*") if p.is_file()]
    assert stored == [blobs.path(sha)]
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []  # no temp files left


def test_blobs_are_read_only(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    sha, _ = blobs.put_bytes(b"x")
    assert blobs.path(sha).stat().st_mode & 0o222 == 0


def test_empty_content_is_a_blob_too(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    sha, size = blobs.put_file(empty)
    assert size == 0
    assert blobs.path(sha).read_bytes() == b""


@pytest.mark.parametrize("bad", ["", "../../etc/passwd", "ab", "A" * 64, "g" * 64, "a" * 63])
def test_path_refuses_anything_but_a_digest(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="not a SHA-256"):
        BlobStore(tmp_path).path(bad)


def test_concurrent_writers_of_the_same_content(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    with ThreadPoolExecutor(8) as pool:
        results = set(pool.map(lambda _: blobs.put_bytes(b"same" * 1000), range(32)))
    assert len(results) == 1
    sha, _ = results.pop()
    assert blobs.path(sha).read_bytes() == b"same" * 1000


def test_missing_blob_does_not_exist(tmp_path: Path) -> None:
    assert not BlobStore(tmp_path).exists("0" * 64)
