"""The server signs SLSA provenance for every artifact a run stores.

`SignedArtifacts` wraps a run's artifact store: after each upload it calls the run's
`ProvenanceWriter`, which builds the statement from what the control plane recorded (the
project's repository, the run's ref, commit, workflow and inputs; the job; the builder)
and signs it with the server's key. A step only chooses which files it uploads; it never
sees the key or writes a field of the provenance other than the subjects' names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shipline.domain.audit_chain import iso_utc
from shipline.domain.clock import Clock
from shipline.domain.records import RunRecord
from shipline.runner.ports import ArtifactFile, ArtifactRecord, ArtifactStore
from shipline.security.provenance import BuildFacts, Subject, sign_statement, statement
from shipline.store.ports import Store

SaveFn = Callable[[str, bytes], None]


def _stamp(at: datetime) -> str:
    return iso_utc(at.replace(microsecond=0)).replace("+00:00", "Z")


class ProvenanceWriter:
    """Signs provenance for the artifacts of runs with `key` as builder `builder_id`."""

    def __init__(self, store: Store, clock: Clock, key: Ed25519PrivateKey, builder_id: str) -> None:
        self._store = store
        self._clock = clock
        self._key = key
        self.builder_id = builder_id

    def envelope(self, run: RunRecord, record: ArtifactRecord) -> bytes:
        """The signed DSSE envelope for one artifact of `run`."""
        with self._store.transaction(write=False) as tx:
            project = tx.projects.get_by_id(run.project_id)
            current = tx.runs.get(run.id) or run
        repository = project.repository if project is not None else ""
        now = self._clock.now()
        inputs = current.inputs if isinstance(current.inputs, dict) else {}
        facts = BuildFacts(
            repository=repository,
            ref=current.ref,
            commit=current.sha,
            pipeline_path=current.workflow_file,
            job=record.job_key,
            inputs={str(k): v for k, v in inputs.items()},
            builder_id=self.builder_id,
            invocation_id=(
                f"urn:shipline:run:{current.id}:attempt:{current.attempt}:job:{record.job_key}"
            ),
            started_on=_stamp(current.started_at or current.created_at or now),
            finished_on=_stamp(now),
            internal={
                "event": current.event,
                "trust": str(current.trust),
                "project": project.name if project is not None else "",
                "runId": current.id,
                "attempt": current.attempt,
            },
        )
        subjects = [Subject(f"{record.name}/{f.path}", f.sha256) for f in record.files]
        return sign_statement(statement(subjects, facts), self._key)


class SignedArtifacts:
    """An `ArtifactStore` whose uploads get signed provenance, saved by `save(name, env)`."""

    def __init__(
        self, inner: ArtifactStore, run: RunRecord, writer: ProvenanceWriter, save: SaveFn
    ) -> None:
        self._inner = inner
        self._run = run
        self._writer = writer
        self._save = save

    def put(
        self, name: str, job_key: str, files: Sequence[tuple[str, Path]], *, overwrite: bool = False
    ) -> ArtifactRecord:
        record = self._inner.put(name, job_key, files, overwrite=overwrite)
        self._save(record.name, self._writer.envelope(self._run, record))
        return record

    def get(self, name: str) -> ArtifactRecord | None:
        return self._inner.get(name)

    def list(self) -> list[ArtifactRecord]:
        return self._inner.list()

    def open_file(self, file: ArtifactFile) -> Path:
        return self._inner.open_file(file)
