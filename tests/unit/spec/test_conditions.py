"""`if:` conditions: `${{ }}` optional, `success() &&` added unless a status function is
called — decided on the parsed expression."""

import pytest

from shipline.spec.expressions.conditions import condition_expression


@pytest.mark.parametrize(
    ("written", "evaluated"),
    [
        (None, "success()"),
        ("", "success()"),
        ("github.ref == 'refs/heads/main'", "success() && (github.ref == 'refs/heads/main')"),
        ("${{ github.ref == 'x' }}", "success() && (github.ref == 'x')"),
        ("always()", "always()"),
        (
            "${{ failure() && steps.a.outcome == 'failure' }}",
            "failure() && steps.a.outcome == 'failure'",
        ),
        ("${{ Cancelled() }}", "Cancelled()"),
        # A status function's name inside a string is not a call.
        (
            "github.event.head_commit.message == 'always()'",
            "success() && (github.event.head_commit.message == 'always()')",
        ),
        ("1 +", "1 +"),  # left for evaluation, which reports the error with its position
    ],
)
def test_condition_expression(written: str | None, evaluated: str) -> None:
    assert condition_expression(written) == evaluated
