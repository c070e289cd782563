"""`shipline server` as a real process, driven with the real CLI client, as a user would."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shipline.domain.records import TokenKind
from shipline.security.tokens import new_token
from tests.e2e.conftest import Repo, shipline

WORKFLOW = """
    on: [push, workflow_dispatch]
    jobs:
      build:
        runs-on: ubuntu-latest
        steps:
          - uses: actions/checkout@v4
          - run: echo "hello from $(cat version.txt)"
"""

# A step that runs until the test releases it by listening on `port` (never, when the test
# never does). A port, not a file: the step runs in the sandbox, where the test's files are
# not visible, while a trusted run's network is on.
SLOW = """
    on: workflow_dispatch
    jobs:
      slow:
        runs-on: ubuntu-latest
        steps:
          - run: |
              echo started
              until (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null; do sleep 0.05; done
              echo finished
"""

Cli = Callable[..., subprocess.CompletedProcess[str]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A `shipline server` subprocess on a free port."""

    def __init__(self, state: Path, env: dict[str, str]) -> None:
        self.state = state
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPLINE_")}
        self.env.update(env)
        self.log = state.parent / f"server-{self.port}.log"
        self.out = state.parent / f"server-{self.port}.out"
        with open(self.out, "w") as out, open(self.log, "w") as err:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "shipline",
                    "server",
                    "--port",
                    str(self.port),
                    "--state-dir",
                    str(state),
                    "--runner-slots",
                    "2",
                ],
                env=self.env,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
            )
        self.wait_healthy()

    def wait_healthy(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}:\n{self.stderr}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server not healthy within {timeout}s:\n{self.stderr}")

    @property
    def stdout(self) -> str:
        return self.out.read_text()

    @property
    def stderr(self) -> str:
        return self.log.read_text()

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM, then the exit status (the test fails if it takes longer)."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


Start = Callable[..., "Server"]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    servers: list[Server] = []

    def _start(env: dict[str, str] | None = None, state: Path | None = None) -> Server:
        server = Server(state or tmp_path / "state", env or {})
        servers.append(server)
        return server

    yield _start
    for server in servers:
        server.kill()


def admin_token() -> str:
    return new_token(TokenKind.USER)[0]


