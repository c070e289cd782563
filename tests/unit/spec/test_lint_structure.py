"""lint_workflow: YAML errors, unknown keys, types and empty sections (the loader's checks)."""

from __future__ import annotations

import random

from shipline.spec.diagnostics import Severity
from shipline.spec.lint import lint_workflow
from tests.unit.spec._lint import OK_JOB, at, errors, lint


def test_a_valid_workflow_has_no_findings() -> None:
    assert lint(OK_JOB) == []


def test_yaml_syntax_error_is_reported_with_its_position() -> None:
    found = lint("on: push\njobs:\n  build:\n    steps: [\n")
    assert len(found) == 1
    assert found[0].code == "syntax-check"
    assert "could not parse as YAML" in found[0].message


def test_unknown_key_names_the_closest_valid_key() -> None:
    found = lint(
        """
        on: push
        jobs:
          build:
            runs-on: ubuntu-latest
            step:
              - run: echo hi
        """
    )
    d = at(found, 5, 5, "syntax-check")
    assert 'unexpected key "step"' in d.message
    assert d.hint == 'did you mean "steps"?'
    assert d.path == "jobs.build.step"


def test_wrong_types_of_timeout_and_continue_on_error() -> None:
    found = lint(
        """
        on: push
        jobs:
          build:
            runs-on: ubuntu-latest
            timeout-minutes: soon
            continue-on-error: maybe
            steps:
              - run: echo hi
        """
    )
    assert "must be a number or an expression" in at(found, 5, 22, "syntax-check").message
    assert "must be a boolean or an expression" in at(found, 6, 24, "syntax-check").message


def test_empty_sections_point_at_the_empty_value() -> None:
    found = lint(
        """
        on:
        jobs:
        """
    )
    at(found, 1, 4, "syntax-check")  # just after "on:"
    assert "should not be empty" in at(found, 2, 6, "syntax-check").message


def test_missing_runs_on_is_reported_where_github_reports_it() -> None:
    found = lint(
        """
        on: push
        jobs:
          build:
            steps:
              - run: echo hi
        """
    )
    assert "runs-on" in at(found, 4, 5, "syntax-check").message


def test_step_keys_depend_on_the_kind_of_step() -> None:
    found = lint(
        """
        on: push
        jobs:
          build:
            runs-on: ubuntu-latest
            steps:
              - run: echo hi
                with:
                  a: b
        """
    )
    assert "step to run shell command" in at(found, 7, 9, "syntax-check").message


def test_merge_keys_and_unused_anchors() -> None:
    found = lint(
        """
        on: push
        env: &unused
          A: b
        jobs:
          build:
            runs-on: ubuntu-latest
            steps:
              - run: echo hi
                env:
                  <<: {B: c}
        """
    )
    assert at(found, 2, 6, "syntax-check").severity is Severity.WARNING
    assert "merge key" in at(found, 10, 11, "syntax-check").message


def test_case_insensitive_duplicate_env_names() -> None:
    found = lint(
        """
        on: push
        env:
          FOO: a
          foo: b
        jobs:
          build:
            runs-on: ubuntu-latest
            steps:
              - run: echo hi
        """
    )
    assert "case insensitive" in at(found, 4, 3, "syntax-check").message


def test_lint_never_raises_on_truncated_or_random_input() -> None:
    rng = random.Random(7)
    text = OK_JOB + "    strategy:\n      matrix:\n        os: [a, b]\n"
    pieces = ["${{", "}}", ":", "- ", "&a ", "*a", "\n  ", "'", '"', "[", "{", "on", "jobs"]
    for cut in range(len(text)):
        assert isinstance(lint_workflow(text[:cut], "t.yml"), list)
    for _ in range(300):
        noisy = "".join(rng.choice(pieces) + rng.choice(text) for _ in range(40))
        assert isinstance(lint_workflow(noisy, "t.yml"), list)


def test_results_are_sorted_by_line_and_column() -> None:
    found = lint(
        """
        on: push
        jobs:
          b:
            runs-on: ubuntu-latest
            steps:
              - run: echo ${{ nope }}
              - run: echo '::set-output name=a::b'
          a:
            needs: [zzz]
        """
    )
    assert [(d.line, d.col) for d in found] == sorted((d.line, d.col) for d in found)
    assert errors(found)


def test_deep_nesting_and_long_needs_chains_do_not_exhaust_the_stack() -> None:
    nested = "on: push\nenv:\n  A: " + "[" * 3000 + "]" * 3000 + "\njobs: {}\n"
    assert "nesting is too deep" in lint_workflow(nested, "t.yml")[0].message
    n = 1200  # more than the interpreter's recursion limit
    jobs = "".join(
        f"  j{i}:\n    runs-on: x\n    needs: j{i + 1}\n    steps:\n      - run: echo\n"
        for i in range(n)
    )
    jobs += f"  j{n}:\n    runs-on: x\n    steps:\n      - run: echo\n"
    assert errors(lint_workflow("on: push\njobs:\n" + jobs, "t.yml")) == []


def test_mapping_keys_keep_their_text() -> None:
    found = lint(
        """
        on: push
        jobs:
          build:
            runs-on: ubuntu-latest
            strategy:
              matrix:
                3.10: [a]
            steps:
              - run: echo ${{ matrix['3.10'] }}
        """
    )
    assert errors(found) == []
