"""The files of a remote runner's job, through the server: the repository at the run's
commit (a git bundle), artifacts and caches (blobs uploaded first, hashed and verified by
the server, then named).

Everything is decided by the server from the job a token belongs to: the run whose
artifacts a job sees, and the cache scopes (`engine.trust.cache_scopes`, from the run's
project, ref and trust class, as for the embedded runner: an untrusted job writes only
into its own scope, which no trusted job reads), never from what the runner says.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from shipline.domain.artifacts import ArtifactRecord, CacheEntry, CacheInfo
from shipline.domain.records import ProjectRecord, RunRecord
from shipline.engine.errors import Conflict, Invalid, NotFound
from shipline.engine.remote import Holder
from shipline.engine.trust import cache_scopes
from shipline.runner.ports import CacheStore
from shipline.store.ports import Store


class Blobs(Protocol):
    """Content-addressed blobs (see `store.blobs.BlobStore`)."""

    def path(self, sha256: str) -> Path: ...

    def exists(self, sha256: str) -> bool: ...

    def put_file(self, path: Path) -> tuple[str, int]: ...


# Writes a git bundle of the project's repository, holding commit `sha`, to a path.
Bundler = Callable[[ProjectRecord, str, Path], None]
# Signs and keeps the provenance of an artifact a run's job stored (`ProvenanceWriter`).
Signer = Callable[[RunRecord, ArtifactRecord], None]


class RunArtifacts(Protocol):
    """The artifacts of one run's attempt (see `store.local.LocalArtifactStore`): files
    stored from blobs carry the modes the runner reported."""

    def put(
        self,
        name: str,
        job_key: str,
        files: Sequence[tuple[str, Path]],
        *,
        overwrite: bool = False,
        modes: Mapping[str, int] | None = None,
    ) -> ArtifactRecord: ...

    def get(self, name: str) -> ArtifactRecord | None: ...

    def list(self) -> list[ArtifactRecord]: ...


class JobFiles:
    """Source, artifacts and caches of remote jobs, over the server's blob store."""

    def __init__(
        self,
        store: Store,
        blobs: Blobs,
        artifacts: Callable[[int, int], RunArtifacts],
        caches: CacheStore,
        listed_caches: Callable[[str], list[CacheInfo]],
        bundle: Bundler,
        sign: Signer | None = None,
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.artifacts = artifacts
        self.caches = caches
        self.listed_caches = listed_caches
        self.bundle = bundle
        # The server signs every artifact a remote job stores, as for embedded jobs (the
        # runner never sees the key); None: unsigned (tests of other parts).
        self.sign = sign

    def _run(self, holder: Holder) -> tuple[RunRecord, ProjectRecord]:
        with self.store.transaction(write=False) as tx:
            run = tx.runs.get(holder.job.run_id)
            project = tx.projects.get_by_id(run.project_id) if run is not None else None
        if run is None or project is None:
            raise NotFound("the run of this job is gone")
        return run, project

    def scopes(self, holder: Holder) -> tuple[str, tuple[str, ...]]:
        """Where the job saves caches, and the other scopes its restores may read."""
        run, project = self._run(holder)
        return cache_scopes(project.name, run.ref, project.default_branch, run.trust)

    # -- source ------------------------------------------------------------------------

    def source(self, holder: Holder, dest: Path) -> None:
        """A git bundle of the repository, with the run's commit, written to `dest`."""
        run, project = self._run(holder)
        self.bundle(project, run.sha, dest)

    # -- blobs -------------------------------------------------------------------------

    def put_blob(self, received: Path, sha256: str) -> tuple[str, int]:
        """Store an uploaded file whose SHA-256 the runner claims is `sha256`; `Invalid`
        when the content does not match."""
        sha, size = self.blobs.put_file(received)
        if sha != sha256:
            raise Invalid(f"the upload's SHA-256 is {sha}, not {sha256}", field="sha256")
        return sha, size

    def blob(self, holder: Holder, sha256: str) -> Path:
        """A blob the job may read: a file of its run's artifacts or a cache of its scope."""
        run, _ = self._run(holder)
        in_artifacts = any(
            f.sha256 == sha256
            for record in self.artifacts(run.id, holder.job.attempt).list()
            for f in record.files
        )
        own, restores = self.scopes(holder)
        in_caches = in_artifacts or any(
            e.blob == sha256 and e.scope == scope
            for scope in (own, *restores)
            for e in self.listed_caches(scope)
        )
        if not in_caches:
            raise NotFound("no such blob for this job")
        path = self.blobs.path(sha256)
        if not path.is_file():
            raise NotFound("the blob is missing from the blob store")
        return path

    # -- artifacts ---------------------------------------------------------------------

    def put_artifact(
        self,
        holder: Holder,
        name: str,
        files: Sequence[tuple[str, str, int]],
        *,
        overwrite: bool,
    ) -> ArtifactRecord:
        """Name uploaded blobs (path in the artifact, SHA-256, mode) as an artifact of the
        run, and sign its provenance."""
        local: list[tuple[str, Path]] = []
        for path, sha, _ in files:
            if not self.blobs.exists(sha):
                raise Invalid(f"file {path!r}: blob {sha} was not uploaded", field="files")
            local.append((path, self.blobs.path(sha)))
        modes = {path: mode for path, _, mode in files}
        try:
            record = self.artifacts(holder.job.run_id, holder.job.attempt).put(
                name, holder.job.key, local, overwrite=overwrite, modes=modes
            )
        except ValueError as exc:
            if "exists already" in str(exc):
                raise Conflict(str(exc), field="name") from exc
            raise Invalid(str(exc), field="name") from exc
        if self.sign is not None:
            run, _ = self._run(holder)
            self.sign(run, record)
        return record

    def artifact(self, holder: Holder, name: str) -> ArtifactRecord | None:
        return self.artifacts(holder.job.run_id, holder.job.attempt).get(name)

    def list_artifacts(self, holder: Holder) -> list[ArtifactRecord]:
        return self.artifacts(holder.job.run_id, holder.job.attempt).list()

    # -- caches ------------------------------------------------------------------------

    def cache_lookup(self, holder: Holder, keys: Sequence[str], version: str) -> CacheEntry | None:
        """The job's own scope first, then those it may restore from (in order)."""
        own, restores = self.scopes(holder)
        for scope in (own, *restores):
            entry = self.caches.lookup(keys, version, scope)
            if entry is not None:
                return entry
        return None

    def cache_save(self, holder: Holder, key: str, version: str, sha256: str) -> CacheEntry | None:
        """Name an uploaded archive as a cache entry; None when the key exists already."""
        if not self.blobs.exists(sha256):
            raise Invalid(f"blob {sha256} was not uploaded", field="sha256")
        try:
            own, _ = self.scopes(holder)
            return self.caches.save(key, version, own, self.blobs.path(sha256))
        except ValueError as exc:
            raise Invalid(str(exc), field="key") from exc
