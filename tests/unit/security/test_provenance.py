"""DSSE signing and SLSA provenance verification (SECURITY-CASES 36, 37; PROVENANCE.md)."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shipline.security.provenance import (
    BUILDER_EMBEDDED_SHELL,
    PAYLOAD_TYPE,
    BuildFacts,
    Expectations,
    ProvenanceError,
    Subject,
    pae,
    sign_statement,
    statement,
    verify,
)

ARTIFACT = b"the release binary\x00\x01"
DIGEST = hashlib.sha256(ARTIFACT).hexdigest()
KEY = Ed25519PrivateKey.generate()
FACTS = BuildFacts(
    repository="https://git.example/team/app",
    ref="refs/tags/v1.2.3",
    commit="a" * 40,
    pipeline_path=".shipline/workflows/release.yml",
    job="release",
    inputs={"target": "prod"},
    builder_id=BUILDER_EMBEDDED_SHELL,
    invocation_id="urn:shipline:run:1:attempt:1:job:release",
    started_on="2026-01-01T12:00:00Z",
    finished_on="2026-01-01T12:04:10Z",
)


def envelope(facts: BuildFacts = FACTS, key: Ed25519PrivateKey = KEY) -> bytes:
    return sign_statement(statement([Subject("dist/app", DIGEST)], facts), key)


def resigned(body: dict[str, object], key: Ed25519PrivateKey = KEY) -> bytes:
    return sign_statement(body, key)


def test_pae_matches_the_dsse_test_vector() -> None:
    assert (
        pae("http://example.com/HelloWorld", b"hello world")
        == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_a_signed_artifact_verifies_and_says_where_it_came_from() -> None:
    verified = verify(
        DIGEST,
        envelope(),
        [KEY.public_key()],
        Expectations(repository=FACTS.repository, ref_pattern="refs/tags/v*"),
    )
    assert verified.subject == "dist/app"
    assert verified.builder_id == BUILDER_EMBEDDED_SHELL
    assert (verified.ref, verified.commit, verified.job) == (FACTS.ref, "a" * 40, "release")


def test_one_changed_byte_of_the_artifact_fails_on_the_digest() -> None:
    changed = bytearray(ARTIFACT)
    changed[3] ^= 1
    with pytest.raises(ProvenanceError, match="not a subject"):
        verify(hashlib.sha256(changed).hexdigest(), envelope(), [KEY.public_key()], Expectations())


def _payload(env: bytes) -> dict[str, object]:
    result: dict[str, object] = json.loads(base64.b64decode(json.loads(env)["payload"]))
    return result


def test_edited_payload_without_a_new_signature_fails() -> None:
    outer = json.loads(envelope())
    body = _payload(envelope())
    body["predicate"]["buildDefinition"]["externalParameters"]["repository"] = "https://evil"  # type: ignore[index]
    outer["payload"] = base64.b64encode(json.dumps(body).encode()).decode()
    with pytest.raises(ProvenanceError, match="no signature verifies"):
        verify(DIGEST, json.dumps(outer).encode(), [KEY.public_key()], Expectations())


def test_resigned_with_another_key_fails() -> None:
    body = _payload(envelope())
    with pytest.raises(ProvenanceError, match="no signature verifies"):
        verify(
            DIGEST, resigned(body, Ed25519PrivateKey.generate()), [KEY.public_key()], Expectations()
        )


def test_stripped_signature_fails() -> None:
    outer = json.loads(envelope())
    outer["signatures"] = []
    with pytest.raises(ProvenanceError, match="not signed"):
        verify(DIGEST, json.dumps(outer).encode(), [KEY.public_key()], Expectations())


def test_swapped_payload_type_with_the_old_signature_fails() -> None:
    outer = json.loads(envelope())
    outer["payloadType"] = "application/vnd.in-toto.other+json"
    with pytest.raises(ProvenanceError, match="payloadType"):
        verify(DIGEST, json.dumps(outer).encode(), [KEY.public_key()], Expectations())


def test_unknown_external_parameter_is_refused_even_when_signed() -> None:
    body = _payload(envelope())
    body["predicate"]["buildDefinition"]["externalParameters"]["extra"] = "x"  # type: ignore[index]
    with pytest.raises(ProvenanceError, match="unrecognized externalParameters: extra"):
        verify(DIGEST, resigned(body), [KEY.public_key()], Expectations())


def test_a_foreign_builder_repository_or_ref_is_refused() -> None:
    with pytest.raises(ProvenanceError, match="builder"):
        verify(DIGEST, envelope(), [KEY.public_key()], Expectations(builders=frozenset({"urn:x"})))
    with pytest.raises(ProvenanceError, match="repository"):
        verify(DIGEST, envelope(), [KEY.public_key()], Expectations(repository="https://other"))
    with pytest.raises(ProvenanceError, match="does not match"):
        verify(DIGEST, envelope(), [KEY.public_key()], Expectations(ref_pattern="refs/heads/*"))


def test_url_safe_base64_is_accepted_and_keyid_is_ignored() -> None:
    outer = json.loads(envelope())
    outer["payload"] = outer["payload"].replace("+", "-").replace("/", "_").rstrip("=")
    outer["signatures"][0]["sig"] = (
        outer["signatures"][0]["sig"].replace("+", "-").replace("/", "_")
    )
    outer["signatures"][0]["keyid"] = "someone-else"
    assert verify(DIGEST, json.dumps(outer).encode(), [KEY.public_key()], Expectations())


def test_garbage_is_refused_with_a_reason() -> None:
    for bad in (b"not json", b"[]", json.dumps({"payloadType": PAYLOAD_TYPE}).encode()):
        with pytest.raises(ProvenanceError):
            verify(DIGEST, bad, [KEY.public_key()], Expectations())
