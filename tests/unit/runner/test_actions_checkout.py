"""actions/checkout through the real GitSourceProvider, and the built-in action table."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from shipline.runner.actions import BUILTIN_ACTIONS, builtin_action
from shipline.runner.actions.checkout import CheckoutAction
from shipline.runner.ports import ActionCall, ActionFailed
from tests.unit.runner.action_calls import Job, Run

_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
    "PATH": "/usr/bin:/bin",
}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, env=_ENV, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "README").write_text("hi\n")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "one")
    return path, git(path, "rev-parse", "HEAD")


def checkout(job: Job, repo: tuple[Path, str], **inputs: str) -> ActionCall:
    github: dict[str, object] = {"sha": repo[1], "ref": "refs/heads/main"}
    call = job.call("actions/checkout@v4", inputs, repo=repo[0], github=github)
    asyncio.run(CheckoutAction().run(call))
    return call


def test_checks_out_the_runs_commit_into_the_workspace(
    tmp_path: Path, repo: tuple[Path, str]
) -> None:
    job = Run(tmp_path).job()
    call = checkout(job, repo)
    assert (job.workspace / "README").read_text() == "hi\n"
    assert call.outputs == {"ref": "refs/heads/main", "commit": repo[1]}
    assert git(job.workspace, "branch", "--show-current") == "main"


def test_path_and_clean(tmp_path: Path, repo: tuple[Path, str]) -> None:
    job = Run(tmp_path).job()
    job.call("warm-up")
    (job.workspace / "sub").mkdir()
    (job.workspace / "sub" / "stale").write_text("old")
    (job.workspace / "sub" / "link").symlink_to(tmp_path / "repo")
    checkout(job, repo, path="sub")
    assert (job.workspace / "sub" / "README").exists()
    assert not (job.workspace / "sub" / "stale").exists()
    assert (tmp_path / "repo" / "README").exists()  # the link was removed, not followed
    (job.workspace / "sub" / "keep").write_text("x")
    checkout(job, repo, path="sub", clean="false")
    assert (job.workspace / "sub" / "keep").exists()


@pytest.mark.parametrize("bad", ["../outside", "/etc", "a/../../x"])
def test_path_must_stay_in_the_workspace(tmp_path: Path, repo: tuple[Path, str], bad: str) -> None:
    with pytest.raises(ActionFailed, match="inside the workspace"):
        checkout(Run(tmp_path).job(), repo, path=bad)


def test_bad_fetch_depth(tmp_path: Path, repo: tuple[Path, str]) -> None:
    with pytest.raises(ActionFailed, match="fetch-depth"):
        checkout(Run(tmp_path).job(), repo, **{"fetch-depth": "-1"})


def test_builtin_action_table() -> None:
    for name in BUILTIN_ACTIONS:
        action = builtin_action(f"{name}@v4")
        assert action is not None and action.name == name
    assert builtin_action("Actions/Checkout@main") is not None
    assert builtin_action("actions/checkout@8f4b7f84864484a7bf31766abe9204da3cbe65b3") is not None
    assert builtin_action("actions/checkout") is None
    assert builtin_action("actions/checkout@") is None
    assert builtin_action("evil/checkout@v4") is None
    assert builtin_action("actions/setup-node@v4") is None
