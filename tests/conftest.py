"""Test-session hooks: print the conformance pass rates at the end of the output."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conformance.corpus import RATES_DIR


def pytest_sessionstart(session: pytest.Session) -> None:
    if not hasattr(session.config, "workerinput") and RATES_DIR.exists():
        for old in RATES_DIR.glob("*.json"):
            old.unlink()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RATES_DIR.exists():
        return
    rows = [json.loads(p.read_text()) for p in sorted(RATES_DIR.glob("*.json"))]
    if not rows:
        return
    terminalreporter.section("conformance pass rates")
    for r in rows:
        rate = 100.0 * r["passed"] / r["total"] if r["total"] else 100.0
        terminalreporter.write_line(
            f"{r['suite']:<40} {r['passed']:>5}/{r['total']:<5} {rate:6.2f} %"
            f"  (required {100 * r['threshold']:.1f} %) {r['detail']}"
        )
