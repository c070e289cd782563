"""Content-addressed blob storage on the local filesystem.

Every blob lives at `root/sha256/<first two hex digits>/<remaining 62>`, so equal contents
are stored once and a path names its content. Writes go to a temporary file in the same
filesystem and are renamed into place, so a reader never sees a half-written blob, even
when two processes store the same content at the same time.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import BinaryIO

_SHA256 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1024 * 1024


class BlobStore:
    """Blobs by SHA-256 under `root`; safe for concurrent writers (threads and processes)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._tmp = root / "tmp"

    def path(self, sha256: str) -> Path:
        """Where the blob with this digest lives (whether or not it exists).

        Raises `ValueError` for anything but 64 lowercase hex digits: a digest is used as a
        file name, so it must never be able to name another place.
        """
        if not _SHA256.fullmatch(sha256):
            raise ValueError(f"not a SHA-256 digest: {sha256!r}")
        return self.root / "sha256" / sha256[:2] / sha256[2:]

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def put_file(self, path: Path) -> tuple[str, int]:
        """Store a file's content; returns its digest and size. Reads the file once."""
        with path.open("rb") as src:
            return self._put_stream(src)

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        """Store `data`; returns its digest and size."""
        sha = hashlib.sha256(data).hexdigest()
        if self.exists(sha):
            return sha, len(data)
        tmp = self._new_temp()
        try:
            with tmp.open("wb") as out:
                out.write(data)
            self._commit(tmp, sha)
        finally:
            tmp.unlink(missing_ok=True)
        return sha, len(data)

    def _put_stream(self, src: BinaryIO) -> tuple[str, int]:
        # Hash while copying to the temporary file: the content is read once, and the
        # digest is of exactly the bytes written (the source may change meanwhile).
        digest = hashlib.sha256()
        size = 0
        tmp = self._new_temp()
        try:
            with tmp.open("wb") as out:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
            sha = digest.hexdigest()
            if not self.exists(sha):
                self._commit(tmp, sha)
        finally:
            tmp.unlink(missing_ok=True)
        return sha, size

    def _new_temp(self) -> Path:
        self._tmp.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self._tmp, prefix="blob-")
        os.close(fd)
        return Path(name)

    def _commit(self, tmp: Path, sha: str) -> None:
        final = self.path(sha)
        final.parent.mkdir(parents=True, exist_ok=True)
        # Blobs are immutable: read-only makes an accidental write through an
        # `open_file` path fail instead of corrupting every artifact sharing it.
        tmp.chmod(0o444)
        # rename is atomic; a concurrent writer of the same content renames identical
        # bytes over it, which readers cannot observe.
        tmp.replace(final)
