"""Branch and tag protection, decided for one ref update of a push.

Pure: the server resolves a project's rules for the pusher into `Grant`s (may this user
push there at all?), and the pre-receive hook (`scm.receive_hook`) asks `refusal` about
each ref update, with whether the update is a fast-forward (which only git can tell).

Rules combine by taking the strictest: a ref that matches two rules is pushable only if
both allow the pusher, and may be force-pushed or deleted only if both allow it. Refs
outside `refs/heads/` and `refs/tags/` are never pushable (`refs/pull/*` belongs to the
server).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shipline.spec.filters import match_patterns

__all__ = ["Grant", "RefUpdate", "refusal"]

ZERO = "0" * 40


@dataclass(frozen=True, slots=True)
class RefUpdate:
    """One line of a push: `ref` moves from `old` to `new` (40 zeros: absent)."""

    ref: str
    old: str
    new: str

    @property
    def created(self) -> bool:
        return set(self.old) == {"0"}

    @property
    def deleted(self) -> bool:
        return set(self.new) == {"0"}

    @property
    def kind(self) -> str | None:
        """`branch`, `tag`, or None for any other ref."""
        if self.ref.startswith("refs/heads/"):
            return "branch"
        if self.ref.startswith("refs/tags/"):
            return "tag"
        return None

    @property
    def name(self) -> str:
        """The short name: `main` for `refs/heads/main`."""
        return self.ref.split("/", 2)[2] if self.kind is not None else self.ref

    @property
    def change(self) -> str:
        """`created`, `deleted` or `updated`."""
        if self.created:
            return "created"
        return "deleted" if self.deleted else "updated"


@dataclass(frozen=True, slots=True)
class Grant:
    """A protection rule as it applies to one pusher: `may_push` is decided by the server
    from the rule's role and the pusher's role in the project."""

    kind: str  # branch | tag
    pattern: str
    push_role: str
    may_push: bool
    allow_force_push: bool = False
    allow_deletion: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "pattern": self.pattern,
            "push_role": self.push_role,
            "may_push": self.may_push,
            "allow_force_push": self.allow_force_push,
            "allow_deletion": self.allow_deletion,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Grant:
        return cls(
            kind=str(data["kind"]),
            pattern=str(data["pattern"]),
            push_role=str(data["push_role"]),
            may_push=data["may_push"] is True,
            allow_force_push=data.get("allow_force_push") is True,
            allow_deletion=data.get("allow_deletion") is True,
        )


def matching(update: RefUpdate, grants: Sequence[Grant]) -> list[Grant]:
    """The grants whose kind and pattern select the update's ref."""
    return [g for g in grants if g.kind == update.kind and match_patterns(update.name, [g.pattern])]


def refusal(update: RefUpdate, grants: Sequence[Grant], *, fast_forward: bool | None) -> str | None:
    """Why the update is refused, or None when it may go ahead.

    `fast_forward`: whether `new` descends from `old` (None for a creation or a deletion,
    where the question does not arise). Moving an existing tag counts as a force-push.
    """
    if update.kind is None:
        return (
            f"{update.ref}: only branches (refs/heads/...) and tags (refs/tags/...) can be pushed"
        )
    rules = matching(update, grants)
    if not rules:
        return None
    what = f"{update.kind} {update.name} is protected"
    for rule in rules:
        if not rule.may_push:
            return f"{what}: pushing to it needs the {rule.push_role} role (rule {rule.pattern!r})"
    if update.deleted and not all(r.allow_deletion for r in rules):
        return f"{what}: it cannot be deleted"
    forced = fast_forward is False or (update.kind == "tag" and not update.created)
    if forced and not update.deleted and not all(r.allow_force_push for r in rules):
        return f"{what}: force-pushes (updates that are not fast-forwards) are refused"
    return None
