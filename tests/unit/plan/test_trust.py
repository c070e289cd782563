"""The trust table (`plan.trust`): code provenance decides, never the workflow."""

from __future__ import annotations

import pytest

from shipline.domain.records import Trust
from shipline.plan.trust import classify_pull_request, classify_push


def test_pushes_are_trusted() -> None:
    assert classify_push().trust is Trust.TRUSTED


@pytest.mark.parametrize("association", ["OWNER", "MEMBER", "COLLABORATOR", "NONE", ""])
def test_same_repository_pull_requests_are_trusted(association: str) -> None:
    result = classify_pull_request(from_fork=False, author_association=association)
    assert (result.trust, result.needs_approval) == (Trust.TRUSTED, False)


@pytest.mark.parametrize(
    ("association", "waits"),
    [
        ("OWNER", False),
        ("member", False),
        ("COLLABORATOR", False),
        ("CONTRIBUTOR", False),
        ("FIRST_TIME_CONTRIBUTOR", True),
        ("FIRST_TIMER", True),
        ("NONE", True),
        ("", True),
    ],
)
def test_fork_pull_requests_are_untrusted_and_first_timers_wait(
    association: str, waits: bool
) -> None:
    result = classify_pull_request(from_fork=True, author_association=association)
    assert (result.trust, result.needs_approval) == (Trust.UNTRUSTED, waits)
    assert "fork" in result.reason
