"""The API's shapes for code reaching the server: protection rules, webhook secrets and
deliveries, hosted pull requests (`*Create` bodies are strict, `*Out` built from records)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from shipline.domain.records import Role
from shipline.domain.source import (
    DeliveryRecord,
    Forge,
    ProtectionRule,
    PullRequestRecord,
    PullState,
    RefKind,
)

Pattern = Annotated[
    str, StringConstraints(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f\x7f]+$")
]
Branch = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._][A-Za-z0-9._/-]{0,199}$")]
Title = Annotated[
    str, StringConstraints(min_length=1, max_length=1024, pattern=r"^[^\x00-\x1f\x7f]+$")
]
Body = Annotated[str, StringConstraints(max_length=65536, pattern=r"^[^\x00]*$")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProtectionCreate(_Body):
    """A rule for branches or tags whose name matches `pattern` (filter-pattern glob)."""

    kind: RefKind = RefKind.BRANCH
    pattern: Pattern
    push_role: Role = Role.MAINTAINER
    allow_force_push: bool = False
    allow_deletion: bool = False


class ProtectionOut(BaseModel):
    id: int
    kind: RefKind
    pattern: str
    push_role: Role
    allow_force_push: bool
    allow_deletion: bool
    created_at: datetime | None

    @classmethod
    def from_record(cls, rule: ProtectionRule) -> ProtectionOut:
        return cls(
            id=rule.id,
            kind=rule.kind,
            pattern=rule.pattern,
            push_role=rule.push_role,
            allow_force_push=rule.allow_force_push,
            allow_deletion=rule.allow_deletion,
            created_at=rule.created_at,
        )


class WebhookSecretOut(BaseModel):
    """A new webhook secret: shown once; the server keeps only what re-derives it."""

    project: str
    secret: str
    urls: dict[str, str]


class DeliveryOut(BaseModel):
    id: int
    forge: Forge
    delivery_id: str
    event: str
    received_at: datetime
    outcome: str
    detail: str
    runs: list[int]
    redeliveries: int

    @classmethod
    def from_record(cls, record: DeliveryRecord) -> DeliveryOut:
        return cls(
            id=record.id,
            forge=record.forge,
            delivery_id=record.delivery_id,
            event=record.event,
            received_at=record.received_at,
            outcome=record.outcome,
            detail=record.detail,
            runs=list(record.runs),
            redeliveries=record.redeliveries,
        )


class HookOut(BaseModel):
    """What a forge is told about a delivery."""

    delivery: int | None
    outcome: str
    detail: str
    runs: list[int]
    duplicate: bool = False


class PullCreate(_Body):
    head: Branch
    base: Branch | None = None
    title: Title | None = None
    body: Body = ""


class PullOut(BaseModel):
    number: int
    title: str
    body: str
    author: str
    head: str
    base: str
    state: PullState
    head_sha: str
    base_sha: str
    created_at: datetime | None
    updated_at: datetime | None
    closed_at: datetime | None
    runs: list[int] = []

    @classmethod
    def from_record(cls, pull: PullRequestRecord, runs: list[int] | None = None) -> PullOut:
        return cls(
            number=pull.number,
            title=pull.title,
            body=pull.body,
            author=pull.author,
            head=pull.head,
            base=pull.base,
            state=pull.state,
            head_sha=pull.head_sha,
            base_sha=pull.base_sha,
            created_at=pull.created_at,
            updated_at=pull.updated_at,
            closed_at=pull.closed_at,
            runs=runs or [],
        )
