"""A job token's scopes come from the workflow's `permissions:` (SECURITY-CASES 22): a real
server, a remote runner claiming jobs over the API, and the real `git` client pushing to
the hosted repository with the job's token (`x-access-token`, GitHub's convention).

A fork's pull-request run is capped at `read` whatever the workflow says: its token
fetches but its push is refused with 403 and an audit event; the same workflow's trusted
push run may push. Scopes the workflow does not name are `none`."""

from __future__ import annotations

import subprocess
from pathlib import Path
from textwrap import dedent
from typing import Any

import httpx

from shipline.domain.records import Trust
from shipline.plan.events import Event
from tests.integration.deployments.conftest import (
    PRODUCTION,
    commit,
    git,
    start_server,
    write,
)
from tests.integration.deployments.conftest import WORKFLOW as DEPLOY_WORKFLOW
from tests.integration.source.conftest import Hosted, git_env

WORKFLOW = """
    on: [push, pull_request]
    permissions:
      contents: write
    jobs:
      build: {runs-on: self-hosted, steps: [{run: echo build}]}
"""


def _claim(hosted: Hosted, runner: str) -> dict[str, Any]:
    answer = httpx.post(
        f"{hosted.url}/api/v1/runner/jobs/request",
        json={"wait": 0},
        headers={"Authorization": f"Bearer {runner}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    job: dict[str, Any] = answer.json()
    return job


def _runner(hosted: Hosted) -> str:
    reg = hosted.api("POST", "/runners/registration-tokens", json={"name": "t"})
    assert reg.status_code == 201, reg.text
    done = httpx.post(
        f"{hosted.url}/api/v1/runner/register",
        json={"name": "r1"},
        headers={"Authorization": f"Bearer {reg.json()['token']}"},
        timeout=30,
    )
    assert done.status_code == 201, done.text
    token: str = done.json()["token"]
    return token


def _git(hosted: Hosted, *args: str, cwd: Any = None) -> subprocess.CompletedProcess[str]:
    home = hosted.tmp / "home-job"
    home.mkdir(exist_ok=True)
    return subprocess.run(
        ["git", *args], cwd=cwd, env=git_env(home), capture_output=True, text=True, timeout=60
    )


def test_an_untrusted_run_with_contents_write_may_fetch_but_not_push(hosted: Hosted) -> None:
    hosted.project()
    clone = hosted.clone("admin", hosted.admin_token)
    clone.write(".shipline/workflows/ci.yml", WORKFLOW)
    clone.commit("ci")
    clone.git("push", "-q", "origin", "main")
    [trusted_run] = hosted.wait_runs(1)
    assert trusted_run.trust is Trust.TRUSTED
    context = hosted.context
    with context.store.transaction(write=False) as tx:
        project = tx.projects.get("app")
    assert project is not None
    repo = context.runs.repositories(project)
    repo.fetch()
    ref, sha = repo.resolve("main")
    pull = Event(name="pull_request", ref=ref, sha=sha, repository="app", actor="fork-dev")
    [untrusted_run] = context.runs.trigger_event(project, pull, trust=Trust.UNTRUSTED)

    runner = _runner(hosted)
    jobs = [_claim(hosted, runner), _claim(hosted, runner)]
    claimed = {job["run_id"]: job for job in jobs}
    assert set(claimed) == {trusted_run.id, untrusted_run.id}

    def remote(token: str) -> str:
        return hosted.remote("x-access-token", token)

    # The untrusted job's token: capped at contents: read. It fetches...
    untrusted = claimed[untrusted_run.id]
    fetched = _git(hosted, "clone", "-q", remote(untrusted["token"]), str(hosted.tmp / "fork"))
    assert fetched.returncode == 0, fetched.stderr
    fork = hosted.tmp / "fork"
    _git(hosted, "checkout", "-q", "-b", "poisoned", cwd=fork)
    (fork / "evil.txt").write_text("x\n")
    _git(hosted, "add", "-A", cwd=fork)
    _git(hosted, "commit", "-qm", "evil", cwd=fork)
    # ...but its push is refused (403), whatever `permissions:` said.
    pushed = _git(hosted, "push", "-q", remote(untrusted["token"]), "poisoned", cwd=fork)
    assert pushed.returncode != 0
    assert "403" in pushed.stderr
    assert (
        _git(hosted, "ls-remote", remote(untrusted["token"]), cwd=fork).stdout.count("poisoned")
        == 0
    )
    denied = hosted.api("GET", "/audit", params={"action": "git.push"}).json()["items"]
    refusal = [a for a in denied if a["decision"] == "denied"]
    assert refusal, denied
    assert refusal[0]["actor"] == f"job:{untrusted['job_id']}"
    assert "contents: read" in refusal[0]["reason"]
    assert untrusted["token"] not in str(denied)
    issued = hosted.api("GET", "/audit", params={"action": "token.issue_job"}).json()["items"]
    scopes = {a["target"]: a["data"]["scopes"] for a in issued}
    assert scopes[f"job:{untrusted['job_id']}"] == ["contents:read"]
    # Unnamed scopes are none: the trusted job has contents: write and nothing else.
    assert scopes[f"job:{claimed[trusted_run.id]['job_id']}"] == ["contents:write"]

    # The trusted push run's token, same workflow: contents: write, so the push goes in.
    trusted = claimed[trusted_run.id]
    _git(hosted, "checkout", "-q", "-b", "from-trusted-job", cwd=fork)
    allowed = _git(hosted, "push", "-q", remote(trusted["token"]), "from-trusted-job", cwd=fork)
    assert allowed.returncode == 0, allowed.stderr

    # `deployments` is not named: none, so even the trusted job's token may not deploy.
    deploy = httpx.post(
        f"{hosted.url}/api/v1/jobs/{trusted['job_id']}/deployments",
        json={"artifact": "app"},
        headers={"Authorization": f"Bearer {trusted['token']}"},
        timeout=30,
    )
    assert deploy.status_code == 403
    assert "deployments: none" in deploy.json()["error"]["message"]
    requests = hosted.api("GET", "/audit", params={"action": "deployment.request"}).json()
    assert [a["decision"] for a in requests["items"]] == ["denied"]


def test_the_embedded_runners_deploy_step_needs_the_deployments_scope(tmp_path: Path) -> None:
    """`shipline/deploy` on the server's own runner presents the job's token, as a remote
    runner's does: `permissions:` without `deployments: write` cannot deploy, audited."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "dev@example.com")
    git(repo, "config", "user.name", "Dev")
    write(
        repo,
        ".shipline/workflows/deploy.yml",
        "permissions: {contents: read}\n" + dedent(DEPLOY_WORKFLOW),
    )
    write(repo, ".shipline/environments/production.yml", PRODUCTION)
    commit(repo, "pipeline")
    for server in start_server(tmp_path, "", repo):
        alice = server.user("alice", "developer")
        bob = server.user("bob", "maintainer")
        run_id = server.trigger(alice)
        server.wait_job(run_id, "prod", "waiting")
        approve = f"/runs/{run_id}/environments/production/approve"
        assert server.call("POST", approve, bob, json={}).status_code == 200
        job = server.wait_job(run_id, "prod", "completed")
        assert job["conclusion"] == "failure"
        log = server.log(run_id, job["id"])
        assert "deployments: none" in log, log
        assert server.call("GET", "/projects/app/deployments").json()["items"] == []
        [denied] = server.audit("deployment.request")
        assert denied["decision"] == "denied"
        assert denied["actor"] == f"job:{job['id']}"
        assert "deployments: none" in denied["reason"]
