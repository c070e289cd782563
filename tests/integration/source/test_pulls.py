"""Hosted pull requests: opened with `shipline pr open`, synchronized by pushes to the
head branch, closed — each raising a `pull_request` event with GitHub's fields."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from shipline.domain.records import Trust
from tests.integration.source.conftest import Hosted

PR = """
    on:
      pull_request:
        types: [opened, synchronize, closed]
        paths: ['src/**']
    jobs:
      check: {runs-on: ubuntu-latest, steps: [{run: echo check}]}
"""


def cli(hosted: Hosted, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPLINE_")}
    env.update(SHIPLINE_URL=hosted.url, SHIPLINE_TOKEN=token, SHIPLINE_PROJECT="app")
    return subprocess.run(
        [sys.executable, "-m", "shipline", *args], env=env, capture_output=True, text=True
    )


def test_a_pull_request_s_life_raises_its_events(hosted: Hosted) -> None:
    hosted.project()
    dev = hosted.user("dev", "developer")
    work = hosted.clone("dev", dev)
    work.write(".shipline/workflows/pr.yml", PR)
    work.write("README.md", "hi\n")
    work.commit("pipeline")
    work.git("push", "-q", "origin", "main")
    work.git("checkout", "-q", "-b", "feature")
    work.write("src/app.py", "print(1)\n")
    head = work.commit("feature")
    work.git("push", "-q", "origin", "feature")

    opened = cli(hosted, dev, "pr", "open", "--head", "feature", "--base", "main", "--json")
    assert opened.returncode == 0, opened.stderr
    pull = json.loads(opened.stdout)
    assert (pull["number"], pull["state"], pull["head_sha"], pull["author"]) == (
        1,
        "open",
        head,
        "dev",
    )
    (run,) = [r for r in hosted.runs() if r.id in pull["runs"]]
    assert (run.event, run.ref, run.sha, run.trust) == (
        "pull_request",
        "refs/pull/1/head",
        head,
        Trust.TRUSTED,
    )
    with hosted.context.store.transaction(write=False) as tx:
        _, event = tx.runs.definition(run.id)
    assert isinstance(event, dict)
    assert event["action"] == "opened" and event["number"] == 1
    assert event["pull_request"]["head"]["ref"] == "feature"  # type: ignore[index]
    assert event["pull_request"]["base"]["ref"] == "main"  # type: ignore[index]
    shown = hosted.api("GET", f"/runs/{run.id}").json()
    assert shown["trust"] == "trusted"

    again = cli(hosted, dev, "pr", "open", "--head", "feature")
    assert again.returncode != 0 and "open already" in again.stderr

    before = len(hosted.runs())
    work.write("src/app.py", "print(2)\n")
    second = work.commit("more")
    work.git("push", "-q", "origin", "feature")
    runs = hosted.wait_runs(before + 1)
    sync = runs[-1]
    with hosted.context.store.transaction(write=False) as tx:
        _, event = tx.runs.definition(sync.id)
    assert isinstance(event, dict)
    assert (sync.sha, event["action"], event["before"]) == (second, "synchronize", head)
    assert hosted.api("GET", "/projects/app/pulls/1").json()["head_sha"] == second

    closed = cli(hosted, dev, "pr", "close", "1")
    assert closed.returncode == 0, closed.stderr
    assert "closed #1 feature" in closed.stdout
    with hosted.context.store.transaction(write=False) as tx:
        _, event = tx.runs.definition(hosted.runs()[-1].id)
    assert isinstance(event, dict) and event["action"] == "closed"

    listed = cli(hosted, dev, "pr", "list")
    assert listed.stdout.startswith("#1 feature (feature -> main, closed")


def test_pull_requests_need_an_existing_branch_and_a_developer(hosted: Hosted) -> None:
    hosted.project()
    viewer = hosted.user("viewer", "viewer")
    response = hosted.api("POST", "/projects/app/pulls", json={"head": "nope"})
    assert response.status_code == 422 and response.json()["error"]["field"] == "head"
    denied = hosted.api("POST", "/projects/app/pulls", token=viewer, json={"head": "x"})
    assert denied.status_code == 403
