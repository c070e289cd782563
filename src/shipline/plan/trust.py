"""Which trust class a run gets, decided from the event that starts it — never from the
workflow text (OWASP CI/CD: poisoned pipeline execution).

| event | trust | waits for approval |
|---|---|---|
| push (branch or tag) to a hosted repository (only developers and up may push) | trusted | no |
| push announced by a verified webhook (someone with write access pushed) | trusted | no |
| pull request whose head branch is in the same repository | trusted | no |
| pull request from a fork, author an owner, member or collaborator | untrusted | no |
| pull request from a fork, author a contributor before | untrusted | no |
| pull request from a fork, first-time contributor or none known | untrusted | yes |
| schedule; workflow_dispatch and api by a developer or up | trusted | no |

The full table with its reasons is in docs/source.md.

Code provenance decides: a fork's pull request is untrusted whatever files it changes,
because a trusted workflow may run the Makefile or tests the fork edited (SECURITY-CASES 2).
"""

from __future__ import annotations

from dataclasses import dataclass

from shipline.domain.records import Trust

__all__ = ["Classification", "classify_pull_request", "classify_push"]

# GitHub's `author_association` values of people with write access to the base repository.
WRITERS = frozenset({"OWNER", "MEMBER", "COLLABORATOR"})
# Authors whose runs wait for a maintainer's approval (GitHub's "first-time contributors").
FIRST_TIMERS = frozenset({"FIRST_TIME_CONTRIBUTOR", "FIRST_TIMER", "NONE", ""})


@dataclass(frozen=True, slots=True)
class Classification:
    trust: Trust
    needs_approval: bool = False
    reason: str = ""


def classify_push() -> Classification:
    """A push reached the repository through someone with write access."""
    return Classification(Trust.TRUSTED, reason="push by a user with write access")


def classify_pull_request(*, from_fork: bool, author_association: str) -> Classification:
    """A pull request: trusted only when its head branch lives in the base repository
    (its author could push there); from a fork it is untrusted, and a first-time outside
    contributor's runs wait for approval."""
    if not from_fork:
        return Classification(Trust.TRUSTED, reason="head branch in the same repository")
    association = author_association.upper()
    if association in WRITERS:
        return Classification(Trust.UNTRUSTED, reason="from a fork (author has write access)")
    if association in FIRST_TIMERS:
        return Classification(
            Trust.UNTRUSTED, needs_approval=True, reason="from a fork by a first-time contributor"
        )
    return Classification(Trust.UNTRUSTED, reason="from a fork")
