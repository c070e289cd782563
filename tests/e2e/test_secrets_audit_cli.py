"""Secrets and the audit trail with a real `shipline server` and the real CLI: the value
goes in on stdin, never comes back, reaches the job masked; `secrets rotate-key` keeps it
usable; `audit verify` catches a row edited in the database file."""

from __future__ import annotations

import json
import os
import secrets as pysecrets
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import Repo
from tests.e2e.test_server import Start, admin_token, client, start, wait_completed

__all__ = ["start"]  # the fixture, imported to be found

WORKFLOW = """
    on: [push, workflow_dispatch]
    jobs:
      use:
        runs-on: ubuntu-latest
        env:
          TOKEN: ${{ secrets.API_TOKEN }}
        steps:
          - run: |
              echo "token: $TOKEN"
              echo "length: ${#TOKEN}"
"""


def stdin_cli(
    server_url: str, token: str, cwd: Path, data: str, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPLINE_")}
    env.update({"SHIPLINE_URL": server_url, "SHIPLINE_TOKEN": token})
    return subprocess.run(
        [sys.executable, "-m", "shipline", *args],
        cwd=cwd,
        env=env,
        input=data,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_secrets_through_the_cli_rotation_and_audit_verify(start: Start, tmp_path: Path) -> None:
    token = admin_token()
    state = tmp_path / "state"
    server = start({"SHIPLINE_ADMIN_TOKEN": token}, state)
    cli = client(server, token, tmp_path)
    repo = Repo(tmp_path / "repo")
    repo.workflow(WORKFLOW)
    repo.commit("pipeline")
    assert cli("projects", "create", "app", "--repo", "repo").returncode == 0
    value = "canary-" + pysecrets.token_hex(32)

    short = stdin_cli(server.url, token, tmp_path, "abc\n", "secrets", "set", "app", "PIN")
    assert short.returncode != 0
    assert "at least 4 characters" in short.stderr
    done = stdin_cli(
        server.url, token, tmp_path, value + "\n", "secrets", "set", "app", "api_token"
    )
    assert done.returncode == 0, done.stderr
    assert "set secret API_TOKEN of app (the project)" in done.stdout
    assert value not in done.stdout + done.stderr
    listed = cli("secrets", "list", "app", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [s["name"] for s in json.loads(listed.stdout)["items"]] == ["API_TOKEN"]
    assert value not in listed.stdout
    key = state / "secrets.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600

    def run_once() -> str:
        triggered = cli("projects", "trigger", "app", "--json")
        assert triggered.returncode == 0, triggered.stderr
        run_id = json.loads(triggered.stdout)["items"][0]["id"]
        run = wait_completed(cli, run_id)
        assert run["conclusion"] == "success", run
        logs = cli("runs", "logs", str(run_id))
        assert value not in logs.stdout
        return logs.stdout

    logs = run_once()
    assert "token: ***" in logs
    assert f"length: {len(value)}" in logs

    # Rotation while the server runs: it reads the new key on the next use.
    old_key = key.read_text()
    rotated = subprocess.run(
        [sys.executable, "-m", "shipline", "secrets", "rotate-key", "--state-dir", str(state)],
        env={k: v for k, v in os.environ.items() if not k.startswith("SHIPLINE_")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert rotated.returncode == 0, rotated.stderr
    assert "re-sealed 1 secret(s)" in rotated.stdout
    assert key.read_text() != old_key
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert f"length: {len(value)}" in run_once()

    verified = cli("audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "audit trail intact" in verified.stdout
    exported = cli("audit", "export", "-o", str(tmp_path / "trail.jsonl"))
    assert exported.returncode == 0, exported.stderr
    trail = (tmp_path / "trail.jsonl").read_text()
    assert value not in trail
    actions = [json.loads(line)["action"] for line in trail.splitlines()]
    assert {"secret.set", "secret.deliver", "secret.rotate_key"} <= set(actions)
    assert cli("audit", "verify", "--file", str(tmp_path / "trail.jsonl")).returncode == 0
    # The server signed the head when it started: the export's checkpoint verifies offline.
    assert " 0 signed checkpoint" not in verified.stdout
    (tmp_path / "server.pub").write_text(cli("keys", "public").stdout)
    offline = cli(
        "audit",
        "verify",
        "--file",
        str(tmp_path / "trail.jsonl"),
        "--key",
        str(tmp_path / "server.pub"),
        "--json",
    )
    assert offline.returncode == 0, offline.stdout + offline.stderr
    assert json.loads(offline.stdout)["checkpoints"] >= 1

    # Someone with the database file rewrites who set the secret.
    with sqlite3.connect(state / "shipline.db") as db:
        (target,) = db.execute(
            "SELECT id FROM audit_events WHERE action = 'secret.set' AND decision = 'allowed'"
        ).fetchone()
        db.execute("UPDATE audit_events SET actor = 'nobody' WHERE id = ?", (target,))
    broken = cli("audit", "verify", "--json")
    assert broken.returncode == 1
    verdict = json.loads(broken.stdout)
    assert verdict["ok"] is False
    assert verdict["broken"]["id"] == target
    assert "edited" in verdict["broken"]["reason"]
