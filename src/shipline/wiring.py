"""The composition root: the only module that knows the concrete executor, stores and
source provider, and builds the object graph from them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from shipline.executors.shell import ShellExecutor
from shipline.runner.job import JobRunner
from shipline.runner.model import JobObserver
from shipline.scm.git_checkout import GitSourceProvider
from shipline.store.blobs import BlobStore
from shipline.store.local import LocalArtifactStore, LocalCacheStore


def local_job_runner(
    *,
    repo_root: Path,
    state_dir: Path,
    run_dir: Path,
    observer: JobObserver,
    host_env: Mapping[str, str],
) -> JobRunner:
    """A runner for `shipline run`: shell executor, stores under the state directory,
    checkouts from the local repository."""
    blobs = BlobStore(state_dir / "blobs")
    return JobRunner(
        ShellExecutor(),
        observer,
        work_root=run_dir / "jobs",
        artifacts=LocalArtifactStore(blobs, run_dir),
        caches=LocalCacheStore(blobs, state_dir / "caches.json"),
        source=GitSourceProvider(repo_root),
        host_env=host_env,
    )
