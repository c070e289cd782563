"""The approval flow with a real `shipline server` and the real CLI: a deploy job waits
(`approvals list`), its initiator's `approve` is refused (self-review), a maintainer's is
accepted, the `shipline/deploy` step asks the server's controller with a verified release;
`reject` fails a job with the reason; a branch the environment does not allow is refused."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import Repo
from tests.e2e.test_server import Start, admin_token, client, start

__all__ = ["start"]  # the fixture, imported to be found

WORKFLOW = """
    on: [push, workflow_dispatch]
    jobs:
      build:
        runs-on: ubuntu-latest
        steps:
          - run: mkdir -p dist && echo "v1" > dist/version.txt
          - uses: actions/upload-artifact@v4
            with: {name: site, path: dist}
      prod:
        needs: build
        runs-on: ubuntu-latest
        environment: {name: production, url: "https://example.test"}
        steps:
          - uses: shipline/deploy@v1
            with: {artifact: site}
"""
# Password hashing is slow on purpose; a loaded test machine is slower still.
TIMEOUT = 60.0
# A whole environment file (the server reads it with the controller's parser). Its target
# is unreachable on purpose: the rollout fails without starting anything on this machine.
PRODUCTION = """
    target:
      ssh:
        # Unreachable on purpose (port 1): these tests stop at the gates.
        hosts: [{host: 127.0.0.1, port: 1, fingerprint: "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"}]
        user: deploy
        key_secret: DEPLOY_KEY
        path: /srv/app
        restart: ./restart
        service_port: 8000
    protection:
      reviewers: {roles: [maintainer]}
      branches: [main]
"""


def _user(url: str, admin: str, name: str, role: str) -> str:
    headers = {"Authorization": f"Bearer {admin}"}
    password = f"pw-{name}-12345678"
    made = httpx.post(
        f"{url}/api/v1/users",
        json={"name": name, "password": password},
        headers=headers,
        timeout=TIMEOUT,
    )
    assert made.status_code == 201, made.text
    member = httpx.put(
        f"{url}/api/v1/projects/app/members/{name}",
        json={"role": role},
        headers=headers,
        timeout=TIMEOUT,
    )
    assert member.status_code == 200, member.text
    login = httpx.post(
        f"{url}/api/v1/login", json={"name": name, "password": password}, timeout=TIMEOUT
    )
    assert login.status_code == 200, login.text
    token: str = login.json()["token"]
    return token


def _wait(check: Any, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError("timed out")


def test_approvals_through_the_cli(start: Start, tmp_path: Path) -> None:
    admin = admin_token()
    server = start({"SHIPLINE_ADMIN_TOKEN": admin})
    cli = client(server, admin, tmp_path)
    repo = Repo(tmp_path / "repo")
    repo.workflow(WORKFLOW)
    repo.write(".shipline/environments/production.yml", PRODUCTION)
    repo.commit("pipeline")
    assert cli("projects", "create", "app", "--repo", "repo").returncode == 0
    alice = _user(server.url, admin, "alice", "maintainer")
    bob = _user(server.url, admin, "bob", "maintainer")

    triggered = cli("projects", "trigger", "app", "--json", token_env=alice)
    assert triggered.returncode == 0, triggered.stderr
    run_id = json.loads(triggered.stdout)["items"][0]["id"]

    def waiting() -> list[dict[str, Any]] | None:
        listed = cli("approvals", "list", "--json", token_env=bob)
        assert listed.returncode == 0, listed.stderr
        items: list[dict[str, Any]] = json.loads(listed.stdout)["items"]
        return items or None

    [item] = _wait(waiting)
    assert (item["run_id"], item["environment"], item["actor"]) == (run_id, "production", "alice")
    shown = cli("runs", "show", str(run_id), "--json")
    jobs = {j["key"]: j for j in json.loads(shown.stdout)["jobs"]}
    assert jobs["prod"]["status"] == "waiting"
    table = cli("approvals", "list", token_env=bob)
    assert "production" in table.stdout and "0/1" in table.stdout

    own = cli("approve", str(run_id), "--env", "production", token_env=alice)
    assert own.returncode != 0
    assert "self-review" in own.stderr
    ok = cli("approve", str(run_id), "--env", "production", "-m", "lgtm", token_env=bob)
    assert ok.returncode == 0, ok.stderr
    assert f"approved job {jobs['prod']['id']} of run {run_id} for production: released" in (
        ok.stdout
    )

    def deployed() -> list[dict[str, Any]] | None:
        listed = cli("deployments", "list", "app", "--env", "production", "--json")
        assert listed.returncode == 0, listed.stderr
        items: list[dict[str, Any]] = json.loads(listed.stdout)["items"]
        return items if items and items[0]["state"] not in ("queued", "in_progress") else None

    [deployment] = _wait(deployed)
    assert deployment["run_id"] == run_id
    assert deployment["release"]["artifact"] == "site"
    assert deployment["release"]["digest"].startswith("sha256:")
    assert deployment["release"]["provenance"].startswith("sha256:")
    shown = cli("deployments", "show", str(deployment["id"]))
    assert f"release {deployment['release']['id']} (site," in shown.stdout

    trail = cli("audit", "export", "-o", str(tmp_path / "trail.jsonl"))
    assert trail.returncode == 0, trail.stderr
    events = [json.loads(line) for line in (tmp_path / "trail.jsonl").read_text().splitlines()]
    approvals = [(e["actor"], e["decision"]) for e in events if e["action"] == "deployment.approve"]
    assert approvals == [("alice", "denied"), ("bob", "allowed")]
    assert any(e["action"] == "deployment.deploy" for e in events)


def test_reject_and_a_disallowed_branch(start: Start, tmp_path: Path) -> None:
    admin = admin_token()
    server = start({"SHIPLINE_ADMIN_TOKEN": admin})
    cli = client(server, admin, tmp_path)
    repo = Repo(tmp_path / "repo")
    repo.workflow(WORKFLOW)
    repo.write(".shipline/environments/production.yml", PRODUCTION)
    repo.commit("pipeline")
    repo.git("branch", "feature")
    assert cli("projects", "create", "app", "--repo", "repo").returncode == 0
    alice = _user(server.url, admin, "alice", "developer")

    on_branch = cli("projects", "trigger", "app", "--ref", "feature", "--json", token_env=alice)
    assert on_branch.returncode == 0, on_branch.stderr
    branch_run = json.loads(on_branch.stdout)["items"][0]["id"]
    main = cli("projects", "trigger", "app", "--json", token_env=alice)
    main_run = json.loads(main.stdout)["items"][0]["id"]
    _wait(lambda: cli("approvals", "list", "--json").stdout.count('"run_id"') == 1)
    rejected = cli("reject", str(main_run), "--env", "production", "-m", "freeze")
    assert rejected.returncode == 0, rejected.stderr

    def completed(run_id: int) -> dict[str, Any] | None:
        run = json.loads(cli("runs", "show", str(run_id), "--json").stdout)
        return run if run["status"] == "completed" else None

    for run_id, reason in (
        (branch_run, "branch 'feature' may not deploy here"),
        (main_run, "rejected by admin: freeze"),
    ):
        run = _wait(lambda r=run_id: completed(r))
        prod = next(j for j in run["jobs"] if j["key"] == "prod")
        assert prod["conclusion"] == "failure"
        assert reason in prod["error"]
