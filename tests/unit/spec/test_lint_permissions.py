"""lint rule family `permissions`: scopes and the values each accepts."""

from __future__ import annotations

from tests.unit.spec._lint import at, errors, lint


def test_scopes_and_values() -> None:
    found = lint(
        """
        on: push
        permissions: write
        jobs:
          build:
            permissions:
              contents: read
              id-token: read
              models: write
              check: write
            runs-on: ubuntu-latest
            steps:
              - run: echo
        """
    )
    assert "read-all" in at(found, 2, 14, "permissions").message
    assert (
        '"read" is invalid as permission of scope "id-token"'
        in at(found, 7, 17, "permissions").message
    )
    assert at(found, 8, 15, "permissions")
    assert 'unknown permission scope "check"' in at(found, 9, 7, "permissions").message
    assert len(errors(found)) == 4


def test_read_all_and_empty_mapping_are_valid() -> None:
    found = lint(
        """
        on: push
        permissions: read-all
        jobs:
          build:
            permissions: {}
            runs-on: ubuntu-latest
            steps:
              - run: echo
        """
    )
    assert errors(found) == []


def test_what_the_job_token_will_not_get_is_a_warning() -> None:
    found = lint(
        """
        on: [push, pull_request]
        permissions:
          contents: write
          pull-request: read
        jobs:
          build:
            permissions: write-all
            runs-on: ubuntu-latest
            steps:
              - run: echo
        """
    )
    assert "at most `read`" in at(found, 3, 13, "permissions").message
    assert at(found, 4, 3, "permissions").hint == 'did you mean "pull-requests"?'
    assert "at most `read`" in at(found, 7, 18, "permissions").message
    assert len(errors(found)) == 1


def test_write_without_pull_requests_is_no_warning() -> None:
    found = lint(
        """
        on: push
        permissions: {contents: write}
        jobs:
          build: {runs-on: ubuntu-latest, steps: [{run: echo}]}
        """
    )
    assert [d for d in found if d.code == "permissions"] == []
