"""Every job gets a token, and its steps may use it: a real server with its embedded runner
running, a hosted repository and the real `git` client inside the job's steps.

A step sees the token only where the workflow references it (`${{ github.token }}`,
`${{ secrets.GITHUB_TOKEN }}`), masked in the log. With `contents: write` a trusted run's
job pushes a branch with it (git over HTTP, `x-access-token`), and that push starts no
workflow (GitHub's rule). The token acts on its own project only (SECURITY-CASES 21), is
capped at read in an untrusted run (22: the push is refused with 403 and audited), and
is refused once the job has ended (20), even when the job leaked it."""

from __future__ import annotations

import asyncio
import subprocess
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from shipline.domain.records import Trust
from shipline.plan.events import Event
from shipline.server.app import create_app
from shipline.settings import Settings
from shipline.wiring import build_server
from tests.integration.source.conftest import Hosted, git_env

STEP = """
on: [push, pull_request]
permissions:
  contents: write
jobs:
  push:
    runs-on: self-hosted
    steps:
      - env:
          TOKEN: ${{ github.token }}
          SAME: ${{ secrets.GITHUB_TOKEN == github.token && 'yes' || 'no' }}
        run: |
          export HOME="$RUNNER_TEMP"
          echo "token is $TOKEN, same: $SAME, in env: ${GITHUB_TOKEN:-unset}"
          # The token goes in a header from the environment, never on a command line.
          auth=$(printf 'x-access-token:%s' "$TOKEN" | base64 -w0)
          export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=http.extraHeader
          export GIT_CONFIG_VALUE_0="Authorization: Basic $auth"
          if git ls-remote {url}/git/other.git 2> "$RUNNER_TEMP/other"; then
            echo "OTHER PROJECT: READ"
          else
            echo "OTHER PROJECT: REFUSED $(cat "$RUNNER_TEMP/other")"
          fi
          git clone -q {url}/git/app.git repo
          cd repo
          git checkout -q -b job-${{ github.run_id }}
          printf '%s' "$TOKEN" > leaked.txt
          git add leaked.txt
          git -c user.name=job -c user.email=job@example.com commit -qm "from the job"
          if git push -q origin HEAD 2> "$RUNNER_TEMP/err"; then
            echo "PUSHED"
          else
            echo "REFUSED $(cat "$RUNNER_TEMP/err")"
          fi
"""


def _serve(http: uvicorn.Server, runner: Any, ready: threading.Event) -> None:
    async def main() -> None:
        tasks = [asyncio.create_task(http.serve()), asyncio.create_task(runner.run())]
        while not http.started:
            await asyncio.sleep(0.02)
        ready.set()
        while not http.should_exit:
            await asyncio.sleep(0.05)
        await runner.stop(5)
        await asyncio.wait(tasks, timeout=10)

    asyncio.run(main())


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Hosted]:
    """A server whose embedded runner runs jobs. Untrusted runs get the network here (an
    admin's choice), so that only the token's cap stands between them and a push."""
    settings = Settings.with_flags(
        state_dir=tmp_path / "state", runner_slots=2, sandbox_network_untrusted=True
    )
    context, runner = build_server(
        settings, host_env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    )
    token = context.access.bootstrap_admin(None)
    assert token is not None
    config = uvicorn.Config(create_app(context), host="127.0.0.1", port=0, log_level="warning")
    http = uvicorn.Server(config)
    http.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    ready = threading.Event()
    thread = threading.Thread(target=_serve, args=(http, runner, ready), daemon=True)
    thread.start()
    assert ready.wait(20), "the server did not start"
    port = http.servers[0].sockets[0].getsockname()[1]
    try:
        yield Hosted(f"http://127.0.0.1:{port}", context, token, tmp_path)
    finally:
        http.should_exit = True
        thread.join(30)
        context.store.close()


def _wait(hosted: Hosted, run_id: int, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run: dict[str, Any] = hosted.api("GET", f"/runs/{run_id}").json()
        if run["status"] == "completed":
            return run
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} did not complete")


def _log(hosted: Hosted, run_id: int, job_id: int) -> str:
    answer = hosted.api("GET", f"/runs/{run_id}/jobs/{job_id}/logs")
    assert answer.status_code == 200, answer.text
    return answer.text


