"""A project's repository as the server sees it: a bare mirror it fetches into, from which
it resolves refs and reads workflow files at a commit — never from a client.

Every git command gets refs after `--end-of-options` (or as `<sha>:<path>` objects built
from a verified sha), so a ref named `--upload-pack=...` is only a name.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

from shipline.domain.errors import ShiplineError

WORKFLOW_DIRS = (".shipline/workflows", ".github/workflows")
_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
_EXTRA_REF = re.compile(r"^refs/(pull|merge-requests)/[0-9]{1,10}/(head|merge)$")


class RepositoryError(ShiplineError):
    """git could not do what was asked; the message says what and why."""


def git_env() -> dict[str, str]:
    """This process's environment without GIT_* variables, with no prompts and no system or
    global git configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_TERMINAL_PROMPT="0",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL="/dev/null",
    )
    return env


class GitRepository:
    """A bare mirror of `source` (a local path or a git URL) at `mirror`."""

    def __init__(self, source: str, mirror: Path) -> None:
        self.source = source
        self.mirror = mirror

    def _git(self, *args: str, cwd: Path | None = None) -> str:
        result = subprocess.run(
            ["git", *args],
            cwd=cwd or self.mirror,
            env=git_env(),
            capture_output=True,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            message = result.stderr.decode(errors="replace").strip().splitlines()
            raise RepositoryError(f"git {args[0]}: {message[-1] if message else 'failed'}")
        return result.stdout.decode(errors="replace")

    def fetch(self, extra: Sequence[str] = ()) -> None:
        """Create the mirror on first use, then bring every branch and tag up to date.

        `extra`: more refs to fetch as they are named (`refs/pull/7/head`: a fork's pull
        request head, which forges publish in the base repository)."""
        for ref in extra:
            if not _EXTRA_REF.match(ref):
                raise RepositoryError(f"not a ref the server fetches: {ref!r}")
        if not (self.mirror / "HEAD").exists():
            self.mirror.parent.mkdir(parents=True, exist_ok=True)
            self._git("init", "--bare", "--quiet", str(self.mirror), cwd=self.mirror.parent)
        self._git(
            "fetch",
            "--quiet",
            "--prune",
            "--force",
            "--no-tags",
            "--end-of-options",
            self.source,
            "+refs/heads/*:refs/heads/*",
            "+refs/tags/*:refs/tags/*",
            *(f"+{ref}:{ref}" for ref in extra),
        )

    def fetch_optional(self, ref: str) -> bool:
        """Fetch one more ref a forge may or may not publish (`refs/pull/7/merge`: none
        while the pull request conflicts); whether it was there. A stale copy is removed."""
        if not _EXTRA_REF.match(ref):
            raise RepositoryError(f"not a ref the server fetches: {ref!r}")
        try:
            self._git(
                "fetch",
                "--quiet",
                "--force",
                "--no-tags",
                "--end-of-options",
                self.source,
                f"+{ref}:{ref}",
            )
        except RepositoryError:
            self._git("update-ref", "-d", "--end-of-options", ref)
            return False
        return True

    def branches_and_tags(self) -> dict[str, str]:
        """Every branch and tag of the mirror with the commit it points at (an annotated
        tag's commit, not the tag object)."""
        out = self._git(
            "for-each-ref",
            "--format=%(objectname) %(*objectname) %(refname)",
            "refs/heads/",
            "refs/tags/",
        )
        refs: dict[str, str] = {}
        for line in out.splitlines():
            parts = line.split(" ", 2)
            if len(parts) == 3:
                obj, peeled, ref = parts
                refs[ref] = peeled or obj
        return refs

    def resolve(self, ref: str) -> tuple[str, str]:
        """(full ref, commit sha) for a branch, a tag, a full ref or a sha."""
        if _SHA.match(ref):
            sha = self._git(
                "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"
            ).strip()
            return ref, sha
        candidates = [ref] if ref.startswith("refs/") else [f"refs/heads/{ref}", f"refs/tags/{ref}"]
        for full in candidates:
            try:
                sha = self._git(
                    "rev-parse", "--verify", "--quiet", "--end-of-options", f"{full}^{{commit}}"
                ).strip()
            except RepositoryError:
                continue
            return full, sha
        raise RepositoryError(f"no branch, tag or commit {ref!r} in the repository")

    def workflow_files(self, sha: str) -> list[str]:
        """Paths of the workflow files at a commit, sorted."""
        self._check_sha(sha)
        out = self._git("ls-tree", "-r", "--name-only", "-z", sha, "--", *WORKFLOW_DIRS)
        return sorted(
            p
            for p in out.split("\0")
            if p.endswith((".yml", ".yaml")) and p.rsplit("/", 1)[0] in WORKFLOW_DIRS
        )

    def read(self, sha: str, path: str) -> str:
        """A file's text at a commit."""
        self._check_sha(sha)
        if path.startswith("-") or ".." in path.split("/"):
            raise RepositoryError(f"invalid path {path!r}")
        return self._git("cat-file", "blob", f"{sha}:{path}")

    def bundle(self, sha: str, dest: Path) -> None:
        """Write a git bundle of every branch and tag to `dest`, fetching first when the
        mirror does not have commit `sha` yet (the run was created by another server)."""
        self._check_sha(sha)
        try:
            self._git("cat-file", "-e", f"{sha}^{{commit}}")
        except RepositoryError:
            self.fetch()
        self._git("bundle", "create", "--quiet", str(dest), "--all")

    def changed_paths(self, before: str | None, sha: str) -> tuple[str, ...] | None:
        """Paths changed between two commits (None when `before` is unknown)."""
        self._check_sha(sha)
        if before is None or set(before) == {"0"}:
            out = self._git("diff-tree", "--root", "--no-commit-id", "-r", "--name-only", "-z", sha)
        else:
            self._check_sha(before)
            out = self._git("diff", "--name-only", "-z", before, sha, "--")
        return tuple(p for p in out.split("\0") if p)

    def merge_base(self, a: str, b: str) -> str | None:
        """The best common ancestor of two commits (None: unrelated histories)."""
        self._check_sha(a)
        self._check_sha(b)
        try:
            return self._git("merge-base", "--end-of-options", a, b).strip() or None
        except RepositoryError:
            return None

    def has_commit(self, sha: str) -> bool:
        """Whether the mirror holds commit `sha`."""
        self._check_sha(sha)
        try:
            self._git("cat-file", "-e", f"{sha}^{{commit}}")
        except RepositoryError:
            return False
        return True

    @staticmethod
    def _check_sha(sha: str) -> None:
        if not _SHA.match(sha):
            raise RepositoryError(f"not a commit sha: {sha!r}")
