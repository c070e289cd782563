"""The server's embedded runner runs steps in the sandbox by default, with the job's limits,
and says so in the job log; without a working sandbox it falls back to `shell` loudly, or
refuses to start when the sandbox is required."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from shipline.executors.sandbox import probe
from tests.e2e.conftest import shipline
from tests.e2e.test_server import (
    Repo,
    Start,
    admin_token,
    client,
    start,  # noqa: F401 (a fixture)
    wait_completed,
)

ISOLATED = """
    on: workflow_dispatch
    jobs:
      build:
        runs-on: ubuntu-latest
        steps:
          - run: |
              echo "uid=$(id -u)"
              echo "state: $(ls {state} 2>&1 | tr '\\n' ' ')"
              cat {state}/shipline.db > /dev/null 2>&1 && echo db-readable || echo db-hidden
      hog:
        runs-on: ubuntu-latest
        sandbox:
          memory: 64M
          network: off
        steps:
          - run: python3 -c 'x = bytearray(512 << 20); print("alloc" + "ated")'
"""


def needs_sandbox() -> None:
    reason = probe()
    if reason is not None:
        pytest.skip(reason)


@pytest.mark.slow
def test_steps_run_sandboxed_by_default_with_the_jobs_limits(
    start: Start,  # noqa: F811
    tmp_path: Path,
) -> None:
    needs_sandbox()
    token = admin_token()
    server = start({"SHIPLINE_ADMIN_TOKEN": token})
    cli = client(server, token, tmp_path)
    repo = Repo(tmp_path / "repo")
    repo.workflow(ISOLATED.format(state=server.state))
    repo.commit("pipeline")
    assert cli("projects", "create", "app", "--repo", "repo").returncode == 0
    (run,) = json.loads(cli("projects", "trigger", "app", "--json").stdout)["items"]

    done = wait_completed(cli, run["id"])

    assert done["conclusion"] == "failure"  # the hog
    jobs = {job["name"]: job for job in done["jobs"]}
    assert jobs["build"]["conclusion"] == "success"
    assert jobs["hog"]["conclusion"] == "failure"
    build = cli("runs", "logs", str(run["id"]), "--job", "build").stdout
    assert "Executor sandbox (bubblewrap)" in build
    assert "network on" in build
    assert (f"uid={65534 if os.geteuid() == 0 else os.geteuid()}") in build
    # Only the (empty) directories leading to the job's own are there.
    assert "state: runs \n" in build
    assert "db-hidden" in build
    hog = cli("runs", "logs", str(run["id"]), "--job", "hog").stdout
    assert "network off (loopback only)" in hog
    assert "memory 64 MiB" in hog
    assert "allocated" not in hog
    if "through cgroup" in hog:
        assert "the job's memory limit (64 MiB) was reached" in hog
    assert "sandbox executor" in server.stderr
    # Nothing a job wrote outside caches and artifacts survives it.
    job_dirs = server.state / "runs" / str(run["id"]) / "jobs"
    assert not job_dirs.exists() or list(job_dirs.iterdir()) == []
    assert server.terminate() == 0


def path_without_bwrap(tmp_path: Path) -> str:
    """A PATH with the usual tools but no bwrap: the machine as if bubblewrap were missing."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("git", "sh", "bash", "python3", "setpriv", "prlimit", "env", "id", "cat"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


@pytest.mark.slow
def test_without_the_sandbox_the_server_falls_back_to_shell_and_says_so(
    start: Start,  # noqa: F811
    tmp_path: Path,
) -> None:
    token = admin_token()
    path = path_without_bwrap(tmp_path)
    server = start({"SHIPLINE_ADMIN_TOKEN": token, "PATH": path})
    assert "WARNING: the sandbox does not work on this machine" in server.stderr
    cli = client(server, token, tmp_path)
    repo = Repo(tmp_path / "repo")
    repo.workflow(
        """
        on: workflow_dispatch
        jobs:
          build:
            runs-on: ubuntu-latest
            steps:
              - run: echo hello
        """
    )
    repo.commit("pipeline")
    assert cli("projects", "create", "app", "--repo", "repo").returncode == 0
    (run,) = json.loads(cli("projects", "trigger", "app", "--json").stdout)["items"]
    assert wait_completed(cli, run["id"])["conclusion"] == "success"
    log = cli("runs", "logs", str(run["id"])).stdout
    assert "Warning: the sandbox does not work on this machine (bwrap not found" in log
    assert "NOT isolated" in log
    assert server.terminate() == 0


def test_a_required_sandbox_that_cannot_run_stops_the_server_with_the_reason(
    tmp_path: Path,
) -> None:
    env = {"PATH": path_without_bwrap(tmp_path)}
    result = shipline(
        "server",
        "--state-dir",
        str(tmp_path / "state"),
        "--port",
        "0",
        "--executor",
        "sandbox",
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 1
    assert "--executor sandbox: the sandbox cannot run here: bwrap not found" in result.stderr
    assert "Traceback" not in result.stderr
