"""lint rule family `runner-label`: unknown labels and labels that cannot go together."""

from __future__ import annotations

from shipline.spec.diagnostics import Severity
from tests.unit.spec._lint import at, errors, lint


def test_unknown_label_is_only_a_warning() -> None:
    found = lint(
        """
        on: push
        jobs:
          build:
            runs-on: macos-10
            steps:
              - run: echo
        """
    )
    d = at(found, 4, 14, "runner-label")
    assert d.severity is Severity.WARNING
    assert errors(found) == []


def test_two_hosted_images_conflict_also_through_a_matrix() -> None:
    found = lint(
        """
        on: push
        jobs:
          a:
            runs-on: [ubuntu-latest, windows-latest, self-hosted]
            steps:
              - run: echo
          b:
            strategy:
              matrix:
                os: [macos-latest]
            runs-on: [ubuntu-latest, '${{ matrix.os }}']
            steps:
              - run: echo
        """
    )
    assert "conflicts" in at(found, 4, 30, "runner-label").message
    assert "conflicts" in at(found, 10, 14, "runner-label").message
