"""What may not deploy, on a real server: a branch the environment does not allow
(SECURITY-CASES 9), an untrusted run (a pull request), an environment without a file, an
environment loosened on a branch (rules come from the default branch only), an artifact
changed after the build (36) or without provenance (38). Each refusal is audited, and no
environment secret reaches the job."""

from __future__ import annotations

from tests.integration.deployments.conftest import TARGET, DeployServer, commit, git, write

STAGING_JOB = """
on: [push, pull_request]
jobs:
  qa:
    runs-on: x
    environment: qa
    steps: [{run: echo never}]
"""


def test_a_branch_the_environment_does_not_allow_is_refused(sqlite_server: DeployServer) -> None:
    server = sqlite_server
    alice = server.user("alice", "maintainer")
    server.call(
        "PUT",
        "/projects/app/secrets/DEPLOY_KEY",
        json={"value": "prod-deploy-key-123", "environment": "production"},
    )
    git(server.repo, "checkout", "-q", "-b", "feature/x")
    # The branch also loosens the environment: only the default branch's file counts.
    write(server.repo, ".shipline/environments/production.yml", TARGET + "protection: {}\n")
    commit(server.repo, "loosen production")
    git(server.repo, "checkout", "-q", "main")
    run_id = server.trigger(alice, ref="feature/x")
    job = server.wait_job(run_id, "prod", "completed")
    assert job["conclusion"] == "failure"
    assert "branch 'feature/x' may not deploy here" in job["error"]
    assert job["steps"] == []  # never started: no secret was ever delivered
    denied = server.audit("deployment.gate.open")
    assert [(e["decision"], e["target"]) for e in denied] == [("denied", f"job:{job['id']}")]
    assert server.call("GET", "/approvals").json()["items"] == []


def test_an_untrusted_run_cannot_deploy(sqlite_server: DeployServer) -> None:
    server = sqlite_server
    server.user("alice", "maintainer")
    run_id = server.trigger_untrusted("mallory", "main")
    job = server.wait_job(run_id, "prod", "completed")
    assert job["conclusion"] == "failure"
    assert "untrusted" in job["error"]
    assert server.run(run_id)["status"] == "completed"
    [event] = server.audit("deployment.gate.open")
    assert event["decision"] == "denied" and "untrusted" in event["reason"]


def test_an_environment_without_a_file_is_a_job_error(sqlite_server: DeployServer) -> None:
    server = sqlite_server
    alice = server.user("alice", "maintainer")
    write(server.repo, ".shipline/workflows/qa.yml", STAGING_JOB)
    commit(server.repo, "qa job")
    run_id = next(
        r["id"]
        for r in server.call(
            "POST", "/projects/app/runs", alice, json={"ref": "main", "event": "push"}
        ).json()["items"]
        if r["workflow_file"].endswith("qa.yml")
    )
    job = server.wait_job(run_id, "qa", "completed")
    assert job["conclusion"] == "failure"
    assert "environment 'qa' is not defined" in job["error"]
    assert ".shipline/environments/qa.yml" in job["error"]


def _deployed(server: DeployServer) -> tuple[int, dict[str, object]]:
    alice = server.user("alice", "developer")
    bob = server.user("bob", "maintainer")
    run_id = server.trigger(alice)
    server.wait_job(run_id, "prod", "waiting")
    approved = server.call("POST", f"/runs/{run_id}/environments/production/approve", bob, json={})
    assert approved.status_code == 200
    assert server.wait_job(run_id, "prod", "completed")["conclusion"] == "success"
    [deployment] = server.call("GET", "/projects/app/deployments").json()["items"]
    return run_id, deployment


def test_an_artifact_changed_after_the_build_is_refused(sqlite_server: DeployServer) -> None:
    server = sqlite_server
    run_id, deployment = _deployed(server)
    release = deployment["release"]
    assert isinstance(release, dict)
    bob = server.tokens["bob"]
    artifacts = server.call("GET", f"/runs/{run_id}/artifacts").json()["items"]
    digest = artifacts[0]["files"][0]["sha256"]
    blob = server.state / "blobs" / "sha256" / digest[:2] / digest[2:]
    blob.chmod(0o644)
    data = bytearray(blob.read_bytes())
    data[0] ^= 1  # one byte
    blob.write_bytes(bytes(data))
    answer = server.call(
        "POST",
        "/projects/app/environments/production/deployments",
        bob,
        json={"release": release["id"]},
    )
    assert answer.status_code == 403, answer.text
    assert "changed after the build" in answer.json()["error"]["message"]
    [event] = server.audit("deployment.verify")
    assert event["decision"] == "denied" and event["actor"] == "bob"


def test_an_artifact_without_provenance_is_refused(sqlite_server: DeployServer) -> None:
    server = sqlite_server
    run_id, deployment = _deployed(server)
    release = deployment["release"]
    assert isinstance(release, dict)
    for envelope in (server.state / "runs" / str(run_id) / "provenance").iterdir():
        envelope.unlink()
    answer = server.call(
        "POST",
        "/projects/app/environments/production/deployments",
        server.tokens["bob"],
        json={"release": release["id"]},
    )
    assert answer.status_code == 403, answer.text
    assert "no signed provenance" in answer.json()["error"]["message"]
