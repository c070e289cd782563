"""An environment file in words, as the environments page shows it."""

from __future__ import annotations

import textwrap

from shipline.spec.environment_protection import load_protection

from shipline.engine.environment_files import EnvironmentFile
from shipline.server.web.envview import declared

FULL = """
url: https://shop.example.test
target:
  local: {instances: 4, start: python3 app.py, ports: 9100-9199}
strategy: {rolling: {batch_size: 2, min_healthy: 3}}
health: {command: ./check.sh, unhealthy_threshold: 5}
traffic: {port: 8080}
rollback: {automatic: false}
protection:
  reviewers: {users: [alice], roles: [maintainer], required: 2}
  branches: [main]
  wait_timer: 10m
"""


def file(text: str) -> EnvironmentFile:
    text = textwrap.dedent(text)
    rules, errors = load_protection(text, ".shipline/environments/production.yml")
    assert rules is not None, errors
    return EnvironmentFile(
        "production", ".shipline/environments/production.yml", "a" * 40, text, rules
    )


def test_a_complete_file_in_words() -> None:
    found = declared(file(FULL))
    facts = dict(found.facts)
    assert facts["Targets"] == "local processes: 4 instances of `python3 app.py`, ports 9100–9199"
    assert facts["Strategy"] == "rolling, 2 at a time, at least 3 healthy"
    assert facts["Health check"].startswith("command `./check.sh` exits 0, every 1 s")
    assert "unhealthy after 5 in a row" in facts["Health check"]
    assert facts["Traffic router"] == "127.0.0.1:8080"
    assert facts["Automatic rollback"] == "off"
    assert facts["Protection"] == (
        "2 approval(s) from alice, role maintainer; not by whoever started the run; "
        "branches main; wait 600 s after approval"
    )
    assert found.url == "https://shop.example.test" and found.problem == ""


def test_a_file_without_targets_shows_its_errors_and_its_rules() -> None:
    found = declared(file("protection: {}\n"))
    assert found.problem and "target" in found.problem
    assert dict(found.facts) == {"Protection": "none: any trusted run may deploy"}


def test_a_file_that_cannot_be_read_is_its_reason() -> None:
    found = declared("environment 'qa' is not defined")
    assert (found.facts, found.problem) == ((), "environment 'qa' is not defined")
