"""GitSourceProvider against real git repositories made in tmp_path."""

from __future__ import annotations

import asyncio
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from shipline.domain.artifacts import ActionFailed
from shipline.scm.git_checkout import GitSourceProvider

_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "PATH": "/usr/local/bin:/usr/bin:/bin",
}


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=_ENV, check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


@dataclass
class Repo:
    path: Path
    commits: list[str]  # c1..c3 on main
    feature: str  # c4 on branch feature


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    commits = []
    for i in range(1, 4):
        (path / f"f{i}.txt").write_text(f"{i}\n")
        git(path, "add", ".")
        git(path, "commit", "-q", "-m", f"c{i}")
        commits.append(git(path, "rev-parse", "HEAD"))
        if i == 2:
            git(path, "tag", "-a", "v1", "-m", "release 1")
    git(path, "switch", "-q", "-c", "feature")
    (path / "feature.txt").write_text("f\n")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "c4")
    feature = git(path, "rev-parse", "HEAD")
    git(path, "switch", "-q", "main")
    return Repo(path, commits, feature)


def checkout(repo: Repo, dest: Path, *, sha: str = "", ref: str = "", depth: int = 1) -> str:
    logs: list[str] = []
    provider = GitSourceProvider(repo.path)
    return asyncio.run(
        provider.checkout(dest, sha=sha, ref=ref, fetch_depth=depth, log=logs.append)
    )


def test_depth_one_is_shallow_on_the_branch(repo: Repo, tmp_path: Path) -> None:
    dest = tmp_path / "ws"
    sha = checkout(repo, dest, sha=repo.commits[2], ref="refs/heads/main")
    assert sha == repo.commits[2]
    assert (dest / "f3.txt").read_text() == "3\n"
    assert git(dest, "rev-parse", "HEAD") == repo.commits[2]
    assert git(dest, "rev-list", "--count", "HEAD") == "1"
    assert git(dest, "rev-parse", "--is-shallow-repository") == "true"
    assert git(dest, "symbolic-ref", "HEAD") == "refs/heads/main"
    assert git(dest, "remote", "get-url", "origin") == repo.path.resolve().as_uri()
    assert git(dest, "status", "--porcelain") == ""
    assert git(dest, "tag") == ""


def test_depth_zero_has_all_history_and_tags(repo: Repo, tmp_path: Path) -> None:
    dest = tmp_path / "ws"
    checkout(repo, dest, sha=repo.commits[2], ref="refs/heads/main", depth=0)
    assert git(dest, "rev-list", "--count", "HEAD") == "3"
    assert git(dest, "rev-parse", "--is-shallow-repository") == "false"
    assert git(dest, "describe").startswith("v1-1-g")
    assert git(dest, "rev-parse", "origin/feature") == repo.feature


def test_depth_two(repo: Repo, tmp_path: Path) -> None:
    dest = tmp_path / "ws"
    checkout(repo, dest, sha=repo.commits[2], ref="refs/heads/main", depth=2)
    assert git(dest, "rev-list", "--count", "HEAD") == "2"


def test_a_branch_name_is_resolved(repo: Repo, tmp_path: Path) -> None:
    dest = tmp_path / "ws"
    assert checkout(repo, dest, ref="feature") == repo.feature
    assert (dest / "feature.txt").exists()
    assert git(dest, "symbolic-ref", "HEAD") == "refs/heads/feature"


def test_an_annotated_tag_checks_out_its_commit_detached(repo: Repo, tmp_path: Path) -> None:
    dest = tmp_path / "ws"
    assert checkout(repo, dest, ref="v1") == repo.commits[1]
    assert not (dest / "f3.txt").exists()
    assert git(dest, "rev-parse", "HEAD") == repo.commits[1]
    with pytest.raises(subprocess.CalledProcessError):
        git(dest, "symbolic-ref", "-q", "HEAD")  # detached
    assert git(dest, "describe") == "v1"


def test_a_commit_as_ref_is_detached(repo: Repo, tmp_path: Path) -> None:
    dest = tmp_path / "ws"
    assert checkout(repo, dest, ref=repo.commits[0]) == repo.commits[0]
    assert sorted(p.name for p in dest.iterdir()) == [".git", "f1.txt"]


