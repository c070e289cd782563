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
| pull_request_target (workflow from the base branch) | trusted | no |

The full table with its reasons is in docs/source.md.

Code provenance decides: a fork's pull request is untrusted whatever files it changes,
because a trusted workflow may run the Makefile or tests the fork edited (SECURITY-CASES 2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shipline.domain.records import Trust
from shipline.spec.models import JobSpec

__all__ = [
    "PRIVILEGED_EVENTS",
    "Classification",
    "UntrustedCheckout",
    "classify_pull_request",
    "classify_push",
    "names_pull_head",
    "untrusted_checkouts",
]

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


# Events whose workflow comes from the base branch and runs trusted although a pull
# request (possibly a fork's) caused them: GitHub's `pull_request_target`.
PRIVILEGED_EVENTS = frozenset({"pull_request_target"})

# What in an `actions/checkout` `ref:` names the pull request's head (or a merge with it).
_HEAD_MARKERS = (
    "pull_request.head",
    "github.head_ref",
    "pull_request.merge_commit_sha",
    "refs/pull/",
    "pull/",
    "merge-requests/",
)


@dataclass(frozen=True, slots=True)
class UntrustedCheckout:
    """A step of a privileged run that checks out the pull request's code."""

    job: str
    step: int
    ref: str
    allowed: bool  # the job set `unsafe_execute_untrusted_code: true`


def untrusted_checkouts(jobs: Sequence[JobSpec]) -> list[UntrustedCheckout]:
    """The `actions/checkout` steps whose `ref:` names the pull request's head commit,
    head branch, `refs/pull/<n>/...` or `refs/merge-requests/<n>/...` — what a privileged
    trigger must not run unless the job opts in (SECURITY-CASES 3). The runner checks the
    evaluated ref again (`runner.actions.checkout`): this catches it before the run."""
    found: list[UntrustedCheckout] = []
    for job in jobs:
        for step in job.steps:
            if not (step.uses or "").lower().startswith("actions/checkout@"):
                continue
            ref = dict(step.with_).get("ref", "")
            compact = ref.replace(" ", "").replace("[", ".").replace("'", "").replace("]", "")
            if any(marker in compact for marker in _HEAD_MARKERS):
                found.append(
                    UntrustedCheckout(job.id, step.index, ref, job.unsafe_execute_untrusted_code)
                )
    return found


def names_pull_head(ref: str, head_sha: str, head_ref: str, number: int) -> bool:
    """Whether an evaluated checkout `ref` is the pull request's head (its commit, a prefix
    of it, its branch or one of its pull/merge-request refs)."""
    value = ref.strip().lower()
    if not value:
        return False
    if head_sha and len(value) >= 7 and head_sha.lower().startswith(value):
        return True
    if head_ref and value in (head_ref.lower(), f"refs/heads/{head_ref.lower()}"):
        return True
    return value.startswith(("refs/pull/", "pull/", "refs/merge-requests/", "merge-requests/"))
