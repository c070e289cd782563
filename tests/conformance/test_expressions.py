"""GitHub's own expression test cases (actions/languageservices), run against Shipline.

A case passes when the value has the expected kind and equal value (numbers as numbers),
or when the expression fails with the expected kind of error (GitHub's "lexing" errors
are parsing errors here). Failures must be listed in `known_failures/expressions.txt`,
and everything listed there must really fail.
"""

from __future__ import annotations

import math
from functools import cache
from typing import Any

from shipline.spec.expressions import ExpressionError, Value, evaluate
from tests.conformance.corpus import load_corpus, load_known_failures, record_rate

CORPUS = "gha_languageservices_expressions.json"
THRESHOLD = 0.98
_KINDS = {
    "Null": lambda v: v is None,
    "Boolean": lambda v: isinstance(v, bool),
    "Number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "String": lambda v: isinstance(v, str),
    "Array": lambda v: isinstance(v, list),
    "Object": lambda v: isinstance(v, dict),
}


def _decode(v: Any) -> Any:
    """Turns the corpus' `{"$float": "NaN"}` markers back into floats."""
    if isinstance(v, dict):
        if set(v) == {"$float"}:
            return float(v["$float"].replace("Infinity", "inf"))
        return {k: _decode(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_decode(x) for x in v]
    return v


def _same(actual: Value, expected: Any) -> bool:
    if isinstance(expected, bool) or expected is None:
        return actual is expected
    if isinstance(expected, int | float):
        if isinstance(actual, bool) or not isinstance(actual, int | float):
            return False
        return actual == expected or (math.isnan(actual) and math.isnan(expected))
    if isinstance(expected, str):
        return actual == expected
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(_same(a, e) for a, e in zip(actual, expected, strict=True))
        )
    assert isinstance(expected, dict)
    return (
        isinstance(actual, dict)
        and actual.keys() == expected.keys()
        and all(_same(actual[k], expected[k]) for k in expected)
    )


def _run(case: dict[str, Any]) -> str | None:
    """None when the case passes, otherwise why it fails."""
    contexts = _decode(case["contexts"])
    try:
        actual = evaluate(case["expr"], contexts)
    except ExpressionError as e:
        want = case.get("expected_error")
        if want is None:
            return f"unexpected {e.kind} error: {e}"
        kind = "parsing" if want["kind"] == "lexing" else want["kind"]
        if e.kind != kind:
            return f"expected a {kind} error, got {e.kind}: {e}"
        return None
    if "expected_error" in case:
        return f"expected a {case['expected_error']['kind']} error, got {actual!r}"
    expected = case["expected"]
    if not _KINDS[expected["kind"]](actual):
        return f"expected {expected['kind']}, got {actual!r}"
    value = _decode(expected["value"])
    if not _same(actual, value):
        return f"expected {value!r}, got {actual!r}"
    return None


@cache
def _results() -> tuple[int, dict[str, str]]:
    cases = load_corpus(CORPUS)
    failures: dict[str, str] = {}
    for case in cases:
        reason = _run(case)
        if reason is not None:
            failures[case["id"]] = reason
    return len(cases), failures


def test_pass_rate() -> None:
    total, failures = _results()
    passed = total - len(failures)
    record_rate("gha-expressions", passed, total, THRESHOLD)
    assert passed / total >= THRESHOLD, "\n".join(f"{k}: {v}" for k, v in failures.items())


def test_every_failure_is_known() -> None:
    _, failures = _results()
    known = load_known_failures("expressions")
    unlisted = {k: v for k, v in failures.items() if k not in known}
    assert not unlisted, "failing, not in known_failures/expressions.txt:\n" + "\n".join(
        f"{k}\t{v}" for k, v in unlisted.items()
    )


def test_every_known_failure_fails() -> None:
    _, failures = _results()
    known = load_known_failures("expressions")
    passing = sorted(set(known) - set(failures))
    assert not passing, "listed in known_failures/expressions.txt but passing: " + ", ".join(
        passing
    )
