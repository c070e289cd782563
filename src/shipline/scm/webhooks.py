"""Webhook deliveries of GitHub, GitLab and Gitea: verification, then parsing into one
`ForgeEvent` shape. Pure: no I/O, no clock — the caller reads the body (bounded) and
passes bytes and headers in.

Verification comes first and looks only at the raw bytes: GitHub's `X-Hub-Signature-256`
and Gitea's `X-Gitea-Signature` are HMAC-SHA256 of the body under the shared secret,
GitLab's `X-Gitlab-Token` is the secret itself; every comparison is
`hmac.compare_digest` (constant time). Only a verified body is parsed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from shipline.domain.source import ZERO_SHA, Forge

__all__ = [
    "ForgeEvent",
    "Ignored",
    "MalformedPayload",
    "delivery_id",
    "event_name",
    "parse",
    "verify",
]

# Normalised pull request actions (GitHub's words) of each forge's actions.
_GITLAB_ACTIONS = {"open": "opened", "reopen": "reopened", "close": "closed", "merge": "closed"}
_GITEA_ACTIONS = {
    "opened": "opened",
    "reopened": "reopened",
    "closed": "closed",
    "synchronized": "synchronize",
}
_GITHUB_ACTIONS = frozenset({"opened", "synchronize", "reopened", "closed"})


class Ignored(Exception):
    """A verified delivery of an event or action Shipline does not act on."""


class MalformedPayload(Exception):
    """A verified body that is not the JSON its event should be."""


def _header(headers: Mapping[str, str], name: str) -> str:
    return headers.get(name.lower(), "")


def verify(forge: Forge, secret: str, headers: Mapping[str, str], body: bytes) -> bool:
    """Whether the delivery was made with `secret`. `headers` have lower-case names."""
    key = secret.encode("utf-8")
    if forge is Forge.GITLAB:
        given = _header(headers, "X-Gitlab-Token").encode("utf-8")
        return hmac.compare_digest(given, key)
    expected = hmac.new(key, body, hashlib.sha256).hexdigest()
    if forge is Forge.GITHUB:
        given_text = _header(headers, "X-Hub-Signature-256")
        prefix, _, hex_digest = given_text.partition("=")
        if prefix != "sha256":
            return False
    else:
        hex_digest = _header(headers, "X-Gitea-Signature")
    return hmac.compare_digest(hex_digest.lower().encode("ascii", "replace"), expected.encode())


def delivery_id(forge: Forge, headers: Mapping[str, str], body: bytes) -> str:
    """The delivery's id (the same for a forge's retries and redeliveries); a digest of
    the body when the forge sent none."""
    names = {
        Forge.GITHUB: ("X-GitHub-Delivery",),
        Forge.GITLAB: ("Idempotency-Key", "X-Gitlab-Event-UUID"),
        Forge.GITEA: ("X-Gitea-Delivery",),
    }[forge]
    for name in names:
        value = _header(headers, name).strip()
        if value and len(value) <= 200 and value.isprintable():
            return value
    return "sha256:" + hashlib.sha256(body).hexdigest()


def event_name(forge: Forge, headers: Mapping[str, str]) -> str:
    header = {
        Forge.GITHUB: "X-GitHub-Event",
        Forge.GITLAB: "X-Gitlab-Event",
        Forge.GITEA: "X-Gitea-Event",
    }[forge]
    value = _header(headers, header).strip()
    return value[:64] if value.isprintable() else ""


@dataclass(frozen=True, slots=True)
class ForgeEvent:
    """A push, a pull (merge) request activity or a ping, in one shape for every forge.

    `ref` is the pushed ref or, for a pull request, `refs/pull/<n>/head` (the ref that
    holds its head commit in the base repository: `fetch_ref`). `payload` is the event in
    GitHub's shape (`github.event`).
    """

    kind: str  # push | pull_request | ping
    sender: str = ""
    ref: str = ""
    before: str = ZERO_SHA
    after: str = ZERO_SHA
    action: str = ""
    number: int = 0
    head_ref: str = ""
    head_sha: str = ""
    base_ref: str = ""
    base_sha: str = ""
    from_fork: bool = False
    author_association: str = ""
    fetch_ref: str = ""
    payload: dict[str, object] = field(default_factory=dict)

    @property
    def deleted(self) -> bool:
        return self.kind == "push" and set(self.after) == {"0"}


def _load(body: bytes) -> dict[str, object]:
    try:
        data = json.loads(body)
    except RecursionError as exc:
        raise MalformedPayload("the JSON body is nested too deeply") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedPayload(f"the body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise MalformedPayload("the body is not a JSON object")
    return data


def _get(data: object, *keys: str) -> object:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _str(data: object, *keys: str) -> str:
    value = _get(data, *keys)
    return value if isinstance(value, str) else ""


def _sha(data: object, *keys: str) -> str:
    value = _str(data, *keys)
    if len(value) != 40 or any(c not in "0123456789abcdef" for c in value):
        raise MalformedPayload(f"{'.'.join(keys)} is not a commit sha")
    return value


def _ref(data: object, *keys: str) -> str:
    value = _str(data, *keys)
    if not value.startswith(("refs/heads/", "refs/tags/")) or not value.isprintable():
        raise MalformedPayload(f"{'.'.join(keys)} is not a branch or tag ref")
    return value


def _number(data: object, *keys: str) -> int:
    value = _get(data, *keys)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 10**9:
        raise MalformedPayload(f"{'.'.join(keys)} is not a pull request number")
    return value


def _branch(data: object, *keys: str) -> str:
    value = _str(data, *keys)
    if not value or value.startswith("-") or not value.isprintable() or len(value) > 255:
        raise MalformedPayload(f"{'.'.join(keys)} is not a branch name")
    return value


def parse(forge: Forge, event: str, body: bytes) -> ForgeEvent:
    """The verified delivery as a `ForgeEvent`; `Ignored` for events Shipline does not act
    on, `MalformedPayload` for a body that does not have the event's shape."""
    data = _load(body)
    if forge is Forge.GITHUB:
        return _github(event, data)
    if forge is Forge.GITLAB:
        return _gitlab(event, data)
    return _gitea(event, data)


