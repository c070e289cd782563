"""Releases: an artifact of a run, checked before anything is deployed from it.

`ReleaseVerifier.verify` re-hashes every file of the stored artifact and checks the run's
signed provenance (DSSE, Ed25519) against it and against the environment's policy: signed
by this server's key, built by an accepted builder, from the project's own repository, at
a ref the environment allows, with every file a subject. An unsigned, altered or foreign
artifact is refused with the reason (SECURITY-CASES 36, 37, 38). `unpack` copies the
verified files into a directory, re-hashing them on the way, for the controller.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from shipline.domain.artifacts import ArtifactFile, check_relative_path
from shipline.domain.errors import ShiplineError
from shipline.domain.records import ProjectRecord, RunRecord
from shipline.engine.protection import ref_refusal
from shipline.runner.ports import ArtifactStore
from shipline.security.provenance import Expectations, ProvenanceError, verify
from shipline.spec.environment_models import ProtectionRules

_CHUNK = 1 << 20


class Refused(ShiplineError):
    """The artifact may not be deployed; the message says why."""


@dataclass(frozen=True, slots=True)
class VerifiedRelease:
    """What verification established about an artifact of a run."""

    artifact: str
    digest: str
    provenance: str
    builder: str
    ref: str
    sha: str
    job_key: str
    files: tuple[ArtifactFile, ...]


def artifact_digest(files: Sequence[ArtifactFile]) -> str:
    """One digest for a whole artifact: SHA-256 of its sorted `path sha256` lines."""
    lines = "".join(f"{f.path} {f.sha256}\n" for f in sorted(files, key=lambda f: f.path))
    return "sha256:" + hashlib.sha256(lines.encode()).hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class ReleaseVerifier:
    """Verifies artifacts of runs, from the server's artifact and provenance stores.

    `trusted` are the public keys whose signatures count (the server's own); `builders`
    the builder ids accepted."""

    def __init__(
        self,
        artifacts: Callable[[int, int], ArtifactStore],
        provenance: Callable[[int, int, str], bytes | None],
        trusted: Sequence[Ed25519PublicKey],
        builders: frozenset[str] = Expectations().builders,
    ) -> None:
        self._artifacts = artifacts
        self._provenance = provenance
        self._trusted = tuple(trusted)
        self._builders = builders

    def verify(
        self, project: ProjectRecord, run: RunRecord, artifact: str, rules: ProtectionRules
    ) -> VerifiedRelease:
        """The verified release, or `Refused` with the reason."""
        # The run's current attempt: artifacts (and their provenance) are kept per attempt.
        store = self._artifacts(run.id, run.attempt)
        try:
            record = store.get(artifact)
        except ValueError as exc:
            raise Refused(f"{artifact!r} is not an artifact name: {exc}") from exc
        if record is None or not record.files:
            raise Refused(f"run {run.id} has no artifact {artifact!r}")
        envelope = self._provenance(run.id, run.attempt, artifact)
        if envelope is None:
            raise Refused(
                f"artifact {artifact!r} of run {run.id} has no signed provenance: only "
                "artifacts built by Shipline, with provenance from an accepted builder, deploy"
            )
        expect = Expectations(builders=self._builders, repository=project.repository)
        subjects: set[str] = set()
        builder = ref = commit = job = ""
        for file in record.files:
            actual = _sha256(store.open_file(file))
            if actual != file.sha256:
                raise Refused(
                    f"file {file.path!r} of artifact {artifact!r} changed after the build "
                    f"(stored digest {actual}, recorded {file.sha256})"
                )
            try:
                verified = verify(actual, envelope, self._trusted, expect)
            except ProvenanceError as exc:
                raise Refused(
                    f"the provenance of artifact {artifact!r} does not verify for "
                    f"{file.path!r}: {exc}"
                ) from exc
            subjects.add(verified.subject)
            builder, ref, commit, job = (
                verified.builder_id,
                verified.ref,
                verified.commit,
                verified.job,
            )
        expected = {f"{artifact}/{f.path}" for f in record.files}
        if not expected <= subjects:
            missing = ", ".join(sorted(expected - subjects))
            raise Refused(f"the provenance does not name every file of {artifact!r}: {missing}")
        if commit != run.sha or ref != run.ref:
            raise Refused(
                f"the provenance says {ref}@{commit[:12]}, but run {run.id} built "
                f"{run.ref}@{run.sha[:12]}"
            )
        refusal = ref_refusal(rules, ref)
        if refusal is not None:
            raise Refused(f"the artifact was built from a ref the environment refuses: {refusal}")
        return VerifiedRelease(
            artifact=artifact,
            digest=artifact_digest(record.files),
            provenance="sha256:" + hashlib.sha256(envelope).hexdigest(),
            builder=builder,
            ref=ref,
            sha=commit,
            job_key=job,
            files=record.files,
        )

    def unpack(self, run: RunRecord, release: VerifiedRelease, dest: Path) -> Path:
        """Copy the release's files into `dest` (replaced), re-hashing each one."""
        store = self._artifacts(run.id, run.attempt)
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        for file in release.files:
            target = dest / check_relative_path(file.path)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(store.open_file(file), target)
            if _sha256(target) != file.sha256:
                raise Refused(f"file {file.path!r} changed while it was unpacked")
            target.chmod(file.mode & 0o755)
        return dest
