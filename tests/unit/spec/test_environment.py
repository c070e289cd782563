"""Environment files: the full format read into `EnvironmentSpec`, and every mistake
reported with its line, column, key path and (where one exists) the closest valid key."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipline.spec.environment import environment_name, load_environment, parse_duration
from shipline.spec.environment_models import (
    CommandCheck,
    HttpCheck,
    LocalTarget,
    SshHost,
    SshTarget,
)

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "webapp" / ".shipline"

FULL = """\
description: Production
url: https://shop.example.com
target:
  local:
    instances: 4
    start: python3 app.py
    env: {GREETING: hi}
    ports: 9100-9199
    grace: 20s
strategy:
  canary:
    weights: [10, 50, 100]
    bake: 2m
    analysis: {max_error_rate: 0.01, max_p95_ms: 250, min_requests: 50, interval: 30s}
health:
  http: {path: /healthz, status: 204}
  timeout: 2s
  interval: 500ms
  healthy_threshold: 2
  unhealthy_threshold: 3
  start_timeout: 1m
hooks:
  BeforeInstall:
    - location: scripts/migrate.sh
      timeout: 300
      runas: deploy
traffic: {port: 8080, drain: 15s}
rollback: {automatic: true, on: [health, analysis]}
protection:
  reviewers: {users: [alice, bob], roles: [maintainer], required: 2}
  prevent_self_review: true
  branches: [main, "release/*"]
  tags: ["v*"]
  wait_timer: 10m
  freeze:
    - {cron: "0 18 * * 5", duration: 62h}
  allow_untrusted: false
concurrency: {skip_superseded: false}
"""


def _errors(text: str, file: str = ".shipline/environments/prod.yml") -> list[str]:
    spec, diagnostics = load_environment(text, file)
    assert spec is None
    return [d.format() for d in diagnostics]


def test_full_file() -> None:
    spec, diagnostics = load_environment(FULL, ".shipline/environments/production.yml")
    assert diagnostics == []
    assert spec is not None
    assert spec.name == "production"
    assert spec.url == "https://shop.example.com"
    target = spec.target
    assert isinstance(target, LocalTarget)
    assert (target.instances, target.start, target.env) == (
        4,
        "python3 app.py",
        (("GREETING", "hi"),),
    )
    assert (target.ports.first, target.ports.last, target.grace) == (9100, 9199, 20.0)
    s = spec.strategy
    assert (s.kind, s.weights, s.bake) == ("canary", (10, 50, 100), 120.0)
    assert s.analysis is not None
    assert (s.analysis.max_error_rate, s.analysis.max_p95_ms) == (0.01, 250.0)
    assert (s.analysis.min_requests, s.analysis.interval) == (50, 30.0)
    assert spec.health.check == HttpCheck("/healthz", 204)
    assert (spec.health.interval, spec.health.start_timeout) == (0.5, 60.0)
    assert (spec.health.healthy_threshold, spec.health.unhealthy_threshold) == (2, 3)
    [(event, scripts)] = spec.hooks.inline
    assert event == "BeforeInstall"
    assert (scripts[0].location, scripts[0].timeout, scripts[0].runas) == (
        "scripts/migrate.sh",
        300.0,
        "deploy",
    )
    assert spec.traffic is not None and (spec.traffic.port, spec.traffic.drain) == (8080, 15.0)
    assert spec.rollback.on == ("health", "analysis")
    p = spec.protection
    assert p.reviewers is not None
    assert (p.reviewers.users, p.reviewers.roles, p.reviewers.required) == (
        ("alice", "bob"),
        ("maintainer",),
        2,
    )
    assert (p.branches, p.tags, p.wait_timer) == (("main", "release/*"), ("v*",), 600.0)
    assert p.freeze[0].cron == "0 18 * * 5" and p.freeze[0].duration == 62 * 3600
    assert p.allow_untrusted is False and p.prevent_self_review is True
    assert spec.concurrency.skip_superseded is False


def test_defaults_are_the_safe_ones() -> None:
    spec, _ = load_environment(
        "target: {local: {start: ./serve}}\ntraffic: {port: 8080}\n", "staging.yml"
    )
    assert spec is not None
    assert spec.strategy.kind == "all-at-once"
    assert spec.protection.allow_untrusted is False
    assert spec.protection.prevent_self_review is True
    assert spec.rollback.automatic is True
    assert spec.rollback.on == ("hooks", "health", "analysis")
    assert spec.concurrency.skip_superseded is True


def test_example_environment_file_is_valid() -> None:
    path = EXAMPLE / "environments" / "production.yml"
    spec, diagnostics = load_environment(path.read_text(), str(path))
    assert diagnostics == [] and spec is not None


HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
FINGERPRINT = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"


def test_ssh_target_and_command_health() -> None:
    text = f"""
