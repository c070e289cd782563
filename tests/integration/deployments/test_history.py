"""Release history on a real server: a newer commit deploys, a broken release is rolled
back by the controller (and says why), `rollback` returns to the previous release and a
later `deploy` of the newer release is a roll forward; a queued deployment superseded by a
newer commit is skipped with the reason; a wait timer holds an approved job."""

from __future__ import annotations

import time

from tests.integration.deployments.conftest import TARGET, DeployServer, commit, write


def _ship(server: DeployServer, alice: str, bob: str) -> int:
    run_id = server.trigger(alice)
    server.wait_job(run_id, "prod", "waiting")
    answer = server.call("POST", f"/runs/{run_id}/environments/production/approve", bob, json={})
    assert answer.status_code == 200, answer.text
    server.wait_job(run_id, "prod", "completed")
    return run_id


def test_history_rollback_and_roll_forward(sqlite_server: DeployServer) -> None:
    server = sqlite_server
    alice = server.user("alice", "developer")
    bob = server.user("bob", "maintainer")
    first = _ship(server, alice, bob)
    write(server.repo, "README", "two\n")
    commit(server.repo, "two")
    second = _ship(server, alice, bob)
    write(server.repo, "BROKEN", "yes\n")
    commit(server.repo, "three, broken")
    third = _ship(server, alice, bob)
    broken = server.job(third, "prod")
    assert broken["conclusion"] == "failure"
    assert "rolled back: health check failed" in server.log(third, broken["id"])

    items = server.call("GET", "/projects/app/deployments").json()["items"]
    assert [(d["run_id"], d["state"]) for d in items] == [
        (third, "rolled_back"),
        (second, "success"),
        (first, "success"),
    ]
    assert "health check failed" in items[0]["reason"]
    releases = {d["run_id"]: d["release"]["id"] for d in items}

    # Rollback (from the CLI/API) goes to the release before the current one.
    back = server.call("POST", "/projects/app/environments/production/rollback", bob, json={})
    assert back.status_code == 201, back.text
    assert back.json()["kind"] == "rollback"
    assert back.json()["release"]["id"] == releases[first]
    done = server.wait(
        lambda: server.call("GET", f"/deployments/{back.json()['id']}").json()["state"] == "success"
    )
    assert done
    assert server.rollouts.serving[("app", "production")] == releases[first]
    # Deploying the newer release again is a roll forward.
    forward = server.call(
        "POST",
        "/projects/app/environments/production/deployments",
        bob,
        json={"release": releases[second]},
    )
    assert forward.status_code == 201, forward.text
    assert forward.json()["kind"] == "roll_forward"
    progress = server.wait(
        lambda: (
            (p := server.call("GET", f"/deployments/{forward.json()['id']}/progress").json())[
                "deployment"
            ]["state"]
            == "success"
            and p
        )
    )
    assert any("serving" in line for line in progress["lines"])
    # A release never run in production may not be deployed by hand by one person.
    refused = server.call(
        "POST",
        "/projects/app/environments/production/deployments",
        bob,
        json={"release": releases[third] + 100},
    )
    assert refused.status_code == 404
    rollbacks = server.audit("deployment.rollback")
    assert [e["actor"] for e in rollbacks] == ["bob"]


def test_a_queued_deployment_superseded_by_a_newer_commit_is_skipped(
    sqlite_server: DeployServer,
) -> None:
    server = sqlite_server
    alice = server.user("alice", "developer")
    bob = server.user("bob", "maintainer")
    server.rollouts.hold.clear()  # the first rollout holds the environment
    first = _start(server, alice, bob)
    server.wait(lambda: server.rollouts.requests)
    write(server.repo, "README", "two\n")
    commit(server.repo, "two")
    second = server.trigger(alice)
    write(server.repo, "README", "three\n")
    commit(server.repo, "three")
    third = server.trigger(alice)
    for run_id in (second, third):
        server.wait_job(run_id, "prod", "waiting")
    for run_id in (second, third):
        answer = server.call(
            "POST", f"/runs/{run_id}/environments/production/approve", bob, json={}
        )
        assert answer.status_code == 200, answer.text
    server.wait(lambda: len(server.call("GET", "/projects/app/deployments").json()["items"]) == 3)
    server.rollouts.hold.set()
    for run_id in (first, second, third):
        server.wait_job(run_id, "prod", "completed")
    items = server.call("GET", "/projects/app/deployments").json()["items"]
    states = {d["run_id"]: (d["state"], d["reason"]) for d in items}
    assert states[first][0] == "success"
    assert states[second][0] == "skipped"
    assert "superseded by deployment" in states[second][1]
    assert states[third][0] == "success"
    # The skipped step succeeds with a warning; the order of rollouts never goes back.
    assert server.job(second, "prod")["conclusion"] == "success"
    order = [r.release.run_id for r in server.rollouts.requests]
    assert order == [first, third]


def _start(server: DeployServer, alice: str, bob: str) -> int:
    run_id = server.trigger(alice)
    server.wait_job(run_id, "prod", "waiting")
    answer = server.call("POST", f"/runs/{run_id}/environments/production/approve", bob, json={})
    assert answer.status_code == 200, answer.text
    return run_id


def test_a_wait_timer_holds_an_approved_job(sqlite_server: DeployServer) -> None:
    server = sqlite_server
    write(
        server.repo,
        ".shipline/environments/production.yml",
        TARGET + "protection:\n  reviewers: {users: [bob]}\n  wait_timer: 2s\n",
    )
    commit(server.repo, "wait timer")
    alice = server.user("alice", "developer")
    bob = server.user("bob", "developer")
    run_id = server.trigger(alice)
    server.wait_job(run_id, "prod", "waiting")
    approved_at = time.monotonic()
    answer = server.call("POST", f"/runs/{run_id}/environments/production/approve", bob, json={})
    assert answer.status_code == 200, answer.text
    [item] = server.call("GET", "/approvals").json()["items"]
    assert item["approvals"] == 1 and item["wait_until"] is not None
    server.wait_job(run_id, "prod", "in_progress")
    assert time.monotonic() - approved_at >= 1.5
    assert server.wait_job(run_id, "prod", "completed")["conclusion"] == "success"


def test_a_freeze_window_holds_jobs_until_it_is_lifted(sqlite_server: DeployServer) -> None:
    server = sqlite_server
    write(
        server.repo,
        ".shipline/environments/production.yml",
        TARGET + 'protection:\n  freeze: [{cron: "* * * * *", duration: 1h}]\n',
    )
    commit(server.repo, "freeze")
    alice = server.user("alice", "developer")
    frozen = server.trigger(alice)
    server.wait_job(frozen, "prod", "waiting")
    time.sleep(2)  # ticks pass: still frozen
    assert server.job(frozen, "prod")["status"] == "waiting"
    [item] = server.call("GET", "/approvals").json()["items"]
    assert (item["run_id"], item["required"]) == (frozen, 0)
    write(server.repo, ".shipline/environments/production.yml", TARGET + "protection: {}\n")
    commit(server.repo, "lift the freeze")
    later = server.trigger(alice)  # fetches the default branch
    assert server.wait_job(frozen, "prod", "completed")["conclusion"] == "success"
    assert server.wait_job(later, "prod", "completed")["conclusion"] == "success"
