"""SLSA v1 provenance: in-toto Statement v1 in a DSSE envelope, signed with Ed25519.

The server (never a step or a runner) signs; anyone with the public key verifies offline.
Verification follows DSSE's rules (`PROVENANCE.md` b.5, b.6): the signature is checked over
the PAE of the exact payload bytes before anything is parsed, `keyid` is ignored for
decisions, both base64 alphabets are accepted, and the statement used afterwards is parsed
from those verified bytes only. Unknown `externalParameters` are refused.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from shipline.domain.errors import ShiplineError

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
BUILD_TYPE = "urn:shipline:buildtypes:workflow:v1"
# One builder id per mode of different strength: verifiers accept specific ones.
BUILDER_EMBEDDED_SANDBOX = "urn:shipline:builders:embedded-sandbox:v1"
BUILDER_EMBEDDED_SHELL = "urn:shipline:builders:embedded-shell:v1"
BUILDER_REMOTE = "urn:shipline:builders:remote-runner:v1"
EXTERNAL_PARAMETERS = frozenset({"repository", "ref", "pipelinePath", "job", "inputs"})


class ProvenanceError(ShiplineError):
    """Provenance that does not verify; the message says which check failed."""


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding of (type, body)."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(body), body)


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def public_pem(public: Ed25519PublicKey) -> str:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise ProvenanceError(f"not a PEM public key ({exc})") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ProvenanceError("the key is not an Ed25519 public key")
    return key


def sign_statement(statement: Mapping[str, object], private: Ed25519PrivateKey) -> bytes:
    """The DSSE envelope (JSON bytes) of `statement` signed with `private`."""
    body = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
    signature = private.sign(pae(PAYLOAD_TYPE, body))
    envelope = {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(body).decode(),
        "signatures": [
            {"keyid": key_id(private.public_key()), "sig": base64.b64encode(signature).decode()}
        ],
    }
    return json.dumps(envelope, indent=2).encode() + b"\n"


@dataclass(frozen=True, slots=True)
class Subject:
    name: str
    sha256: str


@dataclass(frozen=True, slots=True)
class BuildFacts:
    """What the control plane knows about the build of an artifact (never a step's word)."""

    repository: str
    ref: str
    commit: str
    pipeline_path: str
    job: str
    inputs: Mapping[str, object]
    builder_id: str
    invocation_id: str
    started_on: str
    finished_on: str
    internal: Mapping[str, object] = field(default_factory=dict)


def statement(subjects: Sequence[Subject], facts: BuildFacts) -> dict[str, object]:
    """The in-toto Statement v1 with an SLSA v1 provenance predicate."""
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": s.name, "digest": {"sha256": s.sha256}} for s in subjects],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "repository": facts.repository,
                    "ref": facts.ref,
                    "pipelinePath": facts.pipeline_path,
                    "job": facts.job,
                    "inputs": dict(facts.inputs),
                },
                "internalParameters": dict(facts.internal),
                "resolvedDependencies": [
                    {
                        "uri": f"git+{facts.repository}@{facts.ref}",
                        "digest": {"gitCommit": facts.commit},
                    }
                ],
            },
            "runDetails": {
                "builder": {"id": facts.builder_id},
                "metadata": {
                    "invocationId": facts.invocation_id,
                    "startedOn": facts.started_on,
                    "finishedOn": facts.finished_on,
                },
            },
        },
    }


