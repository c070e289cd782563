"""The `protection:` section of environment files: values, defaults, and errors that name
the place."""

from __future__ import annotations

import textwrap

from shipline.spec.environment_protection import load_protection, parse_duration

FILE = ".shipline/environments/production.yml"


def load(text: str) -> tuple[object, list[str]]:
    rules, diagnostics = load_protection(textwrap.dedent(text), FILE)
    return rules, [d.format() for d in diagnostics]


def test_every_rule_is_read() -> None:
    rules, errors = load(
        """
        target: {local: {instances: 2, start: ./run}}
        protection:
          reviewers: {users: [alice, bob], roles: [maintainer], required: 2}
          prevent_self_review: false
          branches: [main, "release/*"]
          tags: ["v*"]
          wait_timer: 5m
          freeze: [{cron: "0 18 * * 5", duration: 63h}]
          allow_untrusted: true
        """
    )
    assert errors == []
    assert rules is not None
    assert rules.reviewers is not None  # type: ignore[attr-defined]
    assert rules.reviewers.users == ("alice", "bob")  # type: ignore[attr-defined]
    assert rules.reviewers.required == 2  # type: ignore[attr-defined]
    assert rules.prevent_self_review is False  # type: ignore[attr-defined]
    assert rules.branches == ("main", "release/*")  # type: ignore[attr-defined]
    assert rules.tags == ("v*",)  # type: ignore[attr-defined]
    assert rules.wait_timer == 300  # type: ignore[attr-defined]
    assert rules.freeze[0].duration == 63 * 3600  # type: ignore[attr-defined]
    assert rules.allow_untrusted is True  # type: ignore[attr-defined]


def test_defaults_are_strict() -> None:
    rules, errors = load("protection: {}\n")
    assert errors == []
    assert rules is not None
    assert rules.prevent_self_review is True  # type: ignore[attr-defined]
    assert rules.allow_untrusted is False  # type: ignore[attr-defined]
    assert rules.reviewers is None  # type: ignore[attr-defined]
    empty, _ = load("")
    assert empty is not None


def test_errors_name_the_place() -> None:
    rules, errors = load(
        """
        protection:
          reviewers: {roles: [boss], required: 0}
          wait_timer: soon
          freeze: [{cron: "61 * * * *", duration: 1h}]
          allow_untrusted: maybe
          brances: [main]
        """
    )
    assert rules is None
    text = "\n".join(errors)
    assert "no role 'boss'" in text
    assert '"protection.reviewers.required" must be a whole number from 1 to 10' in text
    assert '"protection.wait_timer" must be a duration' in text
    assert "protection.freeze[0].cron" in text
    assert '"protection.allow_untrusted" must be true or false' in text
    assert 'did you mean "branches"' in text
    assert all(e.startswith(FILE) for e in errors)


def test_durations() -> None:
    assert parse_duration(30) == 30
    assert parse_duration("90s") == 90
    assert parse_duration("2h") == 7200
    assert parse_duration("1.5m") == 90
    assert parse_duration("-1") is None
    assert parse_duration(True) is None
    assert parse_duration("soon") is None
