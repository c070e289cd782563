"""Deployment duration on the ssh target (issue 8), against a bare SSH baseline.

Two "hosts", each an `sshd -D` of Debian's openssh-server on a loopback port (keys made by
ssh-keygen in a temporary directory; run as root). The example service (examples/webapp,
its appspec removed so that the target is measured, not the example's hooks) goes from
version 1 to version 2 with `all-at-once` and with `rolling` (one host per batch); each
rollout is timed from the controller's call to its result. The baseline, in the same run:
an SSH connection's set-up (key exchange, host key check, public key login) and one
command's round trip (`true`) on an open connection, both with asyncssh, the client the
target uses.

    .venv/bin/python benchmarks/ssh_deploy.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncssh

from shipline.deploy.controller import RolloutController
from shipline.deploy.ssh_host import HostSession
from shipline.deploy.types import Outcome, Release
from shipline.spec.environment import load_environment

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "webapp"
SSHD = Path("/usr/sbin/sshd")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().strip()


def start_sshd(root: Path, client_public: str) -> tuple[subprocess.Popen[bytes], int, str]:
    root.mkdir(parents=True)
    host_key = keygen(root / "host")
    (root / "authorized_keys").write_text(client_public + "\n")
    port = free_port()
    (root / "config").write_text(
        f"ListenAddress 127.0.0.1\nHostKey {root}/host\nPidFile {root}/pid\n"
        f"AuthorizedKeysFile {root}/authorized_keys\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nUsePAM no\n"
        "StrictModes no\nAllowTcpForwarding yes\n"
    )
    process = subprocess.Popen(
        [str(SSHD), "-D", "-e", "-f", str(root / "config"), "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return process, port, host_key
        if time.monotonic() > deadline:
            raise SystemExit("sshd did not start")
        time.sleep(0.05)


COMMANDS = [0]  # SSH commands the target ran (all hosts), counted around HostSession.run
_run = HostSession.run


async def _counted(self: HostSession, command: str, **kw: object) -> tuple[int, str]:
    COMMANDS[0] += 1
    return await _run(self, command, **kw)  # type: ignore[arg-type]


HostSession.run = _counted  # type: ignore[method-assign]


def release(root: Path, version: str) -> Release:
    directory = root / f"release-{version}"
    shutil.copytree(EXAMPLE, directory, ignore=shutil.ignore_patterns(".shipline", "__pycache__"))
    (directory / "VERSION").write_text(version + "\n")
    (directory / "appspec.yml").unlink()
    return Release(f"r-{version.replace('.', '-')}", version, directory)


async def baseline(port: int, host_key: str, key: str, rounds: int) -> tuple[float, float]:
    """Median connection set-up and command round trip, in ms."""
    trusted = ([asyncssh.import_public_key(host_key)], [], [])
    client = asyncssh.import_private_key(key)
    connects, commands = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        conn = await asyncssh.connect(
            "127.0.0.1",
            port,
            username="root",
            client_keys=[client],
            known_hosts=trusted,
            config=[],
            agent_path=None,
        )
        connects.append(time.perf_counter() - started)
        for _ in range(5):
            started = time.perf_counter()
            await conn.run("true", check=True)
            commands.append(time.perf_counter() - started)
        conn.close()
        await conn.wait_closed()
    return statistics.median(connects) * 1000, statistics.median(commands) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not SSHD.exists() or os.geteuid() != 0:
        print("needs /usr/sbin/sshd (apt-get install openssh-server) and root", file=sys.stderr)
        return 2
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="shipline-ssh-bench-"))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        public = keygen(work / "client")
        key = (work / "client").read_text()
        hosts = []
        for name in ("web1", "web2"):
            process, port, host_key = start_sshd(work / name / "sshd", public)
            processes.append(process)
            hosts.append((port, host_key, work / name / "srv", free_port()))
        connect_ms, command_ms = asyncio.run(baseline(hosts[0][0], hosts[0][1], key, args.rounds))
        print(f"load average: {os.getloadavg()[0]:.1f}")
        print("| baseline (asyncssh, loopback) | median |\n|---|---|")
        print(f"| connection set-up (kex, host key, key login) | {connect_ms:.1f} ms |")
        print(f"| one command round trip (`true`) | {command_ms:.1f} ms |\n")
        rows = []
        for strategy, text in (
            ("all-at-once", "all-at-once"),
            ("rolling (1 host/batch)", "{rolling: {batch_size: 1}}"),
        ):
            durations = []
            for number in range(args.rounds):
                lines = "\n".join(
                    f'      - {{host: 127.0.0.1, port: {p}, host_key: "{k}", service_port: {s}, '
                    f"path: {d}-{strategy[:3]}-{number}}}"
                    for p, k, d, s in hosts
                )
                spec, diagnostics = load_environment(
                    f"target:\n  ssh:\n    hosts:\n{lines}\n    user: root\n"
                    "    key_secret: KEY\n    path: /unused\n    service_port: 1\n"
                    "    restart: sh scripts/restart.sh\n"
                    f"strategy: {text}\nhealth: {{http: {{path: /healthz}}, interval: 50ms}}\n",
                    "bench.yml",
                )
                assert spec is not None, [d.format() for d in diagnostics]
                builds = work / f"builds-{strategy[:3]}-{number}"
                builds.mkdir()
                v1, v2 = release(builds, "1.0.0"), release(builds, "2.0.0")

                state = work / f"state-{strategy[:3]}-{number}"

                async def rollout(s=spec, a=v1, b=v2, state=state) -> float:
                    controller = RolloutController(state)
                    first = await controller.rollout(s, a, lambda _: None, secrets={"KEY": key})
                    assert first.outcome == Outcome.SUCCEEDED, first.reason
                    COMMANDS[0] = 0
                    started = time.perf_counter()
                    second = await controller.rollout(s, b, lambda _: None, secrets={"KEY": key})
                    assert second.outcome == Outcome.SUCCEEDED, second.reason
                    return time.perf_counter() - started

                durations.append(asyncio.run(rollout()))
                commands = COMMANDS[0]
                for _, _, d, _ in hosts:
                    pid = Path(f"{d}-{strategy[:3]}-{number}/shared/app.pid")
                    if pid.exists():
                        subprocess.run(["kill", pid.read_text().strip()], check=False)
            rows.append((strategy, statistics.median(durations), min(durations), commands))
        print(
            "| strategy (2 hosts, 1.0.0 -> 2.0.0) | median rollout | fastest | SSH commands |\n"
            "|---|---|---|---|"
        )
        for strategy, median, fastest, count in rows:
            print(f"| {strategy} | {median:.2f} s | {fastest:.2f} s | {count} |")
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
