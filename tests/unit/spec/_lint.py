"""Helpers shared by the lint unit tests: lint a snippet and look findings up by place."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping

from shipline.spec.diagnostics import Diagnostic, Severity
from shipline.spec.lint import lint_workflow


def lint(text: str, local_actions: Mapping[str, str] | None = None) -> list[Diagnostic]:
    return lint_workflow(textwrap.dedent(text).lstrip("\n"), "w.yml", local_actions=local_actions)


def at(found: list[Diagnostic], line: int, col: int, code: str) -> Diagnostic:
    """The one finding with this code at this place (fails with the full list otherwise)."""
    hits = [d for d in found if (d.line, d.col, d.code) == (line, col, code)]
    assert len(hits) == 1, [d.format() for d in found]
    return hits[0]


def errors(found: list[Diagnostic]) -> list[str]:
    return [d.format() for d in found if d.severity is Severity.ERROR]


def error_lines(found: list[Diagnostic]) -> list[int]:
    return [d.line for d in found if d.severity is Severity.ERROR]


def codes(found: list[Diagnostic]) -> set[str]:
    return {d.code for d in found}


OK_JOB = """
on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - run: echo hi
"""
