"""Lint of environment files (`.shipline/environments/<name>.yml`).

Every structural mistake comes from `spec.environment.load_environment`; on top, warnings
about choices that are valid but probably not meant: a canary without analysis (it only
waits), and `allow_untrusted: true` (pull requests from forks could deploy).
"""

from __future__ import annotations

from shipline.spec.diagnostics import Diagnostic, Severity
from shipline.spec.environment import load_environment


def lint_environment(text: str, file: str) -> list[Diagnostic]:
    """Every diagnostic of one environment file, sorted by position. Never raises."""
    spec, diagnostics = load_environment(text, file, lenient=True)
    found = list(diagnostics)
    if spec is not None:
        strategy = spec.strategy
        if strategy.kind == "canary" and strategy.analysis is None:
            found.append(
                Diagnostic(
                    "environment",
                    Severity.WARNING,
                    file,
                    strategy.pos.line,
                    strategy.pos.col,
                    "this canary has no analysis: each step only waits its bake time, and a "
                    "canary with errors is promoted all the same",
                    "strategy.canary.analysis",
                    "add analysis: {max_error_rate: 0.01, max_p95_ms: ..., min_requests: 50}",
                )
            )
        if spec.protection.allow_untrusted:
            pos = spec.protection.pos
            found.append(
                Diagnostic(
                    "environment",
                    Severity.WARNING,
                    file,
                    pos.line,
                    pos.col,
                    "allow_untrusted: true lets runs of untrusted events (pull requests, "
                    "forks) deploy to this environment",
                    "protection.allow_untrusted",
                )
            )
    return sorted(found, key=lambda d: (d.line, d.col, d.code, d.message))
