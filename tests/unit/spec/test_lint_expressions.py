"""lint rule family `expressions`: syntax, names, context availability, property access."""

from __future__ import annotations

from tests.unit.spec._lint import at, error_lines, errors, lint


def test_syntax_error_points_inside_the_expression() -> None:
    found = lint(
        """
        on: push
        jobs:
          build:
            runs-on: ubuntu-latest
            steps:
              - run: echo ${{ github.sha == }}
        """
    )
    assert at(found, 6, 34, "expression")


def test_unknown_context_and_function_and_arity() -> None:
    found = lint(
        """
        on: push
        jobs:
          build:
            runs-on: ubuntu-latest
            steps:
              - run: echo ${{ nope.x }}
              - run: echo ${{ startWith('a', 'b') }}
              - run: echo ${{ contains('a') }}
        """
    )
    assert 'undefined variable "nope"' in at(found, 6, 23, "expression").message
    assert error_lines(found).count(7) == 1
    assert error_lines(found).count(8) == 1


def test_context_availability_follows_githubs_table() -> None:
    found = lint(
        """
        name: ${{ github.ref }}
        on: push
        env:
          A: ${{ env.B }}
        jobs:
          build:
            if: ${{ env.X == 'y' && success() }}
            runs-on: ${{ env.RUNNER }}
            steps:
              - run: echo ${{ hashFiles('x') }}
                if: ${{ secrets.T }}
        """
    )
    assert "no context is available here" in at(found, 1, 11, "expression").message
    assert 'context "env" is not allowed here' in at(found, 4, 10, "expression").message
    assert 'context "env" is not allowed here' in at(found, 7, 13, "expression").message
    assert 'context "env" is not allowed here' in at(found, 8, 18, "expression").message
    assert 'context "secrets" is not allowed here' in at(found, 11, 17, "expression").message
    assert 10 not in error_lines(found)  # hashFiles is fine in run


def test_status_functions_only_in_conditions() -> None:
    found = lint(
        """
        on: push
        jobs:
          build:
            runs-on: ubuntu-latest
            steps:
              - run: echo ${{ always() }}
        """
    )
    assert 'calling function "always" is not allowed here' in at(found, 6, 23, "expression").message


def test_property_access_that_can_never_have_a_value() -> None:
    found = lint(
        """
        on:
          workflow_dispatch:
            inputs:
              tag:
                type: string
        jobs:
          first:
            runs-on: ubuntu-latest
            outputs:
              out: ${{ steps.make.outputs.v }}
            steps:
              - id: make
                run: echo
          second:
            needs: first
            runs-on: ubuntu-latest
            strategy:
              matrix:
                os: [a]
            steps:
              - run: echo ${{ steps.later.outputs.x }} ${{ needs.other.result }}
              - id: later
                run: echo ${{ matrix.arch }} ${{ inputs.tga }} ${{ github.shaa }}
              - run: echo ${{ needs.first.outputs.nope }} ${{ runner.oss }}
        """
    )
    assert '"later"' in at(found, 21, 23, "expression").message
    assert '"other"' in at(found, 21, 52, "expression").message
    assert '"arch"' in at(found, 23, 23, "expression").message
    assert '"tga"' in at(found, 23, 42, "expression").message
    assert '"shaa"' in at(found, 23, 60, "expression").message
    assert '"nope"' in at(found, 24, 23, "expression").message
    assert '"oss"' in at(found, 24, 55, "expression").message
    assert 10 not in error_lines(found)  # job outputs see all steps


def test_untrusted_input_in_a_script() -> None:
    found = lint(
        """
        on: issues
        jobs:
          build:
            runs-on: ubuntu-latest
            steps:
              - run: |
                  echo "${{ github.event.issue.title }}"
                env:
                  TITLE: ${{ github.event.issue.title }}
        """
    )
    assert "potentially untrusted" in at(found, 7, 21, "expression").message
    assert 9 not in error_lines(found)  # through env is the safe way


def test_literal_arguments_of_format_and_fromjson() -> None:
    found = lint(
        """
        on: push
        jobs:
          build:
            runs-on: ubuntu-latest
            steps:
              - run: echo ${{ format('{0} {1}', 'a') }} ${{ fromJSON('[1') }}
        """
    )
    assert "placeholder {1}" in at(found, 6, 23, "expression").message
    assert "broken JSON" in at(found, 6, 62, "expression").message


def test_objects_interpolated_into_strings() -> None:
    found = lint(
        """
        on: push
        jobs:
          build:
            runs-on: ubuntu-latest
            steps:
              - run: echo ${{ github.event }} ${{ toJSON(github.event) }}
        """
    )
    assert "type object" in at(found, 6, 19, "expression").message
    assert len(errors(found)) == 1
