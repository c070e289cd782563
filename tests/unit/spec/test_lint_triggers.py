"""lint rule family `events`: cron schedules, filter patterns and trigger structure."""

from __future__ import annotations

from shipline.spec.diagnostics import Severity
from tests.unit.spec._lint import at, lint

TRIGGERS = """
on:
  schedule:
    - cron: '0 */3 * *'
    - cron: '*/2 * * * *'
    - cron: '0 5 * * 1'
  push:
    branches: ['main', 'v[0-']
    tags: ['^v1']
    paths: ['./src/**']
  pull_request:
    tags: [v1]
    branches: [a]
    branches-ignore: [b]
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - run: echo
"""


def test_invalid_cron() -> None:
    assert "invalid CRON format" in at(lint(TRIGGERS), 3, 13, "events").message


def test_cron_more_often_than_every_five_minutes_is_a_warning() -> None:
    d = at(lint(TRIGGERS), 4, 13, "events")
    assert d.severity is Severity.WARNING
    assert "120 seconds" in d.message


def test_glob_errors_point_inside_the_pattern() -> None:
    found = lint(TRIGGERS)
    assert at(found, 7, 28, "glob")  # the unclosed [
    assert at(found, 8, 13, "glob")  # ^ is not a ref character
    assert at(found, 9, 14, "glob")  # ./ is never part of a path


def test_filters_not_available_for_an_event_and_exclusive_pairs() -> None:
    found = lint(TRIGGERS)
    assert "only for push event" in at(found, 11, 5, "events").message
    assert "cannot be used for the same event" in at(found, 13, 5, "events").message


def test_dispatch_inputs_and_unknown_event() -> None:
    found = lint(
        """
        on:
          workflow_dispatch:
            inputs:
              kind:
                type: choice
              age:
                type: number
                default: old
          pushh:
        jobs:
          build:
            runs-on: ubuntu-latest
            steps:
              - run: echo
        """
    )
    assert '"options" is not set' in at(found, 4, 7, "events").message
    assert "cannot be parsed as a float" in at(found, 8, 18, "events").message
    d = at(found, 9, 3, "events")
    assert d.hint == 'did you mean "push"?'
