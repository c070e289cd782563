"""The approval flow on a real server, SQLite and PostgreSQL: a deploy job waits; the run's
initiator cannot approve it (SECURITY-CASES 10); a maintainer approves; the environment's
secret reaches the job only then (18); the step verifies and rolls the artifact out, and
the release history says which release, by whom, from which run and commit."""

from __future__ import annotations

from tests.integration.deployments.conftest import TARGET, DeployServer, commit, write


def test_a_deploy_waits_for_a_maintainer_other_than_its_initiator(server: DeployServer) -> None:
    alice = server.user("alice", "maintainer")
    bob = server.user("bob", "maintainer")
    dev = server.user("dev", "developer")
    answer = server.call(
        "PUT",
        "/projects/app/secrets/DEPLOY_KEY",
        json={"value": "prod-deploy-key-123", "environment": "production"},
    )
    assert answer.status_code in (200, 201), answer.text
    run_id = server.trigger(alice)
    waiting = server.wait_job(run_id, "prod", "waiting")
    assert server.job(run_id, "build")["conclusion"] == "success"

    listed = server.call("GET", "/approvals", bob).json()["items"]
    assert [(a["run_id"], a["environment"], a["actor"], a["required"]) for a in listed] == [
        (run_id, "production", "alice", 1)
    ]
    # The initiator may not approve their own deployment, a developer is no reviewer.
    own = server.call("POST", f"/runs/{run_id}/environments/production/approve", alice, json={})
    assert own.status_code == 403, own.text
    assert "self-review" in own.json()["error"]["message"]
    not_reviewer = server.call(
        "POST", f"/runs/{run_id}/environments/production/approve", dev, json={}
    )
    assert not_reviewer.status_code == 403
    assert server.job(run_id, "prod")["status"] == "waiting"
    denied = [e for e in server.audit("deployment.approve") if e["decision"] == "denied"]
    assert {e["actor"] for e in denied} == {"alice", "dev"}

    approved = server.call(
        "POST",
        f"/runs/{run_id}/environments/production/approve",
        bob,
        json={"comment": "ship it"},
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["items"][0]["state"] == "approved"
    again = server.call("POST", f"/runs/{run_id}/environments/production/approve", bob, json={})
    assert again.status_code == 404  # nothing waits any more

    done = server.wait_job(run_id, "prod", "completed")
    log = server.log(run_id, waiting["id"])
    assert done["conclusion"] == "success", (done, log)
    assert "key is present" in log
    assert "prod-deploy-key-123" not in log
    assert "release 1 serving" in log
    allowed = [e for e in server.audit("deployment.approve") if e["decision"] == "allowed"]
    assert [(e["actor"], e["reason"]) for e in allowed] == [("bob", "ship it")]

    history = server.call("GET", "/projects/app/deployments", params={"environment": "production"})
    [deployment] = history.json()["items"]
    assert deployment["state"] == "success"
    assert deployment["actor"] == "alice"
    assert deployment["run_id"] == run_id
    assert deployment["sha"] == server.run(run_id)["sha"]
    assert deployment["release"]["artifact"] == "app"
    assert deployment["release"]["digest"].startswith("sha256:")
    assert deployment["release"]["builder"].startswith("urn:shipline:builders:")
    [request] = server.rollouts.requests
    assert (request.directory / "version.txt").read_text().startswith("version ")


def test_a_rejection_fails_the_job_with_the_reviewers_reason(server: DeployServer) -> None:
    alice = server.user("alice", "developer")
    bob = server.user("bob", "maintainer")
    run_id = server.trigger(alice)
    server.wait_job(run_id, "prod", "waiting")
    rejected = server.call(
        "POST",
        f"/runs/{run_id}/environments/production/reject",
        bob,
        json={"comment": "not on a Friday"},
    )
    assert rejected.status_code == 200, rejected.text
    job = server.wait_job(run_id, "prod", "completed")
    assert job["conclusion"] == "failure"
    assert "rejected by bob: not on a Friday" in job["error"]
    assert server.wait(lambda: server.run(run_id)["status"] == "completed")
    assert server.rollouts.requests == []


def test_cancelling_a_run_withdraws_its_approval_request(sqlite_server: DeployServer) -> None:
    server = sqlite_server
    alice = server.user("alice", "developer")
    run_id = server.trigger(alice)
    server.wait_job(run_id, "prod", "waiting")
    assert len(server.call("GET", "/approvals").json()["items"]) == 1
    assert server.call("POST", f"/runs/{run_id}/cancel").status_code == 200
    assert server.job(run_id, "prod")["conclusion"] == "cancelled"
    assert server.call("GET", "/approvals").json()["items"] == []
    late = server.call("POST", f"/runs/{run_id}/environments/production/approve", json={})
    assert late.status_code == 404


def test_two_reviewers_are_two_people(sqlite_server: DeployServer) -> None:
    server = sqlite_server
    write(
        server.repo,
        ".shipline/environments/production.yml",
        TARGET + "protection:\n  reviewers: {users: [bob, carol], required: 2}\n",
    )
    commit(server.repo, "two reviewers")
    alice = server.user("alice", "developer")
    bob = server.user("bob", "developer")
    carol = server.user("carol", "developer")
    maintainer = server.user("mo", "maintainer")
    run_id = server.trigger(alice)
    server.wait_job(run_id, "prod", "waiting")
    path = f"/runs/{run_id}/environments/production/approve"
    assert server.call("POST", path, maintainer, json={}).status_code == 403  # not listed
    first = server.call("POST", path, bob, json={})
    assert first.json()["items"][0]["state"] == "waiting"
    assert server.call("POST", path, bob, json={}).status_code == 409  # once per person
    [item] = server.call("GET", "/approvals").json()["items"]
    assert (item["approvals"], item["required"]) == (1, 2)
    assert server.job(run_id, "prod")["status"] == "waiting"
    second = server.call("POST", path, carol, json={})
    assert second.json()["items"][0]["state"] == "approved"
    assert server.wait_job(run_id, "prod", "completed")["conclusion"] == "success"