class Release:
    """What a slow step waits for: someone listening on `port`."""

    def __init__(self) -> None:
        self.port = free_port()
        self.sockets: list[socket.socket] = []

    def touch(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.sockets.append(listener)

    def close(self) -> None:
        for listener in self.sockets:
            listener.close()


@pytest.fixture
def release() -> Iterator[Release]:
    waiting = Release()
    yield waiting
    waiting.close()


def project_repo(tmp_path: Path, release: Release | None = None) -> Repo:
    repo = Repo(tmp_path / "repo")
    repo.workflow(WORKFLOW)
    if release is not None:
        repo.workflow(SLOW.format(port=release.port), name="slow.yml")
    repo.write("version.txt", "1.2.3\n")
    repo.commit("pipeline")
    return repo


def client(server: Server, token: str, tmp_path: Path) -> Cli:
    env = {"SHIPLINE_URL": server.url, "SHIPLINE_TOKEN": token}

    def _cli(*args: str, token_env: str | None = None) -> subprocess.CompletedProcess[str]:
        run_env = dict(env)
        if token_env is not None:
            run_env["SHIPLINE_TOKEN"] = token_env
        return shipline(*args, cwd=tmp_path, env=run_env)

    return _cli


def wait_completed(cli: Cli, run_id: int, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = cli("runs", "show", str(run_id), "--json")
        assert result.returncode == 0, result.stderr
        run: dict[str, Any] = json.loads(result.stdout)
        if run["status"] == "completed":
            return run
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not complete")


def wait_started(cli: Cli, run_id: int, timeout: float = 60) -> None:
    """Until the run's step has printed `started` (its job is in progress)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "started" in cli("runs", "logs", str(run_id)).stdout:
            return
        time.sleep(0.1)
    raise AssertionError(f"the step of run {run_id} never started")


def test_a_run_from_trigger_to_logs_through_the_cli(start: Start, tmp_path: Path) -> None:
    token = admin_token()
    server = start({"SHIPLINE_ADMIN_TOKEN": token})
    assert "SHIPLINE_ADMIN_TOKEN" in server.stdout
    assert token not in server.stdout  # the user knows it; never echoed
    cli = client(server, token, tmp_path)
    project_repo(tmp_path)

    created = cli("projects", "create", "app", "--repo", "repo")
    assert created.returncode == 0, created.stderr
    assert f"created project app ({tmp_path / 'repo'})" in created.stdout
    listed = cli("projects", "list")
    assert listed.stdout.splitlines()[1].split()[:3] == ["app", str(tmp_path / "repo"), "main"]

    triggered = cli("projects", "trigger", "app", "--json")
    assert triggered.returncode == 0, triggered.stderr
    (run,) = json.loads(triggered.stdout)["items"]
    assert run["project"] == "app"
    assert run["event"] == "workflow_dispatch"

    done = wait_completed(cli, run["id"])
    assert (done["status"], done["conclusion"]) == ("completed", "success")

    runs = json.loads(cli("runs", "list", "--json").stdout)["items"]
    assert [r["id"] for r in runs] == [run["id"]]
    assert json.loads(cli("runs", "list", "--project", "app", "--json").stdout)["items"] == runs
    table = cli("runs", "list", "--status", "completed").stdout
    assert "completed/success" in table

    shown = cli("runs", "show", str(run["id"]))
    assert shown.returncode == 0
    assert "status:   completed/success" in shown.stdout
    assert "build: completed/success" in shown.stdout

    logs = cli("runs", "logs", str(run["id"]))
    assert logs.returncode == 0, logs.stderr
    assert "hello from 1.2.3" in logs.stdout
    followed = cli("runs", "logs", str(run["id"]), "--job", "build", "--follow")
    assert "hello from 1.2.3" in followed.stdout
    assert "completed/success" in followed.stderr

    # Cancelling a completed run changes nothing; a re-run is a new attempt of the same run.
    cancelled = cli("runs", "cancel", str(run["id"]))
    assert cancelled.stdout == f"run {run['id']}: completed/success\n"
    rerun = cli("runs", "rerun", str(run["id"]))
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout.startswith(f"run {run['id']}: attempt 2 ")
    again = wait_completed(cli, run["id"])
    assert (again["attempt"], again["conclusion"]) == (2, "success")
    assert "hello from 1.2.3" in cli("runs", "logs", str(run["id"])).stdout

    # Tokens: create one, use it, revoke it, and it stops working.
    made = cli("tokens", "create", "ci", "--expires-days", "7")
    assert made.returncode == 0, made.stderr
    second = made.stdout.strip()
    assert second.startswith("shp_u_")
    assert cli("projects", "show", "app", token_env=second).returncode == 0
    tokens = json.loads(cli("tokens", "list", "--json").stdout)["items"]
    ci = next(t for t in tokens if t["name"] == "ci")
    assert cli("tokens", "revoke", str(ci["id"])).returncode == 0
    refused = cli("projects", "show", "app", token_env=second)
    assert refused.returncode == 1

    # A wrong token: one line naming 401, no traceback.
    wrong = cli("runs", "list", token_env=admin_token())
    assert wrong.returncode == 1
    assert wrong.stderr.count("\n") == 1
    assert "401" in wrong.stderr
    assert "Traceback" not in wrong.stderr

    # An unknown run: the server's 404 as one line.
    missing = cli("runs", "show", "999")
    assert missing.returncode == 1
    assert "404" in missing.stderr

    assert server.terminate() == 0


def test_unreachable_server_is_a_clear_message(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = shipline("runs", "list", "--server", url, cwd=tmp_path, env={"SHIPLINE_TOKEN": "x"})
    assert result.returncode == 1
    assert result.stderr == f"shipline: error: cannot reach the server at {url}\n"


def test_first_start_prints_a_token_once_and_keeps_the_state_dir_private(
    start: Start, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    first = start()
    printed = [w for w in first.stdout.split() if w.startswith("shp_u_")]
    assert len(printed) == 1
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    cli = client(first, printed[0], tmp_path)
    assert cli("projects", "list").returncode == 0
    assert first.terminate() == 0

    second = start()
    assert "shp_u_" not in second.stdout
    assert "admin" not in second.stdout
    assert client(second, printed[0], tmp_path)("projects", "list").returncode == 0
    assert second.terminate() == 0


def test_a_malformed_admin_token_is_refused_with_a_message(tmp_path: Path) -> None:
    result = shipline(
        "server",
        "--state-dir",
        str(tmp_path / "state"),
        "--port",
        str(free_port()),
        cwd=tmp_path,
        env={"SHIPLINE_ADMIN_TOKEN": "hunter2"},
        timeout=120,
    )
    assert result.returncode == 2
    assert "SHIPLINE_ADMIN_TOKEN" in result.stderr
    assert "hunter2" not in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_sigterm_lets_a_running_step_finish_within_the_grace(
    start: Start, tmp_path: Path, release: Release
) -> None:
    token = admin_token()
    env = {"SHIPLINE_ADMIN_TOKEN": token, "SHIPLINE_SHUTDOWN_GRACE": "60"}
    server = start(env)
    cli = client(server, token, tmp_path)
    project_repo(tmp_path, release)
    assert cli("projects", "create", "app", "--repo", "repo").returncode == 0
    triggered = cli("projects", "trigger", "app", "--workflow", "slow.yml", "--json")
    (run,) = json.loads(triggered.stdout)["items"]
    wait_started(cli, run["id"])

    server.proc.send_signal(signal.SIGTERM)
    time.sleep(1)
    assert server.proc.poll() is None  # waiting for the step
    release.touch()
    assert server.proc.wait(timeout=60) == 0

    again = start(env)
    cli = client(again, token, tmp_path)
    done = wait_completed(cli, run["id"], timeout=10)
    assert done["conclusion"] == "success"
    assert "finished" in cli("runs", "logs", str(run["id"])).stdout
    assert again.terminate() == 0


@pytest.mark.slow
def test_sigterm_cancels_steps_that_outlive_the_grace_and_says_why(
    start: Start, tmp_path: Path
) -> None:
    token = admin_token()
    env = {"SHIPLINE_ADMIN_TOKEN": token, "SHIPLINE_SHUTDOWN_GRACE": "1"}
    server = start(env)
    cli = client(server, token, tmp_path)
    project_repo(tmp_path, Release())
    assert cli("projects", "create", "app", "--repo", "repo").returncode == 0
    (run,) = json.loads(
        cli("projects", "trigger", "app", "--workflow", "slow.yml", "--json").stdout
    )["items"]
    wait_started(cli, run["id"])

    began = time.monotonic()
    assert server.terminate(timeout=60) == 0
    assert time.monotonic() - began < 30

    again = start(env)
    cli = client(again, token, tmp_path)
    done = wait_completed(cli, run["id"], timeout=10)
    job = done["jobs"][0]
    assert job["conclusion"] == "cancelled"
    assert "shutting down" in (job["error"] or "")
    assert "finished" not in cli("runs", "logs", str(run["id"])).stdout
    assert again.terminate() == 0


def test_db_upgrade_is_idempotent(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = shipline("db", "upgrade", "--state-dir", str(state), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "upgraded from an empty database to " in first.stdout
    revision = first.stdout.split()[-1]
    second = shipline("db", "upgrade", "--state-dir", str(state), cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip().endswith(f"already at revision {revision}")
    assert stat.S_IMODE(state.stat().st_mode) == 0o700


def test_invalid_settings_are_usage_errors(tmp_path: Path) -> None:
    result = shipline(
        "server", "--state-dir", str(tmp_path), cwd=tmp_path, env={"SHIPLINE_PORT": "http"}
    )
    assert result.returncode == 2
    assert "SHIPLINE_PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_port_in_use_is_exit_1_with_the_reason(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = shipline(
            "server", "--state-dir", str(tmp_path / "state"), "--port", str(port), cwd=tmp_path
        )
    assert result.returncode == 1
    assert "address already in use" in result.stderr.lower()
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_after_kill_9_a_restarted_server_retries_the_job_it_left_running(
    start: Start, tmp_path: Path, release: Release
) -> None:
    token = admin_token()
    env = {"SHIPLINE_ADMIN_TOKEN": token}
    server = start(env)
    cli = client(server, token, tmp_path)
    project_repo(tmp_path, release)
    assert cli("projects", "create", "app", "--repo", "repo").returncode == 0
    (run,) = json.loads(
        cli("projects", "trigger", "app", "--workflow", "slow.yml", "--json").stdout
    )["items"]
    wait_started(cli, run["id"])
    server.kill()

    again = start(env)
    cli = client(again, token, tmp_path)
    release.touch()
    done = wait_completed(cli, run["id"])
    assert (done["status"], done["conclusion"]) == ("completed", "success")
    assert "finished" in cli("runs", "logs", str(run["id"])).stdout
    assert again.terminate() == 0
