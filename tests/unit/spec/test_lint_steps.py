"""lint rule families `action`, `shell-name`, `deprecated-commands`, `env-var`, `credentials`."""

from __future__ import annotations

from shipline.spec.diagnostics import Severity
from tests.unit.spec._lint import at, error_lines, errors, lint

LOCAL_ACTION = """
name: My action
description: does things
inputs:
  message:
    required: true
  name:
    default: you
outputs:
  id:
    description: an id
runs:
  using: composite
  steps:
    - run: echo
      shell: bash
"""


def test_unknown_remote_action_is_a_warning_that_names_it() -> None:
    found = lint(
        """
        on: push
        jobs:
          build:
            runs-on: ubuntu-latest
            steps:
              - uses: actions/checkout@v4
              - uses: docker/build-push-action@v6
        """
    )
    d = at(found, 7, 15, "action")
    assert d.severity is Severity.WARNING
    assert "docker/build-push-action@v6" in d.message
    assert "fail this step at run time" in d.message
    assert errors(found) == []


def test_builtin_action_inputs_and_malformed_references() -> None:
    found = lint(
        """
        on: push
        jobs:
          build:
            runs-on: ubuntu-latest
            steps:
              - uses: actions/cache@v4
                with:
                  paths: x
              - uses: actions/checkout
              - uses: checkout@v4
        """
    )
    assert 'missing input "key"' in at(found, 6, 15, "action").message
    assert 'input "paths" is not defined' in at(found, 8, 11, "action").message
    assert "ref is missing" in at(found, 9, 15, "action").message
    assert "owner is missing" in at(found, 10, 15, "action").message


def test_local_action_inputs_and_outputs() -> None:
    found = lint(
        """
        on: push
        jobs:
          build:
            runs-on: ubuntu-latest
            steps:
              - id: mine
                uses: ./.github/actions/mine
                with:
                  mesage: hi
              - run: echo ${{ steps.mine.outputs.id }} ${{ steps.mine.outputs.nope }}
        """,
        local_actions={"./.github/actions/mine": LOCAL_ACTION},
    )
    assert 'missing input "message"' in at(found, 7, 15, "action").message
    assert 'input "mesage" is not defined' in at(found, 9, 11, "action").message
    assert '"nope"' in at(found, 10, 52, "expression").message
    assert error_lines(found).count(10) == 1


def test_shell_names_depend_on_the_runner_os() -> None:
    found = lint(
        """
        on: push
        jobs:
          linux:
            runs-on: ubuntu-latest
            steps:
              - run: echo
                shell: powershell
              - run: echo
                shell: fish
              - run: echo
                shell: perl {0}
          windows:
            runs-on: windows-latest
            steps:
              - run: echo
                shell: CMD
        """
    )
    assert "on macOS or Linux" in at(found, 7, 16, "shell-name").message
    assert 'shell name "fish" is invalid' in at(found, 9, 16, "shell-name").message
    assert {11, 16}.isdisjoint(error_lines(found))


def test_deprecated_commands_env_names_and_clear_text_passwords() -> None:
    found = lint(
        """
        on: push
        jobs:
          build:
            runs-on: ubuntu-latest
            container:
              image: node
              credentials:
                username: me
                password: hunter2
            steps:
              - run: echo "::set-output name=x::y"
                env:
                  A=B: c
        """
    )
    assert "set-output" in at(found, 11, 14, "deprecated-commands").message
    assert at(found, 13, 11, "env-var")
    assert "should be specified via secrets" in at(found, 9, 19, "credentials").message
