"""An environment file in words, as the environments page shows it."""

from __future__ import annotations

import textwrap

from shipline.engine.environment_files import EnvironmentFile
from shipline.server.web.envview import declared
from shipline.spec.environment import load_environment

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
    path = ".shipline/environments/production.yml"
    spec, errors = load_environment(text, path, name="production")
    assert spec is not None, errors
    return EnvironmentFile("production", path, "a" * 40, text, spec)


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


def test_an_ssh_target_in_words() -> None:
    found = declared(
        file(
            """
            target:
              ssh:
                hosts:
                  - {host: 10.0.0.5, fingerprint: "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"}
                  - {host: 10.0.0.6, port: 2222, fingerprint: "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"}
                user: deploy
                key_secret: DEPLOY_KEY
                path: /srv/app
                restart: systemctl restart app
                service_port: 8000
            strategy: {rolling: {batch_size: 1}}
            """
        )
    )
    assert dict(found.facts)["Targets"] == (
        "SSH: 10.0.0.5, 10.0.0.6:2222 (as deploy, into /srv/app)"
    )


def test_a_file_that_cannot_be_read_is_its_reason() -> None:
    found = declared("environment 'qa' is not defined")
    assert (found.facts, found.problem) == ((), "environment 'qa' is not defined")
