"""Remote runners end to end: a real server (SQLite or PostgreSQL), real `shipline runner`
processes, a real git repository; registration, jobs with logs and checkout, cancellation,
a killed runner's job retried elsewhere, removal."""

from __future__ import annotations

import json
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.contract.store_backends import (
    PG_URL,
    create_pg_database,
    drop_pg_database,
    pg_unavailable,
    unavailable,
)
from tests.e2e.conftest import Repo, shipline
from tests.e2e.remote import Proc, RemoteServer, base_env, terminate
from tests.e2e.test_server import admin_token, wait_completed

WORKFLOW = """
    on: [push, workflow_dispatch]
    jobs:
      build:
        runs-on: [self-hosted, linux]
        steps:
          - uses: actions/checkout@v4
          - run: echo "hello from $(cat version.txt)"
          - id: v
            run: echo "version=$(cat version.txt)" >> "$GITHUB_OUTPUT"
          - uses: actions/upload-artifact@v4
            with: {name: dist, path: version.txt}
        outputs:
          version: ${{ steps.v.outputs.version }}
      test:
        needs: build
        runs-on: [self-hosted]
        steps:
          - run: echo "testing ${{ needs.build.outputs.version }}"
          - uses: actions/download-artifact@v4
            with: {name: dist, path: got}
          - run: cat got/version.txt
"""