def _push(data: dict[str, object], sender: str) -> ForgeEvent:
    ref = _ref(data, "ref")
    before, after = _sha(data, "before"), _sha(data, "after")
    return ForgeEvent(
        kind="push",
        sender=sender,
        ref=ref,
        before=before,
        after=after,
        payload={
            "ref": ref,
            "before": before,
            "after": after,
            "created": set(before) == {"0"},
            "deleted": set(after) == {"0"},
            "repository": _get(data, "repository") or _get(data, "project") or {},
            "sender": {"login": sender},
            "pusher": {"name": sender},
        },
    )


def _github(event: str, data: dict[str, object]) -> ForgeEvent:
    sender = _str(data, "sender", "login")
    if event == "ping":
        return ForgeEvent(kind="ping", sender=sender)
    if event == "push":
        return _push(data, sender)
    if event == "pull_request":
        action = _str(data, "action")
        if action not in _GITHUB_ACTIONS:
            raise Ignored(f"pull_request action {action!r} starts nothing")
        number = _number(data, "number")
        pull = _get(data, "pull_request")
        head_repo = _str(pull, "head", "repo", "full_name")
        base_repo = _str(pull, "base", "repo", "full_name")
        return ForgeEvent(
            kind="pull_request",
            sender=sender,
            ref=f"refs/pull/{number}/head",
            action=action,
            number=number,
            head_ref=_branch(pull, "head", "ref"),
            head_sha=_sha(pull, "head", "sha"),
            base_ref=_branch(pull, "base", "ref"),
            base_sha=_sha(pull, "base", "sha"),
            from_fork=not head_repo or head_repo != base_repo,
            author_association=_str(pull, "author_association"),
            fetch_ref=f"refs/pull/{number}/head",
            payload=data,
        )
    raise Ignored(f"GitHub event {event!r} starts nothing")


def _pull_payload(
    action: str, number: int, title: str, author: str, head: tuple[str, str], base: tuple[str, str]
) -> dict[str, object]:
    return {
        "action": action,
        "number": number,
        "pull_request": {
            "number": number,
            "title": title,
            "user": {"login": author},
            "head": {"ref": head[0], "sha": head[1]},
            "base": {"ref": base[0], "sha": base[1]},
        },
        "sender": {"login": author},
    }


def _gitlab(event: str, data: dict[str, object]) -> ForgeEvent:
    kind = _str(data, "object_kind")
    sender = _str(data, "user_username") or _str(data, "user", "username")
    if kind in ("push", "tag_push"):
        return _push(data, sender)
    if kind == "merge_request":
        attrs = _get(data, "object_attributes")
        raw = _str(attrs, "action")
        action = _GITLAB_ACTIONS.get(raw, "")
        if raw == "update" and _str(attrs, "oldrev"):
            action = "synchronize"  # an update with new commits
        if not action:
            raise Ignored(f"merge request action {raw!r} starts nothing")
        number = _number(attrs, "iid")
        head = (_branch(attrs, "source_branch"), _sha(attrs, "last_commit", "id"))
        base = (_branch(attrs, "target_branch"), "")
        source, target = _get(attrs, "source_project_id"), _get(attrs, "target_project_id")
        return ForgeEvent(
            kind="pull_request",
            sender=sender,
            ref=f"refs/merge-requests/{number}/head",
            action=action,
            number=number,
            head_ref=head[0],
            head_sha=head[1],
            base_ref=base[0],
            from_fork=source is None or source != target,
            fetch_ref=f"refs/merge-requests/{number}/head",
            payload=_pull_payload(action, number, _str(attrs, "title"), sender, head, base),
        )
    raise Ignored(f"GitLab event {event or kind!r} starts nothing")


def _gitea(event: str, data: dict[str, object]) -> ForgeEvent:
    sender = _str(data, "sender", "login") or _str(data, "pusher", "login")
    if event == "push":
        return _push(data, sender)
    if event == "pull_request":
        raw = _str(data, "action")
        action = _GITEA_ACTIONS.get(raw, "")
        if not action:
            raise Ignored(f"pull_request action {raw!r} starts nothing")
        number = _number(data, "number")
        pull = _get(data, "pull_request")
        head = (_branch(pull, "head", "ref"), _sha(pull, "head", "sha"))
        base = (_branch(pull, "base", "ref"), _sha(pull, "base", "sha"))
        head_repo, base_repo = _get(pull, "head", "repo", "id"), _get(pull, "base", "repo", "id")
        return ForgeEvent(
            kind="pull_request",
            sender=sender,
            ref=f"refs/pull/{number}/head",
            action=action,
            number=number,
            head_ref=head[0],
            head_sha=head[1],
            base_ref=base[0],
            base_sha=base[1],
            from_fork=head_repo is None or head_repo != base_repo,
            fetch_ref=f"refs/pull/{number}/head",
            payload=_pull_payload(
                action, number, _str(pull, "title"), _str(pull, "user", "login"), head, base
            ),
        )
    raise Ignored(f"Gitea event {event!r} starts nothing")
