"""Workflow loading and lint against GitHub's own workflow-parser tests (actions/languageservices).

Only cases without `uses:` and `container:` are in scope (Shipline runs neither the way
GitHub does). Valid cases must load with no error; at least 90 % of the invalid ones must
be rejected by `lint_workflow` with an error on the line GitHub reports (its messages read
`.github/workflows/x.yml (Line: 7, Col: 9): ...`). Misses are listed, with reasons, in
`known_failures/workflow_parser.txt`; the list must be exact.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from shipline.spec.diagnostics import Severity
from shipline.spec.lint import lint_workflow
from shipline.spec.workflow import load_workflow
from tests.conformance.corpus import load_corpus, load_known_failures, record_rate

INVALID_THRESHOLD = 0.90
_LINE = re.compile(r"\(Line: (\d+), Col: (\d+)\)")


def in_scope(case: dict[str, Any]) -> bool:
    return not case["has_uses"] and not case["has_container"]


def expected_lines(case: dict[str, Any]) -> set[int]:
    lines = set()
    for error in case["expected"]["errors"]:
        match = _LINE.search(error["Message"])
        if match:
            lines.add(int(match.group(1)))
    return lines


def file_name(case: dict[str, Any]) -> str:
    return ".github/workflows/" + case["source"]["file"].rsplit("/", 1)[-1]


@functools.cache
def results() -> tuple[list[str], int, list[str], int]:
    """(valid ids with errors, valid total, invalid ids not rejected, invalid total)."""
    cases = [c for c in load_corpus("gha_workflow_parser_cases.json") if in_scope(c)]
    noisy: list[str] = []
    missed: list[str] = []
    valid = invalid = 0
    for case in cases:
        if case["expect"] == "ok":
            valid += 1
            _, diagnostics = load_workflow(case["input_yaml"], file_name(case))
            if any(d.severity is Severity.ERROR for d in diagnostics):
                noisy.append(case["id"])
            continue
        invalid += 1
        found = lint_workflow(case["input_yaml"], file_name(case))
        lines = {d.line for d in found if d.severity is Severity.ERROR}
        wanted = expected_lines(case)
        rejected = bool(lines & wanted) if wanted else bool(lines)
        if not rejected:
            missed.append(case["id"])
    return noisy, valid, missed, invalid


def test_valid_workflows_load_without_errors() -> None:
    noisy, valid, _, _ = results()
    record_rate("gha-parser-valid", valid - len(noisy), valid, 1.0)
    assert not noisy


def test_invalid_workflows_are_rejected_on_githubs_line() -> None:
    _, _, missed, invalid = results()
    passed = invalid - len(missed)
    record_rate(
        "gha-parser-invalid",
        passed,
        invalid,
        INVALID_THRESHOLD,
        f"({len(missed)} known failures)",
    )
    assert passed / invalid >= INVALID_THRESHOLD


def test_known_failures_are_exact() -> None:
    _, _, missed, _ = results()
    known = load_known_failures("workflow_parser")
    assert sorted(set(missed) - set(known)) == [], "misses not listed in known failures"
    assert sorted(set(known) - set(missed)) == [], "listed known failures now pass"