def _audit(hosted: Hosted, action: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = hosted.api(
        "GET", "/audit", params={"action": action, "limit": 100}
    ).json()["items"]
    return items


def _git(hosted: Hosted, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    home = hosted.tmp / "home-check"
    home.mkdir(exist_ok=True)
    return subprocess.run(
        ["git", *args], cwd=cwd, env=git_env(home), capture_output=True, text=True, timeout=60
    )


def test_a_job_pushes_with_its_token_which_starts_nothing_and_dies_with_the_job(
    live: Hosted,
) -> None:
    hosted = live
    hosted.project("other")
    hosted.project("app")
    clone = hosted.clone("admin", hosted.admin_token)
    clone.write(".shipline/workflows/ci.yml", textwrap.dedent(STEP).replace("{url}", hosted.url))
    clone.commit("ci")
    clone.git("push", "-q", "origin", "main")
    [run] = hosted.wait_runs(1)
    assert run.trust is Trust.TRUSTED
    done = _wait(hosted, run.id)
    [job] = done["jobs"]
    log = _log(hosted, run.id, job["id"])
    assert done["conclusion"] == "success", log
    # Referenced: the token reached the step, masked; not referenced: not in the env.
    assert "token is ***, same: yes, in env: unset" in log
    assert "shp_j_" not in log
    # Case 21: the token acts on its own project only (another project is not even
    # shown to exist), and the refusal is audited.
    assert "OTHER PROJECT: REFUSED" in log and "not found" in log.split("OTHER PROJECT")[1]
    fetches = [e for e in _audit(hosted, "git.fetch") if e["decision"] == "denied"]
    assert [(e["actor"], e["reason"]) for e in fetches] == [
        (f"job:{job['id']}", "job token of another project")
    ]
    assert "PUSHED" in log

    # The push landed...
    branch = f"job-{run.id}"
    heads = _git(hosted, "ls-remote", hosted.remote("admin", hosted.admin_token), branch)
    assert branch in heads.stdout, heads.stderr
    # ...as the job, and started no workflow (GitHub's rule for GITHUB_TOKEN).
    pushes = [e for e in _audit(hosted, "git.push") if e["target"] == f"refs/heads/{branch}"]
    assert [(e["actor"], e["decision"]) for e in pushes] == [(f"job:{job['id']}", "allowed")]
    assert pushes[0]["data"]["workflows"] == "not started: job token"
    time.sleep(1)  # a run would be created right after the audit record: none is
    assert [r.id for r in hosted.runs()] == [run.id]

    # Case 20: the job leaked its token (in the commit); now that it ended, it is refused.
    fetched = _git(
        hosted,
        "clone",
        "-q",
        "-b",
        branch,
        hosted.remote("admin", hosted.admin_token),
        str(hosted.tmp / "leak"),
    )
    assert fetched.returncode == 0, fetched.stderr
    leaked = (hosted.tmp / "leak" / "leaked.txt").read_text()
    assert leaked.startswith("shp_j_")
    reused = _git(hosted, "ls-remote", hosted.remote("x-access-token", leaked))
    assert reused.returncode != 0 and "Authentication failed" in reused.stderr  # 401
    api = httpx.get(
        f"{hosted.url}/api/v1/runs/{run.id}",
        headers={"Authorization": f"Bearer {leaked}"},
        timeout=30,
    )
    assert api.status_code == 401
    revoked = [e["target"] for e in _audit(hosted, "token.revoke_job")]
    assert f"job:{job['id']}" in revoked
    denied = [e["reason"] for e in _audit(hosted, "authenticate") if e["decision"] == "denied"]
    assert "revoked" in denied
    assert leaked not in str(_audit(hosted, "authenticate"))


def test_an_untrusted_runs_token_may_not_push(live: Hosted) -> None:
    hosted = live
    hosted.project("other")
    hosted.project("app")
    clone = hosted.clone("admin", hosted.admin_token)
    clone.write(".shipline/workflows/ci.yml", textwrap.dedent(STEP).replace("{url}", hosted.url))
    clone.commit("ci")
    clone.git("push", "-q", "origin", "main")
    [trusted] = hosted.wait_runs(1)
    _wait(hosted, trusted.id)
    context = hosted.context
    with context.store.transaction(write=False) as tx:
        project = tx.projects.get("app")
    assert project is not None
    repo = context.runs.repositories(project)
    repo.fetch()
    ref, sha = repo.resolve("main")
    pull = Event(name="pull_request", ref=ref, sha=sha, repository="app", actor="fork-dev")
    [run] = context.runs.trigger_event(project, pull, trust=Trust.UNTRUSTED)

    done = _wait(hosted, run.id)
    [job] = done["jobs"]
    log = _log(hosted, run.id, job["id"])
    # `permissions: contents: write`, capped at read: the clone works, the push does not.
    assert "token is ***" in log and "shp_j_" not in log
    assert "REFUSED" in log.split("OTHER PROJECT")[1] and "403" in log.split("REFUSED")[-1]
    assert "PUSHED" not in log
    heads = _git(hosted, "ls-remote", hosted.remote("admin", hosted.admin_token))
    assert f"job-{run.id}" not in heads.stdout
    refusals = [e for e in _audit(hosted, "git.push") if e["decision"] == "denied"]
    assert [e["actor"] for e in refusals] == [f"job:{job['id']}"]
    assert "contents: read" in refusals[0]["reason"]
    issued = {e["target"]: e["data"]["scopes"] for e in _audit(hosted, "token.issue_job")}
    assert issued[f"job:{job['id']}"] == ["contents:read"]


BUMP = """
on:
  push: {branches: [main]}
  pull_request: {types: [opened, synchronize]}
permissions:
  contents: write
jobs:
  bump:
    if: github.event_name == 'push'
    runs-on: self-hosted
    steps:
      - env:
          TOKEN: ${{ github.token }}
        run: |
          export HOME="$RUNNER_TEMP"
          auth=$(printf 'x-access-token:%s' "$TOKEN" | base64 -w0)
          export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=http.extraHeader
          export GIT_CONFIG_VALUE_0="Authorization: Basic $auth"
          git clone -q -b feature {url}/git/app.git repo
          cd repo
          git -c user.name=job -c user.email=job@example.com commit -q --allow-empty -m bump
          git push -q origin feature
          echo "PUSHED $(git rev-parse HEAD)"
"""


def test_a_job_tokens_push_to_a_pull_requests_head_moves_it_but_starts_no_run(
    live: Hosted,
) -> None:
    hosted = live
    hosted.project("app")
    clone = hosted.clone("admin", hosted.admin_token)
    clone.write("README.md", "hi\n")
    clone.commit("start")
    clone.git("push", "-q", "origin", "main")  # no workflow yet: no run
    clone.write(".shipline/workflows/bump.yml", textwrap.dedent(BUMP).replace("{url}", hosted.url))
    clone.commit("bump")
    # The pull request first (its head has the workflow: a `synchronize` would run it)...
    clone.git("checkout", "-q", "-b", "feature")
    clone.write("feature.txt", "x\n")
    clone.commit("feature")
    clone.git("push", "-q", "origin", "feature")
    opened = hosted.api("POST", "/projects/app/pulls", json={"head": "feature", "base": "main"})
    assert opened.status_code == 201, opened.text
    hosted.wait_runs(1)  # `opened` (the push of `feature` may add a `synchronize`)
    time.sleep(1)
    before = hosted.runs()
    for earlier in before:
        _wait(hosted, earlier.id)
    # ...then main: its push run's job pushes to the pull request's head with its token.
    clone.git("push", "-q", "origin", "HEAD~1:main")
    run = hosted.wait_runs(len(before) + 1)[-1]
    assert run.event == "push"
    done = _wait(hosted, run.id)
    [job] = done["jobs"]
    log = _log(hosted, run.id, job["id"])
    assert done["conclusion"] == "success", log
    pushed = log.split("PUSHED ", 1)[1].split()[0]
    # The pull request follows its head branch...
    assert hosted.api("GET", "/projects/app/pulls/1").json()["head_sha"] == pushed
    # ...but the job token's push raised no `synchronize` run.
    pushes = [e for e in _audit(hosted, "git.push") if e["actor"] == f"job:{job['id']}"]
    assert [e["data"]["workflows"] for e in pushes] == ["not started: job token"]
    time.sleep(1)
    assert [r.id for r in hosted.runs()] == [r.id for r in before] + [run.id]
    # The same push by a user does raise one.
    clone.git("pull", "-q", "--ff-only", "origin", "feature")
    clone.commit("by a user")
    clone.git("push", "-q", "origin", "feature")
    runs = hosted.wait_runs(len(before) + 2)
    assert (runs[-1].event, runs[-1].ref) == ("pull_request", "refs/pull/1/head")