# Runs until the file `release` exists (never, when the test does not create it).
SLOW = """
    on: workflow_dispatch
    jobs:
      slow:
        runs-on: [self-hosted]
        steps:
          - run: |
              echo "started try"
              while [ ! -e "{release}" ]; do sleep 0.05; done
              echo finished
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield ""
        return
    reason = pg_unavailable()
    if reason is not None:
        unavailable(reason)
    name = create_pg_database()
    try:
        yield PG_URL.format(name=name)
    finally:
        drop_pg_database(name)


class Cluster:
    """Servers and runners of one test, killed at its end."""

    def __init__(self, tmp_path: Path, database: str) -> None:
        self.tmp = tmp_path
        self.token = admin_token()
        self.env = {
            "SHIPLINE_ADMIN_TOKEN": self.token,
            "SHIPLINE_HEARTBEAT_SECONDS": "1",
            "SHIPLINE_LEASE_SECONDS": "10",
        }
        if database:
            self.env["SHIPLINE_DATABASE_URL"] = database
        self.procs: list[Proc] = []
        self.servers: list[RemoteServer] = []

    def server(self) -> RemoteServer:
        state = self.tmp / f"state-{len(self.servers)}"
        server = RemoteServer(state, self.env, self.tmp)
        self.procs.append(server)
        self.servers.append(server)
        return server

    def cli(
        self, *args: str, token: str | None = None, url: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`shipline ARGS` against `url` (default: the first server)."""
        env = {"SHIPLINE_URL": url or self.servers[0].url, "SHIPLINE_TOKEN": token or self.token}
        return shipline(*args, cwd=self.tmp, env=env)

    def register(
        self, name: str, labels: str = "self-hosted,linux", servers: list[str] | None = None
    ) -> Path:
        """A runner config for the servers at `servers` (default: every server's URL)."""
        reg = self.cli("runners", "token", "create")
        assert reg.returncode == 0, reg.stderr
        config = self.tmp / f"{name}.json"
        given = servers if servers is not None else [s.url for s in self.servers]
        urls = [a for url in given for a in ("--url", url)]
        done = shipline(
            "runner", "register", *urls, "--name", name, "--labels", labels,
            "--config", str(config),
            cwd=self.tmp,
            env={**base_env(), "SHIPLINE_REGISTRATION_TOKEN": reg.stdout.strip()},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return config

    def runner(self, config: Path, *args: str, executor: str = "shell") -> Proc:
        """A runner process. The lifecycle tests coordinate with their steps through files
        of the test (a `release` file, a ledger), which a sandboxed step cannot see: they
        run the shell executor; the sandbox, the default, has a test of its own."""
        env = base_env()
        proc = Proc(
            ["runner", "--config", str(config), "--work-dir", str(self.tmp / f"w-{config.stem}"),
             "--executor", executor, *args],
            env, self.tmp, f"runner-{config.stem}-{len(self.procs)}",
        )  # fmt: skip
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.procs:
            proc.kill()


@pytest.fixture
def cluster(tmp_path: Path, database: str) -> Iterator[Cluster]:
    made = Cluster(tmp_path, database)
    yield made
    made.close()


def project(cluster: Cluster, release: Path | None = None) -> Repo:
    repo = Repo(cluster.tmp / "repo")
    repo.workflow(WORKFLOW)
    if release is not None:
        repo.workflow(SLOW.replace("{release}", str(release)), name="slow.yml")
    repo.write("version.txt", "1.2.3\n")
    repo.commit("pipeline")
    created = cluster.cli("projects", "create", "app", "--repo", "repo")
    assert created.returncode == 0, created.stderr
    return repo


def trigger(cluster: Cluster, workflow: str = "ci.yml", url: str | None = None) -> int:
    done = cluster.cli("projects", "trigger", "app", "--workflow", workflow, "--json", url=url)
    assert done.returncode == 0, done.stderr
    (run,) = json.loads(done.stdout)["items"]
    return int(run["id"])


def logs(cluster: Cluster, run_id: int) -> str:
    return cluster.cli("runs", "logs", str(run_id)).stdout


def wait_for(check: Any, what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def test_a_registered_runner_runs_a_workflow_through_the_server(cluster: Cluster) -> None:
    server = cluster.server()
    project(cluster)
    config = cluster.register("r1")
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    runner = cluster.runner(config, executor="auto")  # the default: the sandbox when it works
    run_id = trigger(cluster)

    run = wait_completed(cluster.cli, run_id)
    text = logs(cluster, run_id)
    assert run["conclusion"] == "success", text + runner.stderr
    assert "hello from 1.2.3" in text
    assert "testing 1.2.3" in text  # outputs crossed jobs through the server
    listed = httpx.get(
        f"{server.url}/api/v1/runs/{run_id}/artifacts",
        headers={"Authorization": f"Bearer {cluster.token}"},
    ).json()["items"]
    assert [a["name"] for a in listed] == ["dist"]

    table = cluster.cli("runners", "list")
    assert "r1" in table.stdout and "online" in table.stdout, table.stderr
    assert terminate(runner) == 0  # SIGTERM with no job: drains and exits at once
    # each job's directory (its workspace, the repository's bundle) went with the job
    assert list((cluster.tmp / f"w-{config.stem}").glob("job-*")) == []


def test_once_runs_one_job_and_exits(cluster: Cluster) -> None:
    cluster.server()
    project(cluster)
    config = cluster.register("eph")
    run_id = trigger(cluster)
    runner = cluster.runner(config, "--once")
    assert runner.proc.wait(timeout=90) == 0, runner.stderr
    assert list((cluster.tmp / f"w-{config.stem}").glob("job-*")) == []
    # build ran; test (needing build) is queued for the next runner
    shown = json.loads(cluster.cli("runs", "show", str(run_id), "--json").stdout)
    by_name = {j["name"]: j for j in shown["jobs"]}
    assert by_name["build"]["conclusion"] == "success"
    assert by_name["test"]["status"] == "queued"


def test_cancel_reaches_the_step_and_a_job_token_is_for_its_job_only(
    cluster: Cluster, tmp_path: Path
) -> None:
    server = cluster.server()
    project(cluster, release=tmp_path / "never")
    runner = cluster.runner(cluster.register("r1"))
    run_id = trigger(cluster, "slow.yml")
    wait_for(lambda: "started try" in logs(cluster, run_id), "the step's start")

    cancelled = cluster.cli("runs", "cancel", str(run_id))
    assert cancelled.returncode == 0, cancelled.stderr
    shown = wait_for(
        lambda: [
            j
            for j in json.loads(cluster.cli("runs", "show", str(run_id), "--json").stdout)["jobs"]
            if j["status"] == "completed"
        ],
        "the job's end",
    )
    assert shown[0]["conclusion"] == "cancelled"
    assert "finished" not in logs(cluster, run_id)
    assert runner.proc.poll() is None  # the runner goes on

    # SECURITY-CASES 20/21/23: a user token is not a job token; a job token after its job
    # ended is refused.
    url = f"{server.url}/api/v1/runner/jobs/{shown[0]['id']}/logs"
    body = {"chunks": [{"seq": 99, "text": "forged"}]}
    user = httpx.post(url, json=body, headers={"Authorization": f"Bearer {cluster.token}"})
    assert user.status_code == 401


def test_a_killed_runner_loses_its_job_to_another(cluster: Cluster, tmp_path: Path) -> None:
    release = tmp_path / "release"
    cluster.server()
    project(cluster, release=release)
    first = cluster.runner(cluster.register("first"))
    run_id = trigger(cluster, "slow.yml")
    wait_for(lambda: "started try" in logs(cluster, run_id), "the first try's start")
    first.kill()  # kill -9 in the middle of the step
    release.touch()
    second = cluster.runner(cluster.register("second"))

    run = wait_completed(cluster.cli, run_id, timeout=120)
    text = logs(cluster, run_id)
    assert run["conclusion"] == "success", text + second.stderr
    # the first try's log is kept and marked, then the second try's follows
    assert text.count("started try") == 2
    assert text.index("runner_lost") > text.index("started try")
    assert text.count("finished") == 1


def test_a_removed_runner_is_refused_at_once(cluster: Cluster) -> None:
    server = cluster.server()
    config = cluster.register("gone")
    credential = json.loads(config.read_text())["token"]
    url = f"{server.url}/api/v1/runner/jobs/request"
    auth = {"Authorization": f"Bearer {credential}"}
    assert httpx.post(url, json={"wait": 0}, headers=auth).status_code == 204
    runner_id = json.loads(config.read_text())["runner_id"]
    assert cluster.cli("runners", "remove", str(runner_id)).returncode == 0
    assert httpx.post(url, json={"wait": 0}, headers=auth).status_code == 401
    # a registration token is not a runner credential, nor a user's token
    reg = cluster.cli("runners", "token", "create").stdout.strip()
    other = {"Authorization": f"Bearer {reg}"}
    assert httpx.post(url, json={"wait": 0}, headers=other).status_code == 401
    assert cluster.cli("runners", "list", token=reg).returncode != 0


def test_sigterm_drains_and_a_second_sigterm_cancels(cluster: Cluster, tmp_path: Path) -> None:
    import signal

    release = tmp_path / "release"
    cluster.server()
    project(cluster, release=release)
    config = cluster.register("r1")
    runner = cluster.runner(config)
    first = trigger(cluster, "slow.yml")
    wait_for(lambda: "started try" in logs(cluster, first), "the step's start")
    runner.signal(signal.SIGTERM)  # drain: the job goes on, no new one is taken
    second = trigger(cluster, "slow.yml")
    time.sleep(1)
    assert runner.proc.poll() is None
    release.touch()
    assert runner.proc.wait(timeout=120) == 0, runner.stderr
    assert wait_completed(cluster.cli, first)["conclusion"] == "success"
    shown = json.loads(cluster.cli("runs", "show", str(second), "--json").stdout)
    assert shown["jobs"][0]["status"] == "queued"

    release.unlink()
    again = cluster.runner(config)
    wait_for(lambda: "started try" in logs(cluster, second), "the second run's start")
    again.signal(signal.SIGTERM)
    wait_for(lambda: "draining" in again.stderr, "the drain")  # signals do not queue
    again.signal(signal.SIGTERM)  # the second: cancel now
    assert again.proc.wait(timeout=60) == 0, again.stderr
    assert wait_completed(cluster.cli, second)["conclusion"] == "cancelled"


CHATTY = """
    on: workflow_dispatch
    jobs:
      chatty:
        runs-on: [self-hosted]
        steps:
          - run: |
              for i in $(seq 1 40); do echo "line $i"; sleep 0.1; done
              while [ ! -e "{release}" ]; do sleep 0.05; done
              for i in $(seq 41 60); do echo "line $i"; done
"""


def test_the_server_away_for_a_while_loses_no_log_line(cluster: Cluster, tmp_path: Path) -> None:
    release = tmp_path / "release"
    cluster.env["SHIPLINE_LEASE_SECONDS"] = "120"  # the outage must not outlast the lease
    server = cluster.server()
    repo = project(cluster)
    repo.workflow(CHATTY.replace("{release}", str(release)), name="chatty.yml")
    repo.commit("chatty")
    runner = cluster.runner(cluster.register("r1"))
    run_id = trigger(cluster, "chatty.yml")
    wait_for(lambda: "line 3" in logs(cluster, run_id), "the first lines")
    server.kill()  # the runner's messages now fail and are retried
    release.touch()
    time.sleep(2)
    again = RemoteServer(server_state(cluster), cluster.env, cluster.tmp, port=server.port)
    cluster.procs.append(again)
    cluster.servers[0] = again

    run = wait_completed(cluster.cli, run_id, timeout=120)
    text = logs(cluster, run_id)
    assert run["conclusion"] == "success", text + runner.stderr
    lines = [line for line in text.splitlines() if line.startswith("line ")]
    assert lines == [f"line {i}" for i in range(1, 61)]


def server_state(cluster: Cluster) -> Path:
    return cluster.tmp / "state-0"


TOOL = """
    on: workflow_dispatch
    jobs:
      build:
        runs-on: [self-hosted]
        steps:
          - run: |
              mkdir -p dist
              printf '#!/bin/sh\\necho "the tool ran"\\n' > dist/tool.sh
              chmod +x dist/tool.sh
              echo data > dist/data.txt
          - uses: actions/upload-artifact@v4
            with: {name: dist, path: dist}
      use:
        needs: build
        runs-on: [self-hosted]
        steps:
          - uses: actions/download-artifact@v4
            with: {name: dist, path: got}
          - run: ./got/tool.sh && test ! -x got/data.txt
"""


def test_a_remote_artifact_keeps_its_modes_and_the_server_signs_it(
    cluster: Cluster, tmp_path: Path
) -> None:
    from tests.e2e.test_provenance_cli import REMOTE_BUILDER, verify

    server = cluster.server()
    repo = project(cluster)
    repo.workflow(TOOL, name="tool.yml")
    repo.commit("tool")
    runner = cluster.runner(cluster.register("r1"))
    run_id = trigger(cluster, "tool.yml")
    run = wait_completed(cluster.cli, run_id)
    text = logs(cluster, run_id)
    assert run["conclusion"] == "success", text + runner.stderr
    assert "the tool ran" in text  # executable after the trip through the server

    headers = {"Authorization": f"Bearer {cluster.token}"}
    base = f"{server.url}/api/v1/runs/{run_id}/artifacts/dist"
    index = json.loads(
        (server_state(cluster) / "runs" / str(run_id) / "artifacts.json").read_text()
    )
    (stored,) = index["artifacts"]
    assert {f["path"]: f["mode"] for f in stored["files"]} == {"tool.sh": 0o755, "data.txt": 0o644}
    artifact = tmp_path / "tool.sh"
    artifact.write_bytes(httpx.get(f"{base}/files/tool.sh", headers=headers).content)
    provenance = tmp_path / "dist.intoto.json"
    got = httpx.get(f"{base}/provenance", headers=headers)
    assert got.status_code == 200, got.text
    provenance.write_bytes(got.content)
    key = tmp_path / "server.pub"
    key.write_text(cluster.cli("keys", "public").stdout)

    checked = verify(
        str(artifact), "--provenance", str(provenance), "--key", str(key),
        "--builder", REMOTE_BUILDER, "--json",
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    shown = json.loads(checked.stdout)
    assert shown["builder"] == REMOTE_BUILDER
    assert shown["commit"] == run["sha"] and shown["job"] == "build"
    # The remote runner's provenance is not the embedded sandbox's: a policy that accepts
    # only sandboxed embedded builds refuses it.
    sandboxed_only = verify(
        str(artifact), "--provenance", str(provenance), "--key", str(key),
        "--builder", "urn:shipline:builders:embedded-sandbox:v1",
    )  # fmt: skip
    assert sandboxed_only.returncode == 1
