"""What the server stores about code reaching it: branch and tag protection rules, webhook
keys, webhook deliveries and hosted pull requests.

Frozen plain data, like `domain.records`; stores build them, services read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from shipline.domain.records import Role

# Stands for "the server hosts this project's repository" in `ProjectRecord.repository`.
HOSTED = "hosted"
ZERO_SHA = "0" * 40


class RefKind(StrEnum):
    """What a protection rule's pattern is matched against."""

    BRANCH = "branch"
    TAG = "tag"


class Forge(StrEnum):
    """Where a webhook delivery comes from."""

    GITHUB = "github"
    GITLAB = "gitlab"
    GITEA = "gitea"


class PullState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class ProtectionRule:
    """Refs of `kind` whose short name matches `pattern` (filter-pattern glob) are
    protected: only `push_role` and up (and admins) may push; force-pushes and deletions
    only when allowed here."""

    id: int
    project_id: int
    kind: RefKind
    pattern: str
    push_role: Role = Role.MAINTAINER
    allow_force_push: bool = False
    allow_deletion: bool = False
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """One verified webhook delivery and what came of it.

    `outcome`: `processed` (runs were started or none matched), `ignored` (an event or
    action Shipline does not act on), `waiting` (runs wait for a maintainer's approval),
    `failed` (the commit could not be fetched or read; `detail` says why).
    """

    id: int
    project_id: int
    forge: Forge
    delivery_id: str
    event: str
    received_at: datetime
    outcome: str = "received"
    detail: str = ""
    runs: tuple[int, ...] = ()
    redeliveries: int = 0


@dataclass(frozen=True, slots=True)
class PullRequestRecord:
    """A change request of a hosted repository: merge `head` into `base`."""

    id: int
    project_id: int
    number: int
    title: str
    author: str
    head: str
    base: str
    state: PullState
    head_sha: str
    base_sha: str
    created_at: datetime | None = None
    updated_at: datetime | None = None
    closed_at: datetime | None = None
    body: str = ""
