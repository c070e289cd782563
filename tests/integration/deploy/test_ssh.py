"""The ssh target end to end against Debian's OpenSSH server.

Each "host" is an `sshd -D` of its own on a loopback port, with host and client keys made
by ssh-keygen in a temporary directory (root login with a key only; no system sshd, never
port 22). Two such hosts get the example service with `rolling`: the release is uploaded
and unpacked to `releases/<id>`, the appspec hooks run in order, `current` is switched and
the service restarted; a release whose ValidateService fails is rolled back (`current`
points at the old release again). An environment secret reaches the service, and nowhere
else: not the controller's state, the hosts' files other than `shared/secrets.env` (0600),
a log, a progress line or any process's command line.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import shutil
import socket
import stat
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from shipline.deploy.controller import RolloutController
from shipline.deploy.types import Outcome, Release
from shipline.spec.environment import load_environment
from shipline.spec.environment_models import EnvironmentSpec
from tests.integration.deploy.helpers import free_port, make_release

SSHD = Path("/usr/sbin/sshd")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not SSHD.exists() or os.geteuid() != 0,
        reason="needs Debian's openssh-server (scripts/test installs it) and root",
    ),
]

EVENTS = ("ApplicationStop", "BeforeInstall", "AfterInstall", "ApplicationStart", "ValidateService")

RECORD = """#!/bin/sh
echo "$LIFECYCLE_EVENT $SHIPLINE_RELEASE_VERSION $(id -un)" >> "$SHIPLINE_BASE/hooks.log"
"""
# The example service, plus an endpoint that shows it can read the canary (as a digest).
CANARY_APP = """import hashlib, os
import app

def do_get(self, original=app.Handler.do_GET):
    if self.path == "/canary":
        value = os.environ.get("CANARY", "").encode()
        self.reply(200, {"sha256": hashlib.sha256(value).hexdigest()})
    else:
        original(self)

app.Handler.do_GET = do_get
app.main()
"""


@dataclass(frozen=True)
class Host:
    port: int
    host_key: str  # the OpenSSH public key line
    fingerprint: str
    directory: Path


def keygen(path: Path) -> str:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)],
        check=True,
    )
    return path.with_suffix(".pub").read_text().strip()


def fingerprint(public: Path) -> str:
    out = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(public)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return out.split()[1]


@pytest.fixture
def client_key(tmp_path: Path) -> tuple[str, str]:
    """(private key text, public key line) of the deploying client."""
    path = tmp_path / "client" / "id_ed25519"
    path.parent.mkdir()
    public = keygen(path)
    return path.read_text(), public


@pytest.fixture
def sshd(tmp_path: Path, client_key: tuple[str, str]) -> Iterator[Callable[[str], Host]]:
    """Starts `sshd -D` instances on loopback ports; stops them afterwards."""
    processes: list[subprocess.Popen[bytes]] = []
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir

    def start(name: str) -> Host:
        directory = tmp_path / name / "sshd"
        directory.mkdir(parents=True)
        host_key = keygen(directory / "host_ed25519")
        (directory / "authorized_keys").write_text(client_key[1] + "\n")
        port = free_port()
        config = directory / "sshd_config"
        config.write_text(
            f"""ListenAddress 127.0.0.1
