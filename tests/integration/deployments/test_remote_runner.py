"""`shipline/deploy` from a runner on another machine: `HttpDeployer` with the job's own
token against a real server. The token deploys for its own job only."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from shipline.runner.deploy_client import HttpDeployer
from tests.integration.deployments.conftest import TARGET, DeployServer, commit, write

REMOTE = """
on: [workflow_dispatch]
jobs:
  build:
    runs-on: x
    steps:
      - run: mkdir -p dist && echo remote > dist/a.txt
      - uses: actions/upload-artifact@v4
        with: {name: app, path: dist}
  remote:
    needs: build
    runs-on: x
    environment: staging
    steps: [{run: sleep 60}]
"""


def test_a_job_token_deploys_for_its_own_job_only(sqlite_server: DeployServer) -> None:
    server = sqlite_server
    write(server.repo, ".shipline/workflows/remote.yml", REMOTE)
    write(server.repo, ".shipline/environments/staging.yml", TARGET + "protection: {}\n")
    commit(server.repo, "remote")
    answer = server.call(
        "POST", "/projects/app/runs", json={"ref": "main", "workflow": "remote.yml"}
    )
    assert answer.status_code == 201, answer.text
    run_id = answer.json()["items"][0]["id"]
    job = server.wait_job(run_id, "remote", "in_progress")
    build = server.job(run_id, "build")
    token = server.context.access.issue_job_token(
        job["id"], server.context.clock.now() + timedelta(minutes=5)
    )
    lines: list[str] = []
    outcome = asyncio.run(
        HttpDeployer(server.url, job["id"], token, poll=0.1).deploy("app", lines.append)
    )
    assert outcome.state == "success", (outcome, lines)
    assert any("serving" in line for line in lines)
    [deployment] = server.call("GET", "/projects/app/deployments").json()["items"]
    assert (deployment["environment"], deployment["job_id"]) == ("staging", job["id"])

    other = asyncio.run(HttpDeployer(server.url, build["id"], token).deploy("app", lines.append))
    assert other.state == "refused"
    assert "not allowed" in other.reason
    missing = asyncio.run(HttpDeployer(server.url, job["id"], token).deploy("nope", lines.append))
    assert missing.state == "refused"
    assert "has no artifact 'nope'" in missing.reason
    assert server.call("POST", f"/runs/{run_id}/cancel").status_code == 200