def test_existing_working_copy_is_updated_and_untracked_files_stay(
    repo: Repo, tmp_path: Path
) -> None:
    dest = tmp_path / "ws"
    checkout(repo, dest, sha=repo.commits[0], ref="refs/heads/main")
    (dest / "untracked.txt").write_text("mine")
    (dest / "f1.txt").write_text("changed")
    checkout(repo, dest, sha=repo.commits[2], ref="refs/heads/main", depth=0)
    assert (dest / "f1.txt").read_text() == "1\n"
    assert (dest / "untracked.txt").read_text() == "mine"
    assert git(dest, "rev-list", "--count", "HEAD") == "3"


def test_unknown_ref_and_commit_fail_with_gits_message(repo: Repo, tmp_path: Path) -> None:
    with pytest.raises(ActionFailed, match="'nope' not found"):
        checkout(repo, tmp_path / "a", ref="nope")
    with pytest.raises(ActionFailed, match=r"git fetch failed .*: .+"):
        checkout(repo, tmp_path / "b", sha="0" * 40, ref="refs/heads/main")
    with pytest.raises(ActionFailed, match="not a full commit SHA"):
        checkout(repo, tmp_path / "c", sha="HEAD~1", ref="refs/heads/main")


def test_option_like_refs_are_just_names(repo: Repo, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    # Not a valid ref name (a space): refused before git sees it.
    for bad in (f"--upload-pack=touch {marker}", f"refs/heads/--upload-pack=touch {marker}"):
        with pytest.raises(ActionFailed):
            checkout(repo, tmp_path / "x", ref=bad)
        with pytest.raises(ActionFailed):
            checkout(repo, tmp_path / "y", sha=repo.commits[0], ref=bad)
    # A valid ref name that a shell would run: checked out as a branch, nothing run.
    branch = f"--upload-pack=touch${{IFS}}{marker}"
    git(repo.path, "update-ref", f"refs/heads/{branch}", repo.commits[0])
    dest = tmp_path / "ws"
    assert checkout(repo, dest, ref=branch) == repo.commits[0]
    assert git(dest, "symbolic-ref", "HEAD") == f"refs/heads/{branch}"
    checkout(repo, tmp_path / "ws2", sha=repo.commits[0], ref=f"refs/heads/{branch}", depth=0)
    assert not marker.exists()
    assert not Path("/tmp/pwned").exists()


def test_a_planted_git_config_never_runs_in_the_runner(repo: Repo, tmp_path: Path) -> None:
    """A step owns the workspace and can write `.git`: a second checkout must not run what
    it planted (filter drivers, includes, a `gitdir:` file pointing elsewhere)."""
    dest = tmp_path / "ws"
    checkout(repo, dest, sha=repo.commits[2], ref="refs/heads/main")
    marker = tmp_path / "ran"
    (dest / ".git" / "config").write_text(
        f'[filter "evil"]\n\tsmudge = "touch {marker}; cat"\n\tclean = cat\n'
        f"[include]\n\tpath = {tmp_path / 'more.cfg'}\n"
    )
    (tmp_path / "more.cfg").write_text(f'[core]\n\tsshCommand = "touch {marker}"\n')
    (dest / ".git" / "info").mkdir(exist_ok=True)
    (dest / ".git" / "info" / "attributes").write_text("* filter=evil\n")
    (dest / "f1.txt").write_text("changed by a step\n")

    sha = checkout(repo, dest, sha=repo.commits[1], ref="refs/heads/main")

    assert sha == repo.commits[1]
    assert not marker.exists()
    assert (dest / "f1.txt").read_text() == "1\n"
    assert "evil" not in (dest / ".git" / "config").read_text()

    # `.git` replaced by a `gitdir:` file aiming at another repository: not followed.
    other = tmp_path / "other.git"
    git(tmp_path, "init", "-q", "--bare", str(other))
    (dest / ".git").rename(tmp_path / "old-git")
    (dest / ".git").write_text(f"gitdir: {other}\n")
    checkout(repo, dest, sha=repo.commits[2], ref="refs/heads/main")
    assert (dest / ".git").is_dir()
    assert git(other, "rev-parse", "--all") == ""
