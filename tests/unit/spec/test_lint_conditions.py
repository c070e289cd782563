"""lint rule family `if-cond`: conditions that are always true or constant."""

from __future__ import annotations

from shipline.spec.diagnostics import Severity
from tests.unit.spec._lint import at, error_lines, lint

CONDITIONS = """
on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - run: echo 1
        if: ${{ github.ref == 'a' }} && false
      - run: echo 2
        if: '${{ false }} '
      - run: echo 3
        if: true
      - run: echo 4
        if: github.ref == 'refs/heads/main' && success()
      - run: echo 5
        if: ${{ github.event_name == 'push' }}
"""


def test_extra_text_around_braces_makes_a_condition_always_true() -> None:
    found = lint(CONDITIONS)
    d = at(found, 7, 13, "if-cond")
    assert "always evaluated to true" in d.message
    assert d.severity is Severity.ERROR
    assert at(found, 9, 13, "if-cond")  # a trailing space is enough


def test_constant_condition_is_a_warning() -> None:
    d = at(lint(CONDITIONS), 11, 13, "if-cond")
    assert d.severity is Severity.WARNING
    assert 'constant expression "true"' in d.message


def test_conditions_without_braces_are_expressions() -> None:
    assert 13 not in error_lines(lint(CONDITIONS))
    assert 15 not in error_lines(lint(CONDITIONS))


def test_syntax_error_in_a_bare_condition() -> None:
    found = lint(
        """
        on: push
        jobs:
          build:
            if: github.ref ==
            runs-on: ubuntu-latest
            steps:
              - run: echo
        """
    )
    assert 4 in error_lines(found)
