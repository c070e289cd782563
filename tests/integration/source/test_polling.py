"""Polling a remote that sends no webhooks: `PUT /projects/{p}/polling` (and `shipline
projects poll`), then each poll fetches the remote with real git and raises push events
for branches and tags created, updated or deleted — once, however many servers poll."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from shipline.engine.polling import Poller
from shipline.wiring import build_poller
from tests.integration.source.conftest import Clone, Hosted, git_env

CI = """
    on:
      push:
        branches: [main, 'feature/**']
        tags: ['v*']
    jobs:
      build: {runs-on: ubuntu-latest, steps: [{run: echo build}]}
"""


def remote(hosted: Hosted, tmp_path: Path) -> Clone:
    """A bare repository standing in for a forge without webhooks, and a clone of it."""
    bare = tmp_path / "forge.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    home = tmp_path / "home-forge"
    home.mkdir()
    work = tmp_path / "forge-work"
    env = git_env(home)
    subprocess.run(["git", "clone", "-q", str(bare), str(work)], env=env, check=True)
    clone = Clone(work, env)
    clone.git("checkout", "-q", "-B", "main")
    clone.write(".shipline/workflows/ci.yml", CI)
    clone.commit("pipeline")
    clone.git("push", "-q", "origin", "main")
    response = hosted.api("POST", "/projects", json={"name": "app", "repository": str(bare)})
    assert response.status_code == 201, response.text
    return clone


def cli(hosted: Hosted, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPLINE_")}
    env.update(SHIPLINE_URL=hosted.url, SHIPLINE_TOKEN=hosted.admin_token)
    return subprocess.run(
        [sys.executable, "-m", "shipline", *args], env=env, capture_output=True, text=True
    )


def project(hosted: Hosted):  # type: ignore[no-untyped-def]
    with hosted.context.store.transaction(write=False) as tx:
        return tx.projects.get("app")


def test_polls_raise_push_events_for_each_ref_change(hosted: Hosted, tmp_path: Path) -> None:
    work = remote(hosted, tmp_path)
    shown = cli(hosted, "projects", "poll", "app")
    assert shown.returncode == 0 and "app: not polled" in shown.stdout
    set_ = cli(hosted, "projects", "poll", "app", "--interval", "30", "--json")
    assert set_.returncode == 0, set_.stderr
    assert '"interval": 30' in set_.stdout and '"refs": 1' in set_.stdout
    poller = build_poller(hosted.context)
    app = project(hosted)
    assert poller.poll(app) == []  # nothing moved since polling started

    old = work.git("rev-parse", "HEAD").stdout.strip()
    work.write("src/a.py", "1\n")
    new = work.commit("update main")
    work.git("push", "-q", "origin", "main")
    work.git("checkout", "-q", "-b", "feature/x")
    work.git("push", "-q", "origin", "feature/x")
    work.git("tag", "-a", "v1.0", "-m", "release")
    work.git("push", "-q", "origin", "v1.0")
    runs = poller.poll(app)
    assert sorted((r.ref, r.sha, r.event, r.actor) for r in runs) == [
        ("refs/heads/feature/x", new, "push", "poll"),
        ("refs/heads/main", new, "push", "poll"),
        ("refs/tags/v1.0", new, "push", "poll"),
    ]
    with hosted.context.store.transaction(write=False) as tx:
        _, event = tx.runs.definition(next(r.id for r in runs if r.ref == "refs/heads/main"))
    assert isinstance(event, dict) and (event["before"], event["after"]) == (old, new)
    assert poller.poll(app) == []  # each change is raised once

    work.git("push", "-q", "origin", "--delete", "feature/x")
    assert poller.poll(app) == []  # a deleted branch has no commit to run at ...
    with hosted.context.store.transaction(write=False) as tx:
        polled = tx.audit.page(action="source.poll", limit=20).items
    assert (polled[0].target, polled[0].data["change"]) == ("refs/heads/feature/x", "deleted")

    stopped = cli(hosted, "projects", "poll", "app", "--off")
    assert stopped.returncode == 0 and "not polled" in stopped.stdout
    assert poller.tick() == []


def test_many_servers_raise_each_change_once(hosted: Hosted, tmp_path: Path) -> None:
    work = remote(hosted, tmp_path)
    assert hosted.api("PUT", "/projects/app/polling", json={"interval": 10}).status_code == 200
    work.write("b.txt", "b\n")
    work.commit("b")
    work.git("push", "-q", "origin", "main")
    # two servers sharing the database, each with its own mirror view
    servers = [build_poller(hosted.context), build_poller(hosted.context)]
    assert all(isinstance(s, Poller) for s in servers)
    created = [servers[0].tick(), servers[1].tick()]
    assert sorted(len(c) for c in created) == [0, 1]
    assert [r.event for r in hosted.runs()] == ["push"]
    # the other server's next tick finds nothing new either
    assert servers[1].poll(project(hosted)) == []
    assert len(hosted.runs()) == 1


def test_polling_settings_are_checked(hosted: Hosted, tmp_path: Path) -> None:
    remote(hosted, tmp_path)
    hosted.project("hosted-app")
    refused = hosted.api("PUT", "/projects/hosted-app/polling", json={"interval": 60})
    assert refused.status_code == 422 and "hosted" in refused.json()["error"]["message"]
    assert hosted.api("PUT", "/projects/app/polling", json={"interval": 1}).status_code == 422
    viewer = hosted.user("viewer", "viewer")
    denied = hosted.api("PUT", "/projects/app/polling", token=viewer, json={"interval": 60})
    assert denied.status_code == 403
    assert hosted.api("GET", "/projects/app/polling", token=viewer).json()["interval"] is None
    both = cli(hosted, "projects", "poll", "app", "--interval", "60", "--off")
    assert both.returncode != 0 and "not both" in both.stderr
    # a remote that cannot be fetched is a clear error, not a traceback
    hosted.api("POST", "/projects", json={"name": "gone", "repository": str(tmp_path / "no")})
    gone = cli(hosted, "projects", "poll", "gone", "--interval", "60")
    assert gone.returncode != 0 and "cannot be fetched" in gone.stderr
    assert "Traceback" not in gone.stderr


def test_refs_named_like_options_are_only_names(hosted: Hosted, tmp_path: Path) -> None:
    """SECURITY-CASES 6 for polling: a branch named `--upload-pack=touch <canary>` on the
    remote is fetched and raised as a name; nothing runs it."""
    work = remote(hosted, tmp_path)
    assert hosted.api("PUT", "/projects/app/polling", json={"interval": 60}).status_code == 200
    canary = tmp_path / "pwned"
    evil = "refs/heads/--upload-pack=touch${IFS}" + str(canary)
    sha = work.git("rev-parse", "HEAD").stdout.strip()
    # git's porcelain refuses such names; a hostile forge has them anyway
    subprocess.run(
        ["git", "--git-dir", str(tmp_path / "forge.git"), "update-ref", evil, sha], check=True
    )
    build_poller(hosted.context).poll(project(hosted))
    with hosted.context.store.transaction(write=False) as tx:
        polled = tx.audit.page(action="source.poll", limit=20).items
    assert [(e.target, e.data["change"]) for e in polled] == [(evil, "created")]  # a name
    assert not canary.exists()
