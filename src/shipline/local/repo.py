"""The git repository a local run works in: root, HEAD, branch, changed paths, workflows."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from shipline.domain.errors import UsageError

WORKFLOW_DIRS = (".shipline/workflows", ".github/workflows")


@dataclass(frozen=True, slots=True)
class RepoInfo:
    root: Path
    sha: str
    branch: str | None
    repository: str


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)


def inspect_repo(directory: Path) -> RepoInfo:
    """Read what a local run needs from the repository at or above `directory`.

    Two git processes, run at the same time: one `rev-parse` for the root, HEAD and its
    branch, and the origin URL. (Changed paths cost a third, so `changed_paths` is asked
    for only when a path filter needs them.)
    """
    if not directory.is_dir():
        raise UsageError(f"{directory}: no such directory")
    try:
        remote = subprocess.Popen(
            ["git", "config", "--get", "remote.origin.url"],
            cwd=directory,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
    except FileNotFoundError as exc:
        raise UsageError("git is not installed: `shipline run` needs it") from exc
    with remote:
        top = _git(
            directory, "rev-parse", "--show-toplevel", "HEAD", "--symbolic-full-name", "HEAD"
        )
        remote_url = (remote.communicate()[0] or "").strip()
    lines = top.stdout.splitlines()
    if top.returncode != 0 or len(lines) < 2:
        if "not a git repository" in top.stderr:
            raise UsageError(
                f"{directory} is not inside a git repository "
                "(run `git init` and commit your workflow first)"
            )
        raise UsageError(
            f"{directory}: the repository has no commit yet "
            "(shipline runs the workflows at a commit: commit first)"
        )
    root, sha = Path(lines[0]), lines[1]
    # `--symbolic-full-name HEAD` prints `refs/heads/<branch>`, or `HEAD` when detached.
    head = lines[2] if len(lines) > 2 else ""
    branch = head.removeprefix("refs/heads/") if head.startswith("refs/heads/") else None
    return RepoInfo(root, sha, branch or None, repository_name(remote_url, root))


def changed_paths(repo: RepoInfo) -> tuple[str, ...] | None:
    """The paths HEAD's commit changes (all its files for a root commit); None if unknown."""
    diff = _git(
        repo.root, "diff-tree", "--root", "--no-commit-id", "-r", "--name-only", "-z", repo.sha
    )
    return tuple(p for p in diff.stdout.split("\0") if p) if diff.returncode == 0 else None


def repository_name(remote: str, root: Path) -> str:
    """`owner/name` from the origin URL, or `local/<directory>` without one."""
    if remote:
        path = remote.rstrip("/").removesuffix(".git")
        path = path.replace(":", "/")
        parts = [p for p in path.split("/") if p]
        if len(parts) >= 2:
            return f"{parts[-2]}/{parts[-1]}"
    return f"local/{root.name}"


def discover_workflows(root: Path) -> list[Path]:
    """Workflow files in `.shipline/workflows` and `.github/workflows`, sorted."""
    found: list[Path] = []
    for folder in WORKFLOW_DIRS:
        directory = root / folder
        if directory.is_dir():
            found.extend(
                sorted(
                    p for p in directory.iterdir() if p.suffix in (".yml", ".yaml") and p.is_file()
                )
            )
    return found
