"""lint rule family `matrix`: empty rows, duplicate values, exclude entries that match nothing."""

from __future__ import annotations

from tests.unit.spec._lint import at, errors, lint

MATRIX = """
on: push
jobs:
  test:
    strategy:
      matrix:
        node: [18, 20, 20]
        os: [ubuntu-latest]
        empty: []
        include:
          - extra: x
        exclude:
          - node: 16
          - platform: linux
          - extra: x
          - os: {name: ubuntu-latest}
    runs-on: ubuntu-latest
    steps:
      - run: echo ${{ matrix.node }}
"""


def test_duplicate_value_points_at_the_second_one() -> None:
    found = lint(MATRIX)
    assert "line:6,col:20" in at(found, 6, 24, "matrix").message


def test_empty_row() -> None:
    assert "should not be empty" in at(lint(MATRIX), 8, 16, "syntax-check").message


def test_exclude_value_and_key_that_match_nothing() -> None:
    found = lint(MATRIX)
    assert 'value "16"' in at(found, 12, 19, "matrix").message
    assert '"platform"' in at(found, 13, 13, "matrix").message
    assert 'value {"name": "ubuntu-latest"}' in at(found, 15, 17, "matrix").message


def test_keys_added_by_include_can_be_excluded() -> None:
    assert not [e for e in errors(lint(MATRIX)) if ":14:" in e]


def test_expressions_in_a_matrix_are_not_judged() -> None:
    found = lint(
        """
        on: push
        jobs:
          test:
            strategy:
              matrix:
                os: ${{ fromJSON('["a"]') }}
                exclude:
                  - os: b
            runs-on: ubuntu-latest
            steps:
              - run: echo
        """
    )
    assert errors(found) == []