def _b64(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise ProvenanceError(f"the envelope's {what} is not a base64 string")
    padded = text + "=" * (-len(text) % 4)
    try:  # DSSE: accept both the standard and the URL-safe alphabet
        if "-" in text or "_" in text:
            return base64.b64decode(padded, altchars=b"-_", validate=True)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ProvenanceError(f"the envelope's {what} is not valid base64") from exc


def open_envelope(envelope: bytes, trusted: Sequence[Ed25519PublicKey]) -> bytes:
    """The payload of a DSSE envelope when a trusted key signed it (else `ProvenanceError`).

    The returned bytes are exactly those verified: parse them, never the envelope again.
    """
    try:
        outer = json.loads(envelope)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProvenanceError("the provenance file is not a JSON DSSE envelope") from exc
    if not isinstance(outer, dict):
        raise ProvenanceError("the provenance file is not a JSON DSSE envelope")
    payload_type = outer.get("payloadType")
    if payload_type != PAYLOAD_TYPE:
        raise ProvenanceError(
            f"unsupported payloadType {payload_type!r} (expected {PAYLOAD_TYPE!r})"
        )
    body = _b64(outer.get("payload"), "payload")
    signatures = outer.get("signatures")
    if not isinstance(signatures, list) or not signatures:
        raise ProvenanceError("the provenance is not signed (no signatures)")
    message = pae(payload_type, body)
    for entry in signatures:
        if not isinstance(entry, dict):
            continue
        signature = _b64(entry.get("sig"), "signature")
        for key in trusted:  # keyid is only a hint: every trusted key is tried
            try:
                key.verify(signature, message)
            except InvalidSignature:
                continue
            return body
    raise ProvenanceError(
        "no signature verifies with the given key: the provenance was altered, or signed "
        "by another key"
    )


@dataclass(frozen=True, slots=True)
class Expectations:
    """What a verifier requires beyond a valid signature and digest."""

    builders: frozenset[str] = frozenset(
        {BUILDER_EMBEDDED_SANDBOX, BUILDER_EMBEDDED_SHELL, BUILDER_REMOTE}
    )
    repository: str | None = None
    ref_pattern: str | None = None


@dataclass(frozen=True, slots=True)
class Verified:
    """What verified provenance says about the artifact."""

    subject: str
    builder_id: str
    repository: str
    ref: str
    commit: str
    job: str


def _field(obj: object, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            raise ProvenanceError(f"the statement has no {'.'.join(path)}")
        obj = obj[key]
    return obj


def verify(
    artifact_sha256: str,
    envelope: bytes,
    trusted: Sequence[Ed25519PublicKey],
    expect: Expectations,
) -> Verified:
    """Check signature, subject digest, predicate type, builder, and parameters."""
    body = open_envelope(envelope, trusted)
    try:
        stmt = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProvenanceError("the signed payload is not JSON") from exc
    if _field(stmt, "_type") != STATEMENT_TYPE:
        raise ProvenanceError(f"the payload is not an in-toto Statement v1 ({STATEMENT_TYPE})")
    if _field(stmt, "predicateType") != PREDICATE_TYPE:
        raise ProvenanceError(f"predicateType is not {PREDICATE_TYPE}")
    subjects = _field(stmt, "subject")
    if not isinstance(subjects, list):
        raise ProvenanceError("the statement's subject is not a list")
    matched = [
        s
        for s in subjects
        if isinstance(s, dict)
        and isinstance(s.get("digest"), dict)
        and s["digest"].get("sha256") == artifact_sha256.lower()
    ]
    if not matched:
        raise ProvenanceError(
            f"the artifact's SHA-256 {artifact_sha256} is not a subject of this provenance: "
            "the file was changed, or the provenance is of another artifact"
        )
    builder = _field(stmt, "predicate", "runDetails", "builder", "id")
    if builder not in expect.builders:
        raise ProvenanceError(f"builder {builder!r} is not one this verification accepts")
    if _field(stmt, "predicate", "buildDefinition", "buildType") != BUILD_TYPE:
        raise ProvenanceError(f"buildType is not {BUILD_TYPE}")
    params = _field(stmt, "predicate", "buildDefinition", "externalParameters")
    if not isinstance(params, dict):
        raise ProvenanceError("externalParameters is not an object")
    unknown = sorted(set(params) - EXTERNAL_PARAMETERS)
    if unknown:
        raise ProvenanceError(f"unrecognized externalParameters: {', '.join(unknown)}")
    repository = str(params.get("repository", ""))
    ref = str(params.get("ref", ""))
    if expect.repository is not None and repository != expect.repository:
        raise ProvenanceError(
            f"built from repository {repository!r}, expected {expect.repository!r}"
        )
    if expect.ref_pattern is not None and not fnmatch.fnmatchcase(ref, expect.ref_pattern):
        raise ProvenanceError(
            f"built from ref {ref!r}, which does not match {expect.ref_pattern!r}"
        )
    commit = ""
    deps = _field(stmt, "predicate", "buildDefinition").get("resolvedDependencies") or []
    for dep in deps if isinstance(deps, list) else []:
        if isinstance(dep, dict) and isinstance(dep.get("digest"), dict):
            commit = str(dep["digest"].get("gitCommit", "")) or commit
    return Verified(
        subject=str(matched[0].get("name", "_")),
        builder_id=str(builder),
        repository=repository,
        ref=ref,
        commit=commit,
        job=str(params.get("job", "")),
    )
