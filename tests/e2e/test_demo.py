"""`shipline demo` end to end, as a newcomer (or CI) runs it: one command starts a server,
pushes the demo service with git, runs its pipeline through staging and an approved
production canary, and stops everything it started.

While the demo runs, this test asks the staging and production routers for the version
itself (their URLs are printed right after the push), so "the services served the new
version" is observed here, not taken from the demo's word."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

URL_LINE = re.compile(r"^\s+(staging|production)\s+will answer at (http://\S+/)")


class Watcher:
    """Polls each announced service's `/version` until the demo exits; what it saw."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.stderr: list[str] = []
        self.seen: dict[str, set[str]] = {"staging": set(), "production": set()}
        self._threads = [threading.Thread(target=self._read, daemon=True)]
        self._threads[0].start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line)
            found = URL_LINE.match(line)
            if found:
                poller = threading.Thread(target=self._poll, args=found.groups(), daemon=True)
                self._threads.append(poller)
                poller.start()

    def _poll(self, environment: str, url: str) -> None:
        with httpx.Client(timeout=2) as client:
            while self.process.poll() is None:
                try:
                    answer = client.get(f"{url}version")
                    if answer.status_code == 200:
                        self.seen[environment].add(answer.json()["version"])
                except (httpx.HTTPError, ValueError, KeyError):
                    pass
                time.sleep(0.05)

    def join(self) -> None:
        for thread in self._threads:
            thread.join(timeout=10)


def processes_using(path: Path) -> list[str]:
    """Processes whose command line or working directory mentions `path`."""
    found = []
    needle = str(path)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if needle in cmdline or cwd.startswith(needle):
            found.append(f"{entry.name}: {cmdline.strip()} (in {cwd})")
    return found


def test_demo_runs_to_production_and_cleans_up(tmp_path: Path) -> None:
    state = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPLINE_")}
    env.pop("FORCE_COLOR", None)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shipline",
            "demo",
            "--headless",
            "--exit-when-done",
            "--auto-approve",
            "--state-dir",
            str(state),
            "--json",
        ],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watcher = Watcher(process)
    try:
        assert process.stdout is not None
        stdout = process.stdout.read()
        code = process.wait(timeout=600)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    watcher.join()
    log = "".join(watcher.stderr)
    assert code == 0, f"exit {code}\n{log}\n{stdout}"

    result = json.loads(stdout)
    assert result["status"] == "success" and result["error"] is None
    server = result["server_url"]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", server)
    assert result["dashboard"]["url"] == f"{server}/ui/"
    assert result["dashboard"]["user"] == "demo"
    assert len(result["dashboard"]["password"]) >= 12
    assert result["dashboard"]["token"].startswith("shp_u_")
    assert result["project"] == "webapp"
    assert result["repository"] == f"{server}/git/webapp.git"
    assert result["state_dir"] == str(state)
    run = result["run"]
    assert run["conclusion"] == "success"
    assert run["url"] == f"{server}/ui/runs/{run['id']}"
    assert result["approval"] == {
        "environment": "production",
        "approved_by": "reviewer",
        "url": f"{server}/ui/approvals",
        "command": f"shipline approve {run['id']} --env production",
    }

    # the commit the server hosts is the one whose version was deployed
    hosted = subprocess.run(
        [
            "git",
            "--git-dir",
            str(state / "server" / "git" / "repos" / "1.git"),
            "rev-parse",
            "main",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert result["commit"] == hosted
    version = result["version"]
    assert version == hosted[:12]

    services = result["services"]
    assert set(services) == {"staging", "production"}
    assert services["staging"]["strategy"] == "rolling"
    assert services["production"]["strategy"] == "canary"
    for name, service in services.items():
        assert service["version"] == version
        # seen by this test while the demo ran
        assert version in watcher.seen[name], (name, watcher.seen, log)
        # and stopped since
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{service['url']}version", timeout=2)

    for line in ("lint", "test (unit)", "test (process)", "build", "staging", "production"):
        assert re.search(rf"^\s+{re.escape(line)}\s+success$", log, re.MULTILINE), line
    assert "production approved by reviewer" in log
    assert "Stopped the services of production, staging" in log
    assert processes_using(state) == []


def test_a_person_approves_with_the_printed_command_and_sigterm_stops_it_all(
    tmp_path: Path,
) -> None:
    """Without --auto-approve production waits for the user; the printed `shipline approve`
    command (as the `demo` user) releases it; the demo keeps serving until SIGTERM, then
    stops the server and the services."""
    state = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPLINE_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "shipline", "demo", "--headless", "--state-dir", str(state)],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        approved = False
        for line in process.stdout:
            lines.append(line)
            command = re.match(r"^\s+SHIPLINE_URL=(\S+) SHIPLINE_TOKEN=(\S+) (shipline .*)$", line)
            if command and not approved:
                url, token, words = command.groups()
                approve = subprocess.run(
                    [sys.executable, "-m", *words.split()],
                    env={**env, "SHIPLINE_URL": url, "SHIPLINE_TOKEN": token},
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                assert approve.returncode == 0, approve.stderr
                assert "for production: released" in approve.stdout
                approved = True
            if line.startswith("Serving until Ctrl-C."):
                break
        log = "".join(lines)
        assert approved, log
        production = re.search(
            r"^production\s+(http://\S+/)\s+\(canary, version (\w+)\)$", log, re.M
        )
        assert production, log
        answer = httpx.get(f"{production.group(1)}version", timeout=5).json()
        assert answer["version"] == production.group(2)
        process.send_signal(signal.SIGTERM)
        rest = process.stdout.read()
        assert process.wait(timeout=120) == 0, log + rest
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "Stopped the services of production, staging" in rest
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{production.group(1)}version", timeout=2)
    assert processes_using(state) == []
