"""lint rule family `jobs`: job and step ids, `needs` entries and cycles."""

from __future__ import annotations

from tests.unit.spec._lint import at, lint

NEEDS = """
on: push
jobs:
  a:
    needs: [b]
    runs-on: ubuntu-latest
    steps:
      - run: echo
  b:
    needs: [c, C, ghost]
    runs-on: ubuntu-latest
    steps:
      - run: echo
  c:
    needs: a
    runs-on: ubuntu-latest
    steps:
      - run: echo
  d:
    runs-on: ubuntu-latest
    steps:
      - run: echo
"""


def test_unknown_need_is_reported_once_at_the_entry() -> None:
    found = lint(NEEDS)
    assert 'needs job "ghost"' in at(found, 9, 19, "job-needs").message
    assert not [d for d in found if d.line == 8 and d.code == "job-needs"]


def test_duplicate_need_ignores_case() -> None:
    found = lint(NEEDS)
    assert "duplicates" in at(found, 9, 16, "job-needs").message


def test_cycle_is_reported_in_full_at_its_first_job() -> None:
    found = lint(NEEDS)
    d = at(found, 3, 3, "job-needs")
    assert 'detected cycle is "a" -> "b" -> "c" -> "a"' in d.message
    # ...and the entry that closes it, where GitHub reports it.
    assert "creates a cycle" in at(found, 14, 12, "job-needs").message


def test_workflow_needs_a_job_without_dependencies() -> None:
    found = lint(
        """
        on: push
        jobs:
          a:
            needs: b
            runs-on: ubuntu-latest
            steps:
              - run: echo
          b:
            needs: a
            runs-on: ubuntu-latest
            steps:
              - run: echo
        """
    )
    assert "cycle" in at(found, 3, 3, "job-needs").message


def test_invalid_and_reserved_ids() -> None:
    found = lint(
        """
        on: push
        jobs:
          1st:
            runs-on: ubuntu-latest
            steps:
              - run: echo
          __x:
            runs-on: ubuntu-latest
            steps:
              - id: has space
                run: echo
              - id: ok-id
                run: echo
              - id: OK-ID
                run: echo
        """
    )
    assert "must start with a letter or _" in at(found, 3, 3, "id").message
    assert "reserved" in at(found, 7, 3, "id").message
    assert "step ID" in at(found, 10, 13, "id").message
    assert "previously defined at line:12,col:13" in at(found, 14, 13, "id").message
