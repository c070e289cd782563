"""Canary analysis decisions: the canary against absolute limits and the stable version."""

from __future__ import annotations

from shipline.deploy.analysis import Outcome, judge
from shipline.deploy.metrics import Window
from shipline.spec.environment_models import CanaryAnalysis

RULES = CanaryAnalysis(max_error_rate=0.01, max_p95_ms=100, min_requests=50, interval=5)


def test_too_few_canary_requests_are_inconclusive() -> None:
    verdict = judge(RULES, Window(49, 49, 900.0), Window(500, 0, 10.0))
    assert verdict.outcome is Outcome.INCONCLUSIVE
    assert "min_requests (50)" in verdict.reason


def test_no_requests_at_all_is_inconclusive_even_without_min_requests() -> None:
    rules = CanaryAnalysis(max_error_rate=0.01, min_requests=0)
    assert judge(rules, Window(0, 0, None), None).outcome is Outcome.INCONCLUSIVE


def test_a_healthy_canary_passes() -> None:
    verdict = judge(RULES, Window(100, 0, 12.0), Window(400, 1, 11.0))
    assert verdict.outcome is Outcome.PASSED
    assert "canary: 100 request(s)" in verdict.reason
    assert "stable: 400 request(s)" in verdict.reason


def test_error_rate_above_the_limit_and_the_stable_rate_fails() -> None:
    verdict = judge(RULES, Window(100, 20, 12.0), Window(400, 0, 11.0))
    assert verdict.outcome is Outcome.FAILED
    assert "error rate 20.00% > 1.00%" in verdict.reason


def test_error_rate_no_worse_than_an_erring_stable_version_passes() -> None:
    # Stable fails 10 %: a canary at 10.5 % is above max_error_rate but not worse than
    # stable + 1 point; at 12 % it is.
    stable = Window(1000, 100, 10.0)
    assert judge(RULES, Window(200, 21, 10.0), stable).outcome is Outcome.PASSED
    failed = judge(RULES, Window(200, 24, 10.0), stable)
    assert failed.outcome is Outcome.FAILED
    assert "> 11.00%" in failed.reason and "stable 10.00% + 1%" in failed.reason


def test_error_rate_above_stable_but_within_the_limit_passes() -> None:
    rules = CanaryAnalysis(max_error_rate=0.05, min_requests=10)
    assert judge(rules, Window(100, 4, None), Window(100, 0, None)).outcome is Outcome.PASSED


def test_p95_above_the_limit_and_the_stable_p95_fails() -> None:
    verdict = judge(RULES, Window(100, 0, 250.0), Window(400, 0, 20.0))
    assert verdict.outcome is Outcome.FAILED
    assert "p95 250.0 ms > 100.0 ms" in verdict.reason


def test_p95_no_worse_than_a_slow_stable_version_passes() -> None:
    # Stable's p95 is 200 ms (above max_p95_ms): the canary may be as slow, plus 25 %.
    stable = Window(400, 0, 200.0)
    assert judge(RULES, Window(100, 0, 240.0), stable).outcome is Outcome.PASSED
    slow = judge(RULES, Window(100, 0, 260.0), stable)
    assert slow.outcome is Outcome.FAILED
    assert "> 252.0 ms" in slow.reason


def test_a_stable_version_with_too_few_requests_is_no_baseline() -> None:
    # Only 3 stable requests (below min_requests): the absolute limit alone decides.
    verdict = judge(RULES, Window(100, 0, 150.0), Window(3, 0, 200.0))
    assert verdict.outcome is Outcome.FAILED
    assert "no stable baseline" in verdict.reason


def test_without_a_stable_version_absolute_limits_decide() -> None:
    assert judge(RULES, Window(100, 0, 50.0), None).outcome is Outcome.PASSED
    assert judge(RULES, Window(100, 5, 50.0), None).outcome is Outcome.FAILED


def test_a_metric_without_its_limit_is_not_judged() -> None:
    rules = CanaryAnalysis(max_error_rate=0.01, min_requests=1)
    assert judge(rules, Window(10, 0, 5000.0), Window(10, 0, 1.0)).outcome is Outcome.PASSED


def test_both_problems_are_named() -> None:
    verdict = judge(RULES, Window(100, 50, 900.0), Window(100, 0, 10.0))
    assert "error rate" in verdict.reason and "p95 900.0 ms" in verdict.reason
