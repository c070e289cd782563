"""What the runner needs from the world, as narrow ports.

The runner never imports a store or the server: `wiring.py` hands it implementations of
these protocols (files under a state directory for `shipline run`; the server's blob store
over a connection later).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

# Re-exported: these live in `domain` so that `store/` and `scm/` can use them too.
from shipline.domain.artifacts import ActionFailed, ArtifactFile, ArtifactRecord, CacheEntry

__all__ = [
    "ActionCall",
    "ActionFailed",
    "ArtifactFile",
    "ArtifactRecord",
    "ArtifactStore",
    "CacheEntry",
    "CacheStore",
    "DeployOutcome",
    "Deployer",
    "LogFn",
    "SourceProvider",
]


class ArtifactStore(Protocol):
    """Artifacts of one run, stored content-addressed by SHA-256."""

    def put(
        self, name: str, job_key: str, files: Sequence[tuple[str, Path]], *, overwrite: bool = False
    ) -> ArtifactRecord:
        """Store the files (path inside the artifact, local file). Raises `ValueError` when
        an artifact of that name exists and `overwrite` is false."""
        ...

    def get(self, name: str) -> ArtifactRecord | None: ...

    def list(self) -> list[ArtifactRecord]: ...

    def open_file(self, file: ArtifactFile) -> Path:
        """A local path whose content is the file's blob (read only)."""
        ...


class CacheStore(Protocol):
    """Caches by key, scoped to (repository, ref); restore falls back by prefix."""

    def lookup(self, keys: Sequence[str], version: str, scope: str) -> CacheEntry | None:
        """The first exact match of `keys[0]`, else the newest entry whose key starts with
        one of `keys` in order (restore-keys), else None."""
        ...

    def save(self, key: str, version: str, scope: str, archive: Path) -> CacheEntry | None:
        """Store a tar archive under the key; None when the key exists already (immutable)."""
        ...

    def open_entry(self, entry: CacheEntry) -> Path: ...


class SourceProvider(Protocol):
    """Puts a repository's files at a commit into a directory (`actions/checkout`)."""

    async def checkout(
        self, dest: Path, *, sha: str, ref: str, fetch_depth: int, log: LogFn
    ) -> str:
        """Check out `sha` (or, when `sha` is empty, what `ref` names) into `dest` as a git
        working copy; on a local branch when `ref` is a branch. `fetch_depth` 0 means all
        history and tags. Returns the commit checked out; raises `ActionFailed`."""
        ...


class LogFn(Protocol):
    def __call__(self, line: str) -> None: ...


@dataclass(frozen=True, slots=True)
class DeployOutcome:
    """How a deployment a step asked for ended: `state` is the deployment's final state
    (`success`, `failure`, `rolled_back`, `skipped`, `refused`), `reason` why."""

    deployment_id: int | None
    state: str
    reason: str = ""


class Deployer(Protocol):
    """The server's deployment controller as a job sees it (`shipline/deploy`): in process
    for the embedded runner, over the API with the job's token for a remote runner."""

    async def deploy(self, artifact: str, log: LogFn) -> DeployOutcome:
        """Ask for `artifact` of this run to be rolled out to the job's environment, stream
        the rollout's progress to `log`, and return how it ended. The server verifies the
        artifact's digest and provenance first; a refusal is an outcome, not an error."""
        ...


@dataclass
class ActionCall:
    """Everything a built-in action gets: its inputs and where the job lives.

    `state` persists between an action's main part and its post part (e.g. a cache saved
    after the job succeeded); `outputs` is what the step sets for `steps.<id>.outputs`.
    `env_updates`/`path_updates` behave like lines written to GITHUB_ENV / GITHUB_PATH.
    """

    uses: str
    inputs: Mapping[str, str]
    workspace: Path
    temp: Path
    tool_cache: Path
    env: Mapping[str, str]
    github: Mapping[str, object]
    log: LogFn
    artifacts: ArtifactStore
    caches: CacheStore
    source: SourceProvider
    cache_scope: str
    outputs: dict[str, str] = field(default_factory=dict)
    env_updates: dict[str, str] = field(default_factory=dict)
    path_updates: list[str] = field(default_factory=list)
    state: dict[str, str] = field(default_factory=dict)
    # Scopes restores may also read, after `cache_scope` (decided by the server).
    cache_restore_scopes: tuple[str, ...] = ()
    # The server's deployment controller for this job (None: no server, e.g. `shipline run`).
    deployer: Deployer | None = None
    # The job set `unsafe_execute_untrusted_code: true` (a privileged pull request trigger
    # may then check out the pull request's head).
    unsafe_untrusted_code: bool = False
