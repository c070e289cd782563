"""Canary analysis: is the canary worse than the stable version it would replace?

Pure decision logic over two `Window`s of the router's per-upstream metrics taken over the
same time span: the canary's instances and the stable (old) instances. `judge` returns a
`Verdict`; the rollout (`deploy.batch`) gathers the windows, waits and acts on it.

The rule, per metric, with `analysis: {max_error_rate, max_p95_ms, min_requests, interval}`:

- Not judged until the canary has served `min_requests` requests in the window:
  `inconclusive`. At the end of a step the rollout waits up to one more `interval`; still
  inconclusive then fails the step (a canary that cannot be judged is not promoted).
- Error rate: the canary fails when its rate is above **both** `max_error_rate` and the
  stable's rate plus `ERROR_RATE_MARGIN` (one percentage point):
  `canary > max(max_error_rate, stable + 0.01)`. A stable version that itself errs does
  not fail every canary; a canary clearly worse than a healthy stable one fails.
- p95 latency: the canary fails when its p95 is above **both** `max_p95_ms` and the
  stable's p95 times `P95_MARGIN` (1.25) plus `P95_SLACK_MS` (2 ms, so that sub-millisecond
  noise on a fast service is not a regression): `canary > max(max_p95_ms, stable * 1.25 + 2)`.
- The stable version counts as a baseline only when it served `min_requests` (at least
  one) in the same window; otherwise (a first deployment, no traffic left on the old set)
  the absolute limits alone decide.
- A metric without its limit (`max_error_rate` or `max_p95_ms` absent) is not judged.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from shipline.deploy.metrics import Window
from shipline.spec.environment_models import CanaryAnalysis

__all__ = [
    "ERROR_RATE_MARGIN",
    "P95_MARGIN",
    "P95_SLACK_MS",
    "Outcome",
    "Verdict",
    "judge",
]

ERROR_RATE_MARGIN = 0.01
P95_MARGIN = 1.25
P95_SLACK_MS = 2.0


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The analysis' outcome and a sentence saying what was seen and why."""

    outcome: Outcome
    reason: str

    @property
    def failed(self) -> bool:
        return self.outcome is Outcome.FAILED


def judge(analysis: CanaryAnalysis, canary: Window, stable: Window | None) -> Verdict:
    """Compare the canary's window with the stable version's over the same span."""
    seen = f"canary: {describe(canary)}"
    needed = max(1, analysis.min_requests)
    baseline = stable if stable is not None and stable.requests >= needed else None
    base = f"stable: {describe(baseline)}" if baseline is not None else "no stable baseline"
    if canary.requests < analysis.min_requests or canary.requests == 0:
        return Verdict(
            Outcome.INCONCLUSIVE,
            f"{seen}; fewer than min_requests ({analysis.min_requests}), not judged",
        )
    problems: list[str] = []
    if analysis.max_error_rate is not None:
        limit = analysis.max_error_rate
        if baseline is not None:
            limit = max(limit, baseline.error_rate + ERROR_RATE_MARGIN)
        if canary.error_rate > limit:
            problems.append(
                f"error rate {canary.error_rate:.2%} > {limit:.2%} "
                f"(max_error_rate {analysis.max_error_rate:.2%}"
                + (
                    f", stable {baseline.error_rate:.2%} + {ERROR_RATE_MARGIN:.0%}"
                    if baseline is not None
                    else ""
                )
                + ")"
            )
    if analysis.max_p95_ms is not None and canary.p95_ms is not None:
        limit = analysis.max_p95_ms
        if baseline is not None and baseline.p95_ms is not None:
            limit = max(limit, baseline.p95_ms * P95_MARGIN + P95_SLACK_MS)
        if canary.p95_ms > limit:
            problems.append(
                f"p95 {canary.p95_ms:.1f} ms > {limit:.1f} ms "
                f"(max_p95_ms {analysis.max_p95_ms:g}"
                + (
                    f", stable {baseline.p95_ms:.1f} ms x {P95_MARGIN:g} + {P95_SLACK_MS:g}"
                    if baseline is not None and baseline.p95_ms is not None
                    else ""
                )
                + ")"
            )
    if problems:
        return Verdict(Outcome.FAILED, f"canary {'; '.join(problems)} ({seen}; {base})")
    return Verdict(Outcome.PASSED, f"{seen} ({base})")


def describe(window: Window) -> str:
    text = f"{window.requests} request(s), error rate {window.error_rate:.2%}"
    if window.p95_ms is not None:
        text += f", p95 {window.p95_ms:.1f} ms"
    return text
