"""Signed provenance of a run's artifacts on disk: `run_dir/provenance/<name>.intoto.json`,
written atomically beside the run's artifact index."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from shipline.store.local import check_artifact_name

SUFFIX = ".intoto.json"


class ProvenanceFiles:
    """The provenance envelopes of one run's artifacts, by artifact name."""

    def __init__(self, run_dir: Path) -> None:
        self.root = run_dir / "provenance"

    def _path(self, name: str) -> Path:
        return self.root / (check_artifact_name(name) + SUFFIX)

    def save(self, name: str, envelope: bytes) -> None:
        path = self._path(name)
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(envelope)
                out.flush()
                os.fsync(out.fileno())
            Path(tmp).replace(path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def load(self, name: str) -> bytes | None:
        try:
            return self._path(name).read_bytes()
        except (FileNotFoundError, ValueError):
            return None