HostKey {directory}/host_ed25519
PidFile {directory}/sshd.pid
AuthorizedKeysFile {directory}/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
AllowTcpForwarding yes
"""
        )
        log = open(directory / "sshd.log", "wb")  # noqa: SIM115
        processes.append(
            subprocess.Popen(
                [str(SSHD), "-D", "-e", "-f", str(config), "-p", str(port)],
                stdout=log,
                stderr=log,
            )
        )
        log.close()
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise AssertionError((directory / "sshd.log").read_text())
            time.sleep(0.05)
        return Host(
            port, host_key, fingerprint(directory / "host_ed25519.pub"), tmp_path / name / "srv"
        )

    yield start
    for process in processes:
        process.terminate()
        process.wait(10)


def ssh_environment(
    hosts: list[tuple[Host, int]],
    strategy: str,
    extra: str = "",
    trust: str = "",
    check: str = "http: {path: /healthz, status: 200}",
) -> EnvironmentSpec:
    """Hosts by key and fingerprint in turn (or all by `trust`: host_key | fingerprint |
    known_hosts)."""
    lines = []
    known_hosts = []
    for i, (host, service_port) in enumerate(hosts):
        by_key = trust == "host_key" or (not trust and i % 2 == 0)
        trust_line = (
            f'host_key: "{host.host_key}", '
            if by_key
            else f'fingerprint: "{host.fingerprint}", '
            if trust != "known_hosts"
            else ""
        )
        known_hosts.append(f"[127.0.0.1]:{host.port} {host.host_key}")
        lines.append(
            f"      - {{host: 127.0.0.1, port: {host.port}, {trust_line}"
            f"service_port: {service_port}, path: {host.directory}}}"
        )
    if trust == "known_hosts":
        lines.append(f"    known_hosts: {json.dumps(chr(10).join(known_hosts))}")
    text = f"""
target:
  ssh:
    hosts:
{chr(10).join(lines)}
    user: root
    key_secret: DEPLOY_SSH_KEY
    path: /srv/unused
    service_port: 1
    restart: sh scripts/restart.sh
    env: {{APP_COMMAND: python3 canary_app.py}}
    restart_timeout: 30s
    keep_releases: 2
