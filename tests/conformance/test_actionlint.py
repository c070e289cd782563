"""`shipline lint` against actionlint's own test data (rhysd/actionlint `testdata/`, MIT).

Two promises are checked:

- every file actionlint accepts (`expect == "valid"`) lints with no ERROR (warnings are
  allowed: an unknown remote action, say, is a warning in Shipline);
- at least 80 % of actionlint's expected errors are reported at the same line and column
  with `code == rule` (wording is not compared). A finding counts whatever its severity,
  since some rules (runner labels) are warnings in Shipline. The three entries actionlint
  wrote without a rule match on line and column alone.

Every expected error Shipline misses is listed, with its reason, in
`known_failures/actionlint.txt` as `case-id:line:col:rule`; the list must be exact.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from shipline.spec.diagnostics import Diagnostic, Severity
from shipline.spec.lint import lint_workflow
from tests.conformance.corpus import corpus_dir, load_corpus, load_known_failures, record_rate

ERRORS_THRESHOLD = 0.80


def local_actions_for(case: dict[str, Any]) -> dict[str, str]:
    """`./.github/actions/<name>` -> action.yml text, from the corpus's `aux/<set>/` tree."""
    base = corpus_dir() / "actionlint" / "aux" / str(case["set"])
    actions: dict[str, str] = {}
    root = base / ".github" / "actions"
    if root.is_dir():
        for meta in sorted(root.glob("*/action.y*ml")):
            rel = meta.parent.relative_to(base).as_posix()
            actions[f"./{rel}"] = meta.read_text(encoding="utf-8")
    return actions


def lint_case(case: dict[str, Any]) -> list[Diagnostic]:
    return lint_workflow(case["input"], case["lint_as"], local_actions=local_actions_for(case))


def failure_key(case_id: str, expected: Mapping[str, Any]) -> str:
    line = expected.get("line") or "-"
    col = expected.get("col") or "-"
    return f"{case_id}:{line}:{col}:{expected.get('rule') or '-'}"


def is_reported(expected: Mapping[str, Any], found: list[Diagnostic]) -> bool:
    line, col, rule = expected.get("line"), expected.get("col"), expected.get("rule")
    if line is None:
        return False
    return any(d.line == line and d.col == col and (rule is None or d.code == rule) for d in found)


@functools.cache
def results() -> tuple[list[str], list[str], int, dict[str, list[Diagnostic]]]:
    """(keys of missed expected errors, ids of valid cases with errors, total expected)."""
    cases = load_corpus("actionlint/cases.json")
    missed: list[str] = []
    noisy: list[str] = []
    total = 0
    by_case: dict[str, list[Diagnostic]] = {}
    for case in cases:
        found = lint_case(case)
        by_case[case["id"]] = found
        if case["expect"] == "valid":
            if any(d.severity is Severity.ERROR for d in found):
                noisy.append(case["id"])
            continue
        for expected in case["expected_errors"]:
            total += 1
            if not is_reported(expected, found):
                missed.append(failure_key(case["id"], expected))
    return missed, noisy, total, by_case


def test_valid_files_lint_without_errors() -> None:
    _, noisy, _, by_case = results()
    cases = load_corpus("actionlint/cases.json")
    valid = sum(1 for c in cases if c["expect"] == "valid")
    record_rate("actionlint-valid", valid - len(noisy), valid, 1.0)
    details = {
        case_id: [d.format() for d in by_case[case_id] if d.severity is Severity.ERROR]
        for case_id in noisy
    }
    assert not noisy, details


def test_expected_errors_are_reported() -> None:
    missed, _, total, _ = results()
    passed = total - len(missed)
    record_rate(
        "actionlint-errors", passed, total, ERRORS_THRESHOLD, f"({len(missed)} known failures)"
    )
    assert passed / total >= ERRORS_THRESHOLD


def test_known_failures_are_exact() -> None:
    missed, _, _, _ = results()
    known = load_known_failures("actionlint")
    unlisted = sorted(set(missed) - set(known))
    fixed = sorted(set(known) - set(missed))
    assert not unlisted, f"misses not in known_failures/actionlint.txt: {unlisted}"
    assert not fixed, f"listed as known failures but now reported: {fixed}"


def test_every_corpus_file_lints_without_raising() -> None:
    """Truncated corpus files are as bad as input gets; lint must still return diagnostics."""
    for case in load_corpus("actionlint/cases.json")[::7]:
        text = case["input"]
        for cut in range(0, len(text), max(1, len(text) // 9)):
            assert isinstance(lint_workflow(text[:cut], "t.yaml"), list)


def test_local_actions_are_read_from_the_corpus() -> None:
    case = {"set": "examples"}
    actions = local_actions_for(case)
    assert "./.github/actions/my-action" in actions
    assert all(k.startswith("./.github/actions/") for k in actions)
