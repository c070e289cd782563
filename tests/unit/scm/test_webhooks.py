"""Verification and parsing of forge deliveries (`scm.webhooks`), on payloads in the
forges' documented shapes."""

from __future__ import annotations

import ast
import hashlib
import hmac
import inspect
import json

import pytest

from shipline.domain.source import Forge
from shipline.scm import webhooks
from shipline.scm.webhooks import Ignored, MalformedPayload, delivery_id, parse, verify
from tests.fixtures.webhooks import payload

SECRET = "It's a Secret to Everybody"
A, B = "a" * 40, "b" * 40


def signed(body: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_github_signature_from_its_documentation() -> None:
    # The example of GitHub's "Validating webhook deliveries".
    body = b"Hello, World!"
    expected = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert verify(Forge.GITHUB, SECRET, {"x-hub-signature-256": f"sha256={expected}"}, body)


def test_signatures_fail_for_a_changed_byte_another_secret_or_a_missing_header() -> None:
    body = payload("github_push", before=A, after=B)
    good = {"x-hub-signature-256": "sha256=" + signed(body)}
    assert verify(Forge.GITHUB, SECRET, good, body)
    changed = body[:-2] + bytes([body[-2] ^ 1]) + body[-1:]
    assert not verify(Forge.GITHUB, SECRET, good, changed)
    assert not verify(Forge.GITHUB, "another project's secret", good, body)
    assert not verify(Forge.GITHUB, SECRET, {}, body)
    assert not verify(Forge.GITHUB, SECRET, {"x-hub-signature-256": signed(body)}, body)
    assert not verify(Forge.GITHUB, SECRET, {"x-hub-signature-256": "sha1=" + signed(body)}, body)
    assert verify(Forge.GITEA, SECRET, {"x-gitea-signature": signed(body)}, body)
    assert not verify(Forge.GITEA, SECRET, {"x-gitea-signature": signed(body, "x")}, body)
    assert verify(Forge.GITLAB, SECRET, {"x-gitlab-token": SECRET}, body)
    assert not verify(Forge.GITLAB, SECRET, {"x-gitlab-token": SECRET + "x"}, body)
    assert not verify(Forge.GITLAB, SECRET, {"x-gitlab-token": "ö"}, body)


def test_comparisons_are_constant_time() -> None:
    """No `==` or `!=` between a given and an expected secret: `hmac.compare_digest` only."""
    tree = ast.parse(inspect.getsource(webhooks.verify))
    compares = [ast.unparse(n) for n in ast.walk(tree) if isinstance(n, ast.Compare)]
    assert sorted(compares) == [
        "forge is Forge.GITHUB",
        "forge is Forge.GITLAB",
        "prefix != 'sha256'",
    ]
    calls = [ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert calls.count("hmac.compare_digest") == 2  # the token, and both HMAC forms


def test_delivery_ids() -> None:
    assert delivery_id(Forge.GITHUB, {"x-github-delivery": "72d3162e"}, b"{}") == "72d3162e"
    assert (
        delivery_id(Forge.GITLAB, {"idempotency-key": "k1", "x-gitlab-event-uuid": "u"}, b"")
        == "k1"
    )
    assert delivery_id(Forge.GITLAB, {"x-gitlab-event-uuid": "u"}, b"") == "u"
    assert delivery_id(Forge.GITEA, {}, b"{}") == "sha256:" + hashlib.sha256(b"{}").hexdigest()


def test_github_push_and_ping() -> None:
    event = parse(Forge.GITHUB, "push", payload("github_push", before=A, after=B))
    assert (event.kind, event.ref, event.before, event.after, event.sender) == (
        "push",
        "refs/heads/main",
        A,
        B,
        "octocat",
    )
    assert not event.deleted
    assert parse(Forge.GITHUB, "ping", payload("github_ping")).kind == "ping"
    with pytest.raises(Ignored):
        parse(Forge.GITHUB, "issues", b"{}")


def test_github_pull_request_from_a_fork() -> None:
    event = parse(Forge.GITHUB, "pull_request", payload("github_pull_request", head=A, base=B))
    assert event.kind == "pull_request" and event.action == "opened" and event.number == 1
    assert (event.head_ref, event.head_sha, event.base_ref, event.base_sha) == (
        "main",
        A,
        "main",
        B,
    )
    assert event.from_fork and event.author_association == "FIRST_TIME_CONTRIBUTOR"
    assert event.fetch_ref == event.ref == "refs/pull/1/head"
    assert event.payload["pull_request"]["title"].startswith('a"; curl')  # type: ignore[index]
    same = json.loads(payload("github_pull_request", head=A, base=B))
    same["pull_request"]["head"]["repo"]["full_name"] = "octo/app"
    same["action"] = "labeled"
    with pytest.raises(Ignored):
        parse(Forge.GITHUB, "pull_request", json.dumps(same).encode())
    same["action"] = "synchronize"
    assert not parse(Forge.GITHUB, "pull_request", json.dumps(same).encode()).from_fork


def test_gitlab_push_and_merge_request() -> None:
    push = parse(Forge.GITLAB, "Push Hook", payload("gitlab_push", before=A, after=B))
    assert (push.kind, push.ref, push.after, push.sender) == (
        "push",
        "refs/heads/main",
        B,
        "jsmith",
    )
    mr = parse(Forge.GITLAB, "Merge Request Hook", payload("gitlab_merge_request", head=A))
    assert (mr.action, mr.number, mr.head_sha, mr.from_fork) == ("opened", 1, A, True)
    assert mr.fetch_ref == "refs/merge-requests/1/head"
    data = json.loads(payload("gitlab_merge_request", head=A))
    data["object_attributes"]["action"] = "update"
    with pytest.raises(Ignored):  # an update without new commits (title, labels)
        parse(Forge.GITLAB, "Merge Request Hook", json.dumps(data).encode())
    data["object_attributes"]["oldrev"] = B
    assert (
        parse(Forge.GITLAB, "Merge Request Hook", json.dumps(data).encode()).action == "synchronize"
    )


def test_gitea_push_and_pull_request() -> None:
    push = parse(Forge.GITEA, "push", payload("gitea_push", before=A, after=B))
    assert (push.ref, push.sender) == ("refs/heads/main", "gitea")
    pr = parse(Forge.GITEA, "pull_request", payload("gitea_pull_request", head=A, base=B))
    assert (pr.action, pr.head_ref, pr.from_fork) == ("synchronize", "feature", False)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"ref": "refs/heads/main", "before": "--upload-pack=x", "after": "' + B.encode() + b'"}',
        b'{"ref": "--upload-pack=touch /tmp/pwned", "before": "'
        + A.encode()
        + b'", "after": "'
        + B.encode()
        + b'"}',
    ],
)
def test_malformed_or_hostile_bodies_are_refused(body: bytes) -> None:
    with pytest.raises(MalformedPayload):
        parse(Forge.GITHUB, "push", body)
