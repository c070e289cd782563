"""The `protection:` section of environment files, read by the one parser of environment
files (`spec.environment.load_environment`): values, defaults, and errors that name the
place."""

from __future__ import annotations

import textwrap

from shipline.spec.environment import load_environment
from shipline.spec.environment_models import ProtectionRules

FILE = ".shipline/environments/production.yml"
TARGET = "target: {local: {instances: 2, start: ./run}}\ntraffic: {port: 8080}\n"


def load(protection: str) -> tuple[ProtectionRules | None, list[str]]:
    spec, diagnostics = load_environment(TARGET + textwrap.dedent(protection), FILE)
    return (spec.protection if spec else None), [d.format() for d in diagnostics]


def test_every_rule_is_read() -> None:
    rules, errors = load(
        """
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
    assert rules is not None and rules.reviewers is not None
    assert rules.reviewers.users == ("alice", "bob")
    assert rules.reviewers.required == 2
    assert rules.prevent_self_review is False
    assert rules.branches == ("main", "release/*")
    assert rules.tags == ("v*",)
    assert rules.wait_timer == 300
    assert rules.freeze[0].duration == 63 * 3600
    assert rules.allow_untrusted is True


def test_defaults_are_strict() -> None:
    rules, errors = load("protection: {}\n")
    assert errors == []
    assert rules is not None
    assert rules.prevent_self_review is True
    assert rules.allow_untrusted is False
    assert rules.reviewers is None
    absent, _ = load("")
    assert absent == ProtectionRules()


def test_reviewers_without_users_or_roles_are_the_maintainers() -> None:
    rules, errors = load("protection: {reviewers: {required: 1}}\n")
    assert errors == []
    assert rules is not None and rules.reviewers is not None
    assert rules.reviewers.roles == ("maintainer",)


def test_errors_name_the_place() -> None:
    rules, errors = load(
        """
        protection:
          reviewers: {roles: [boss], required: 0}
          wait_timer: soon
          freeze: [{cron: "61 * * * *", duration: 1h}]
          allow_untrusted: maybe
          branches: ["[main"]
          brances: [main]
        """
    )
    assert rules is None
    text = "\n".join(errors)
    assert "no role 'boss'" in text
    assert '"protection.reviewers.required" must be an integer between 1 and 10' in text
    assert '"protection.wait_timer" must be a duration' in text
    assert "protection.freeze[0]" in text
    assert '"protection.allow_untrusted" must be true or false' in text
    assert "\"protection.branches\": pattern '[main'" in text
    assert 'did you mean "branches"' in text
    assert all(e.startswith(FILE) for e in errors)


def test_durations_of_protection_are_at_most_30_days() -> None:
    rules, errors = load("protection: {wait_timer: 31d}\n")
    assert rules is None
    assert any('"protection.wait_timer" must be at most 30 days' in e for e in errors)
    rules, errors = load("protection: {freeze: [{cron: '0 0 * * *', duration: 40d}]}\n")
    assert rules is None
    assert any("protection.freeze[0].duration" in e for e in errors)
