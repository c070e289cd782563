"""Release history in the store, through the API and the CLI: every rollout that reached
the environment (which release, by whom, from which run and commit, the outcome, and why a
rolled back one failed); `rollback` without `--to` goes to the release live before the
current one, `--to` only to a release that was live in the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from tests.integration.deployments.conftest import DeployServer, commit, write


def _ship(server: DeployServer, alice: str, bob: str) -> int:
    run_id = server.trigger(alice)
    server.wait_job(run_id, "prod", "waiting")
    answer = server.call("POST", f"/runs/{run_id}/environments/production/approve", bob, json={})
    assert answer.status_code == 200, answer.text
    server.wait_job(run_id, "prod", "completed")
    return run_id


def _cli(server: DeployServer, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"SHIPLINE_URL": server.url, "SHIPLINE_TOKEN": token}
    return subprocess.run(
        [sys.executable, "-m", "shipline", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def _releases(server: DeployServer, token: str | None = None) -> list[dict[str, Any]]:
    answer = server.call("GET", "/projects/app/environments/production/releases", token)
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def test_release_history_rollback_to_and_the_cli(sqlite_server: DeployServer) -> None:
    server = sqlite_server
    alice = server.user("alice", "developer")
    bob = server.user("bob", "maintainer")
    viewer = server.user("vic", "viewer")
    assert _releases(server) == []
    first = _ship(server, alice, bob)
    write(server.repo, "README", "two\n")
    second_sha = commit(server.repo, "two")
    second = _ship(server, alice, bob)
    write(server.repo, "BROKEN", "yes\n")
    commit(server.repo, "three, broken")
    third = _ship(server, alice, bob)

    history = _releases(server, viewer)
    assert [(e["run_id"], e["outcome"]) for e in history] == [
        (third, "rolled_back"),
        (second, "success"),
        (first, "success"),
    ]
    broken, live, oldest = history
    assert broken["cause"] == "health"
    assert "health check failed" in broken["reason"]
    assert broken["rolled_back_to"] == live["release_id"]
    assert live["sha"] == second_sha and live["ref"] == "refs/heads/main"
    assert live["actor"] == "alice" and live["kind"] == "deploy"
    assert live["artifact"] == "app" and live["digest"].startswith("sha256:")
    assert live["started_at"] and live["finished_at"]

    # --to: only a release that was live in the environment.
    never = server.call(
        "POST",
        "/projects/app/environments/production/rollback",
        bob,
        json={"release": broken["release_id"]},
    )
    assert never.status_code == 409, never.text
    assert "never went live in production" in never.json()["error"]["message"]
    current = server.call(
        "POST",
        "/projects/app/environments/production/rollback",
        bob,
        json={"release": live["release_id"]},
    )
    assert current.status_code == 409
    assert "serves now" in current.json()["error"]["message"]

    # The CLI: `shipline rollback --to` and `shipline releases`.
    back = _cli(
        server,
        bob,
        "rollback",
        "production",
        "--project",
        "app",
        "--to",
        str(oldest["release_id"]),
        "--wait",
        "--json",
    )
    assert back.returncode == 0, back.stderr
    assert json.loads(back.stdout)["state"] == "success"
    listed = _cli(server, viewer, "releases", "production", "--project", "app", "--json")
    assert listed.returncode == 0, listed.stderr
    items = json.loads(listed.stdout)["items"]
    assert [(e["release_id"], e["kind"], e["outcome"]) for e in items[:2]] == [
        (oldest["release_id"], "rollback", "success"),
        (broken["release_id"], "deploy", "rolled_back"),
    ]
    assert items[0]["actor"] == "bob"
    table = _cli(server, viewer, "releases", "production", "-p", "app")
    assert table.returncode == 0, table.stderr
    assert "rolled_back -> " in table.stdout and "health:" in table.stdout
    # Without --to, the rollback goes to the release live before the current one.
    again = server.call("POST", "/projects/app/environments/production/rollback", bob, json={})
    assert again.status_code == 201, again.text
    assert again.json()["release"]["id"] == live["release_id"]
    missing = _cli(server, viewer, "releases", "production", "--project", "nope")
    assert missing.returncode != 0 and "Traceback" not in missing.stderr
