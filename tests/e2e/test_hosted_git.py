"""A hosted repository end to end, as a user would: `shipline server`, the CLI client and
the real git client — clone, push a workflow, the run starts and succeeds; a protected
branch refuses a force-push with a readable message."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

from tests.e2e.test_server import Start, admin_token, client, start, wait_completed

__all__ = ["start"]  # the fixture, imported to be found

WORKFLOW = """
    on:
      push:
        branches: [main]
    jobs:
      build:
        runs-on: ubuntu-latest
        steps:
          - uses: actions/checkout@v4
          - run: echo "built $(cat version.txt) for $GITHUB_ACTOR"
"""


def git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL="/dev/null",
        GIT_TERMINAL_PROMPT="0",
        GIT_AUTHOR_NAME="Dev",
        GIT_AUTHOR_EMAIL="dev@example.com",
        GIT_COMMITTER_NAME="Dev",
        GIT_COMMITTER_EMAIL="dev@example.com",
    )
    result = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_clone_push_a_workflow_and_see_the_run_succeed(start: Start, tmp_path: Path) -> None:
    token = admin_token()
    server = start({"SHIPLINE_ADMIN_TOKEN": token})
    cli = client(server, token, tmp_path)
    assert cli("projects", "create", "app", "--repo", "hosted").returncode == 0
    protected = cli("protection", "set", "app", "main", "--push-role", "maintainer")
    assert protected.returncode == 0, protected.stderr
    assert "branch main: push maintainer and up, no force-push, no deletion" in protected.stdout

    host = server.url.removeprefix("http://")
    git(tmp_path, "clone", "-q", f"http://admin:{token}@{host}/git/app.git", "work")
    work = tmp_path / "work"
    git(work, "checkout", "-q", "-b", "main")
    (work / ".shipline" / "workflows").mkdir(parents=True)
    (work / ".shipline" / "workflows" / "ci.yml").write_text(textwrap.dedent(WORKFLOW))
    (work / "version.txt").write_text("1.2.3\n")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "pipeline")
    git(work, "push", "-q", "origin", "main")

    runs: list[dict[str, object]] = []
    for _ in range(200):
        listed = cli("runs", "list", "--project", "app", "--json")
        runs = json.loads(listed.stdout)["items"]
        if runs:
            break
    assert len(runs) == 1
    run = wait_completed(cli, int(str(runs[0]["id"])))
    assert (run["conclusion"], run["event"], run["trust"]) == ("success", "push", "trusted")
    logs = cli("runs", "logs", str(run["id"])).stdout
    assert "built 1.2.3 for admin" in logs

    # no one force-pushes a protected branch, and git push says why
    (work / "version.txt").write_text("2.0.0\n")
    git(work, "commit", "-qam", "bump")
    git(work, "push", "-q", "origin", "main")  # a fast-forward by an admin: fine
    git(work, "reset", "-q", "--hard", "HEAD~1")
    (work / "other.txt").write_text("x\n")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "diverged")
    forced = git(work, "push", "--force", "origin", "main", check=False)
    assert forced.returncode != 0
    assert (
        "remote: shipline: refusing refs/heads/main: branch main is protected: force-pushes "
        "(updates that are not fast-forwards) are refused"
    ) in forced.stderr