target:
  ssh:
    hosts:
      - {{host: web1, host_key: "{HOST_KEY}"}}
      - {{host: 10.0.0.2, port: 2222, fingerprint: "{FINGERPRINT}", service_port: 8001}}
      - web3.example.com:2200
    known_hosts: "web3.example.com {HOST_KEY}"
    user: deploy
    key_secret: DEPLOY_KEY
    path: /srv/shop/
    restart: sudo systemctl restart shop
    service_port: 8000
    env: {{MODE: production}}
strategy: {{rolling: {{batch_percent: 50, min_healthy: 1}}}}
health: {{command: "curl -fsS localhost:$PORT/healthz"}}
"""
    spec, diagnostics = load_environment(text, "prod.yml")
    assert diagnostics == [] and spec is not None
    target = spec.target
    assert isinstance(target, SshTarget)
    assert [h.name for h in target.hosts] == ["web1", "10.0.0.2:2222", "web3.example.com:2200"]
    assert target.hosts[0].host_key == HOST_KEY and target.hosts[0].port == 22
    assert target.hosts[1] == SshHost(
        "10.0.0.2", 2222, fingerprint=FINGERPRINT, service_port=8001, pos=target.hosts[1].pos
    )
    assert (target.user, target.key_secret, target.path) == ("deploy", "DEPLOY_KEY", "/srv/shop")
    assert (target.restart, target.service_port) == ("sudo systemctl restart shop", 8000)
    assert target.env == (("MODE", "production"),)
    assert spec.strategy.batch_percent == 50 and spec.strategy.min_healthy == 1
    assert spec.health.check == CommandCheck("curl -fsS localhost:$PORT/healthz")


SSH = "target:\n  ssh:\n    user: deploy\n    key_secret: K\n    path: /srv\n    restart: r\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            SSH + "    service_port: 80\n    hosts: [web1]\n",
            'prod.yml:8:13: error environment: "target.ssh.hosts[0]" (web1) has no host key '
            'to verify: give "host_key"',
        ),
        (
            SSH + "    service_port: 80\n    hosts: [{host: web1, fingerprint: MD5:aa}]\n",
            'prod.yml:8:39: error environment: "target.ssh.hosts[0].fingerprint" must be a '
            "SHA-256 fingerprint",
        ),
        (
            SSH + "    service_port: 80\n    hosts: [{host: web1, host_key: AAAA}]\n",
            'prod.yml:8:36: error environment: "target.ssh.hosts[0].host_key" must be an '
            "OpenSSH public key line",
        ),
        (
            SSH + f"    service_port: 80\n    hosts: [{{host: w, fingerprint: '{FINGERPRINT}'}}]\n"
            "strategy: {canary: {weights: [10, 100]}}\n",
            'prod.yml:9:11: error environment: the "canary" strategy shifts traffic',
        ),
        (
            SSH + f"    service_port: 80\n    hosts: [{{host: w, fingerprint: '{FINGERPRINT}'}}]\n"
            "strategy: blue-green\n",
            'the "blue-green" strategy shifts traffic between two sets of instances',
        ),
        (
            SSH.replace("key_secret: K", "key_secret: '-----BEGIN OPENSSH'")
            + f"    service_port: 80\n    hosts: [{{host: w, fingerprint: '{FINGERPRINT}'}}]\n",
            'prod.yml:4:17: error environment: "target.ssh.key_secret" names an environment secret',
        ),
        (
            SSH + f"    hosts: [{{host: w, fingerprint: '{FINGERPRINT}'}}]\n",
            '"service_port" section is missing in "target.ssh"',
        ),
        (
            SSH
            + f"    service_port: 80\n    hosts: ['w:22', {{host: w, host_key: '{HOST_KEY}'}}]\n"
            "    known_hosts: x\n",
            '"target.ssh.hosts" names w twice',
        ),
    ],
)
def test_ssh_target_mistakes_are_reported_where_they_are(text: str, expected: str) -> None:
    errors = _errors(text, "prod.yml")
    assert any(expected in e for e in errors), errors


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "target: {local: {instancs: 2, start: x}}\ntraffic: {port: 8080}\n",
            'prod.yml:1:18: error syntax-check: unexpected key "instancs" for "target.local"',
        ),
        (
            "target: {local: {start: x}}\ntraffic: {port: 8080}\nstrategy: canery\n",
            'unknown strategy "canery"',
        ),
        ("target: {local: {start: x}}\n", 'a "local" target needs "traffic: {port: N}"'),
        (
            "target: {local: {start: x}}\ntraffic: {port: 8080}\nhealth: {timeout: soon}\n",
            'prod.yml:3:19: error environment: "health.timeout" must be a duration',
        ),
        (
            "target: {local: {start: x}}\ntraffic: {port: 8080}\n"
            "strategy: {canary: {weights: [50, 10]}}\n",
            "must increase and end at 100",
        ),
        (
            "target: {local: {start: x, instances: 4, ports: 9000-9005}}\ntraffic: {port: 8080}\n",
            "9000-9005 has 6 port(s); 4 instances need 8",
        ),
        (
            "target: {local: {start: x}}\ntraffic: {port: 8080}\n"
            "protection: {reviewers: {users: [alice], required: 2}}\n",
            '"protection.reviewers.required" is 2 but only 1 user(s) may approve',
        ),
        (
            "target: {local: {start: x}}\ntraffic: {port: 8080}\n"
            "protection: {freeze: [{cron: '0 25 * * *', duration: 1h}]}\n",
            "invalid cron in protection.freeze[0]",
        ),
        (
            "target: {ssh: {hosts: [a], user: u, key_secret: K, path: srv, restart: r, "
            "service_port: 80, known_hosts: x}}\n",
            "must be an absolute path",
        ),
        ("target: {local: {start: x}, ssh: {}}\n", 'exactly one of "local" or "ssh"'),
        ("strategy: rolling\n", '"target" section is missing'),
        (
            "target: {local: {start: x}}\ntraffic: {port: 8080}\nhooks: {appspec: ../x.yml}\n",
            "a path inside the release",
        ),
        (
            "target: {local: {start: x}}\ntraffic: {port: 8080}\nrollback: {on: [alarms]}\n",
            'unknown rollback cause "alarms"',
        ),
        ("", "the environment file is empty"),
        ("target: [\n", "prod.yml:"),
    ],
)
def test_mistakes_are_reported_where_they_are(text: str, expected: str) -> None:
    errors = _errors(text, "prod.yml")
    assert any(expected in e for e in errors), errors


def test_closest_key_is_suggested() -> None:
    _, diagnostics = load_environment(
        "target: {local: {start: x}}\ntraffic: {port: 8080}\nprotections: {}\n", "prod.yml"
    )
    [d] = diagnostics
    assert (d.line, d.col, d.path, d.hint) == (3, 1, "protections", 'did you mean "protection"?')


def test_name_comes_from_the_file() -> None:
    assert environment_name(".shipline/environments/prod-eu.yaml") == "prod-eu"
    errors = _errors("target: {local: {start: x}}\ntraffic: {port: 8080}\n", "bad name!.yml")
    assert any("environment name" in e for e in errors)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (30, 30.0),
        ("90s", 90.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("250ms", 0.25),
        ("2d", 172800.0),
        ("1.5", 1.5),
        ("", None),
        ("soon", None),
        ("5m3", None),
        (-1, None),
        (True, None),
    ],
)
def test_durations(value: object, seconds: float | None) -> None:
    assert parse_duration(value) == seconds


def test_traffic_on_an_ssh_target_is_a_warning() -> None:
    text = SSH + f"    service_port: 80\n    hosts: [{{host: w, host_key: '{HOST_KEY}'}}]\n"
    spec, diagnostics = load_environment(text + "traffic: {port: 8080}\n", "prod.yml")
    assert spec is not None
    assert [d.format() for d in diagnostics] == [
        'prod.yml:9:10: warning environment: "traffic" has no effect on an "ssh" target: the '
        "hosts serve on their own (put them behind your load balancer)"
    ]


def test_every_section_is_checked_when_the_target_has_mistakes() -> None:
    text = SSH + "    service_port: 80\n    hosts: [web1]\nhealth: {timeout: soon}\n"
    errors = _errors(text, "prod.yml")
    assert any("has no host key to verify" in e for e in errors), errors
    assert any('"health.timeout" must be a duration' in e for e in errors), errors
