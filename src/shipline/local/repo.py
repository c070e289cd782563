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
    changed_paths: tuple[str, ...] | None


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)


def inspect_repo(directory: Path) -> RepoInfo:
    """Read what a local run needs from the repository at or above `directory`."""
    if not directory.is_dir():
        raise UsageError(f"{directory}: no such directory")
    try:
        top = _git(directory, "rev-parse", "--show-toplevel", "HEAD")
    except FileNotFoundError as exc:
        raise UsageError("git is not installed: `shipline run` needs it") from exc
    lines = top.stdout.split()
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
    branch_out = _git(root, "symbolic-ref", "-q", "--short", "HEAD")
    branch = branch_out.stdout.strip() or None
    diff = _git(root, "diff-tree", "--root", "--no-commit-id", "-r", "--name-only", "-z", sha)
    changed = tuple(p for p in diff.stdout.split("\0") if p) if diff.returncode == 0 else None
    remote = _git(root, "config", "--get", "remote.origin.url").stdout.strip()
    return RepoInfo(root, sha, branch, repository_name(remote, root), changed)


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