strategy: {strategy}
health:
  {check}
  interval: 100ms
  start_timeout: 15s
{extra}
"""
    spec, diagnostics = load_environment(text, ".shipline/environments/hosts.yml")
    assert spec is not None, [d.format() for d in diagnostics]
    return spec


HOOKS = "hooks:\n" + "".join(
    f"  {event}:\n    - {{location: scripts/record.sh, timeout: 30s}}\n"
    + (
        "    - {location: scripts/whoami.sh, timeout: 30s, runas: nobody}\n"
        if event == "ApplicationStart"
        else ""
    )
    + (
        "    - {location: scripts/validate.sh, timeout: 30s}\n"
        if event == "ValidateService"
        else ""
    )
    for event in EVENTS
)


def release(root: Path, version: str, *, failing_validate: bool = False) -> Release:
    made = make_release(root, version)
    scripts = made.directory / "scripts"
    (scripts / "record.sh").write_text(RECORD)
    (scripts / "whoami.sh").write_text('#!/bin/sh\necho "running as $(id -un)"\n')
    if failing_validate:
        (scripts / "validate.sh").write_text('#!/bin/sh\necho "validation says no"\nexit 1\n')
    for script in scripts.iterdir():
        script.chmod(0o755)
    (made.directory / "canary_app.py").write_text(CANARY_APP)
    return made


def get(port: int, path: str) -> dict[str, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        data: dict[str, str] = json.load(response)
    return data


def current(host: Host) -> str:
    return os.readlink(host.directory / "current")


def hooks_log(host: Host) -> list[str]:
    path = host.directory / "hooks.log"
    lines = path.read_text().splitlines() if path.exists() else []
    path.unlink(missing_ok=True)
    return lines


def files_containing(root: Path, needle: bytes, skip: set[Path]) -> list[Path]:
    found = []
    for path in root.rglob("*"):
        if path in skip or path.is_symlink() or not path.is_file():
            continue
        if needle in path.read_bytes():
            found.append(path)
    return found


def commands_containing(needle: bytes) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if needle in cmdline:
                found.append(entry.name)
    return found


def test_rolling_deploy_to_two_hosts_hooks_secrets_and_rollback(
    tmp_path: Path, sshd: Callable[[str], Host], client_key: tuple[str, str]
) -> None:
    hosts = [(sshd("web1"), free_port()), (sshd("web2"), free_port())]
    env = ssh_environment(hosts, "{rolling: {batch_size: 1, min_healthy: 1}}", HOOKS)
    token = secrets.token_hex(16)
    # Quotes, a command substitution and a second line: the secrets file must keep it literal.
    canary = f"canary-{token}'$(touch {tmp_path}/pwned)`id`\"\nsecond line"
    values = {"DEPLOY_SSH_KEY": client_key[0], "CANARY": canary}
    builds = tmp_path / "builds"
    builds.mkdir()
    v1, v2 = release(builds, "1.0.0"), release(builds, "2.0.0")
    v3 = release(builds, "3.0.0", failing_validate=True)
    state = tmp_path / "state"
    log: list[str] = []

    async def scenario() -> None:
        controller = RolloutController(state)
        first = await controller.rollout(env, v1, log.append, secrets=values)
        assert first.outcome == Outcome.SUCCEEDED, (first.reason, log)
        for host, port in hosts:
            assert get(port, "/version")["version"] == "1.0.0"
            assert current(host) == "releases/r-1.0.0"
            # A first deployment has no previous release: no ApplicationStop.
            assert hooks_log(host) == [f"{e} 1.0.0 root" for e in EVENTS[1:]]

        log.clear()
        second = await controller.rollout(env, v2, log.append, secrets=values)
        assert second.outcome == Outcome.SUCCEEDED, (second.reason, log)
        for host, port in hosts:
            assert get(port, "/version")["version"] == "2.0.0"
            assert current(host) == "releases/r-2.0.0"
            assert (host.directory / "releases" / "r-1.0.0").is_dir()  # kept for rollback
            assert hooks_log(host) == ["ApplicationStop 1.0.0 root"] + [
                f"{e} 2.0.0 root" for e in EVENTS[1:]
            ]
            # The service reads the environment's secret.
            assert get(port, "/canary")["sha256"] == hashlib.sha256(canary.encode()).hexdigest()
        # Rolling: the second host is only touched once the first one validated.
        web1, web2 = (f"127.0.0.1:{h.port}" for h, _ in hosts)
        validated = max(i for i, line in enumerate(log) if line.startswith(f"{web1} Validate"))
        switched = log.index(f"{web2}: current -> releases/r-2.0.0")
        assert log.index("batch 2: " + web2) < switched and validated < switched
        assert any(line == f"{web1} ApplicationStart: running as nobody" for line in log)

        log.clear()
        third = await controller.rollout(env, v3, log.append, secrets=values)
        assert third.outcome == Outcome.ROLLED_BACK, (third.reason, log)
        assert third.cause == "hooks" and "ValidateService" in (third.reason or "")
        assert third.rolled_back_to == "r-2.0.0"
        for host, port in hosts:
            assert current(host) == "releases/r-2.0.0"
            assert get(port, "/version")["version"] == "2.0.0"
        assert any("validation says no" in line for line in log)

        # On demand (the control plane rolls the older release out again, from its release
        # history): back to 1.0.0, which is still unpacked on the hosts.
        log.clear()
        back = await controller.rollout(env, v1, log.append, secrets=values)
        assert back.outcome == Outcome.SUCCEEDED, (back.reason, log)
        assert any("r-1.0.0 is unpacked already" in line for line in log)
        for host, port in hosts:
            assert current(host) == "releases/r-1.0.0"
            assert get(port, "/version")["version"] == "1.0.0"
            # keep_releases: 2, the current one and the last healthy one before it.
            assert sorted(p.name for p in (host.directory / "releases").iterdir()) == [
                "r-1.0.0",
                "r-2.0.0",
            ]
            assert get(port, "/canary")["sha256"] == hashlib.sha256(canary.encode()).hexdigest()
        await controller.close()

    try:
        asyncio.run(scenario())
        needle = token.encode()
        assert not (tmp_path / "pwned").exists()
        assert commands_containing(needle) == []
        assert files_containing(state, needle, set()) == []
        assert not any(token in line for line in log)
        key_line = client_key[0].splitlines()[1].encode()
        for host, _ in hosts:
            secrets_file = host.directory / "shared" / "secrets.env"
            assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
            assert needle in secrets_file.read_bytes()
            assert key_line not in secrets_file.read_bytes()  # the SSH key stays with us
            assert files_containing(host.directory, needle, {secrets_file}) == []
            assert files_containing(host.directory, key_line, set()) == []
        assert files_containing(state, key_line, set()) == []
    finally:
        for host, _ in hosts:
            pidfile = host.directory / "shared" / "app.pid"
            if pidfile.exists():
                subprocess.run(["kill", pidfile.read_text().strip()], check=False)


@pytest.mark.parametrize("how", ["host_key", "fingerprint", "known_hosts"])
def test_an_unknown_host_key_is_refused(
    tmp_path: Path, sshd: Callable[[str], Host], client_key: tuple[str, str], how: str
) -> None:
    host = sshd("web")
    other = keygen(tmp_path / "other")
    wrong = Host(
        host.port,
        other,
        fingerprint(tmp_path / "other.pub"),
        host.directory,
    )
    env = ssh_environment([(wrong, free_port())], "all-at-once", trust=how)
    builds = tmp_path / "builds"
    builds.mkdir()
    log: list[str] = []

    async def scenario() -> None:
        controller = RolloutController(tmp_path / "state")
        result = await controller.rollout(
            env, release(builds, "1.0.0"), log.append, secrets={"DEPLOY_SSH_KEY": client_key[0]}
        )
        assert result.outcome == Outcome.FAILED and result.cause == "target"
        assert "host key does not match" in (result.reason or ""), result.reason

    asyncio.run(scenario())
    assert not host.directory.exists()  # nothing was uploaded


def test_hook_timeout_missing_key_and_a_command_health_check_on_the_host(
    tmp_path: Path, sshd: Callable[[str], Host], client_key: tuple[str, str]
) -> None:
    host = sshd("web")
    service_port = free_port()
    extra = "hooks:\n  BeforeInstall:\n    - {location: scripts/slow.sh, timeout: 1s}\n"
    # The host's key from known_hosts lines (OpenSSH's "[host]:port" form).
    env = ssh_environment([(host, service_port)], "all-at-once", extra, trust="known_hosts")
    # Runs on the host, in `current`, with $PORT: it fails unless the service answers there.
    probe = (
        "python3 -c 'import os, urllib.request as u; "
        'u.urlopen("http://127.0.0.1:%s/healthz" % os.environ["PORT"])\''
    )
    by_command = ssh_environment(
        [(host, service_port)],
        "all-at-once",
        trust="known_hosts",
        check=f"command: {json.dumps(probe)}",
    )
    builds = tmp_path / "builds"
    builds.mkdir()
    made = release(builds, "1.0.0")
    slow = made.directory / "scripts" / "slow.sh"
    slow.write_text("#!/bin/sh\nsleep 60\n")
    slow.chmod(0o755)
    log: list[str] = []

    async def scenario() -> None:
        controller = RolloutController(tmp_path / "state")
        missing = await controller.rollout(env, made, log.append, secrets={})
        assert missing.outcome == Outcome.FAILED and missing.cause == "target"
        assert "DEPLOY_SSH_KEY (target.ssh.key_secret) is not set" in (missing.reason or "")
        result = await controller.rollout(
            env, made, log.append, secrets={"DEPLOY_SSH_KEY": client_key[0]}
        )
        assert result.outcome == Outcome.FAILED and result.cause == "hooks", result.reason
        assert "BeforeInstall: script scripts/slow.sh timed out after 1s" in (result.reason or "")
        assert not (host.directory / "current").exists()  # never switched

        log.clear()
        checked = await controller.rollout(
            by_command, made, log.append, secrets={"DEPLOY_SSH_KEY": client_key[0]}
        )
        assert checked.outcome == Outcome.SUCCEEDED, (checked.reason, log)
        assert f"127.0.0.1:{host.port} is healthy" in log
        assert get(service_port, "/version")["version"] == "1.0.0"

    try:
        asyncio.run(scenario())
    finally:
        pidfile = host.directory / "shared" / "app.pid"
        if pidfile.exists():
            subprocess.run(["kill", pidfile.read_text().strip()], check=False)
        shutil.rmtree(host.directory, ignore_errors=True)
