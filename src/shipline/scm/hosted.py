"""Repositories the server hosts: bare repositories under the state directory, served over
git's smart HTTP protocol by `git http-backend` (see `server.git_http`).

Hooks live outside the repositories, in a directory of the server's, and every git process
the server starts for a push is told to use them (`core.hooksPath` through
`GIT_CONFIG_COUNT`), so no repository's own configuration can switch them off.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from shipline.scm.receive_hook import REPORT_ENV, RULES_ENV
from shipline.scm.repository import RepositoryError, git_env

_SHA = re.compile(r"^[0-9a-f]{40}$")
# The pre-receive hook. When the project has no protection rule (the server sets the rules
# to `[]`) and every ref pushed is a branch or a tag, nothing can be refused: the push goes
# ahead without starting an interpreter (a push's largest cost). Anything else is decided
# by `receive_hook` with the same input.
_PRE_RECEIVE = """\
if [ "${{{rules}-}}" = "[]" ]; then
  input=$(cat)
  plain=1
  while read -r old new ref; do
    case "$ref" in
      "") ;;
      refs/heads/* | refs/tags/*) ;;
      *) plain=0 ;;
    esac
  done <<EOF
$input
EOF
  [ "$plain" = 1 ] && exit 0
  printf '%s\\n' "$input" | {command}
  exit $?
fi
exec {command}
"""
_PASSED = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ")


class HostedRepositories:
    """The bare repositories of hosted projects, at `<state>/git/repos/<project id>.git`;
    the hooks in `<state>/git/hooks`, a push's report file in `<state>/git/tmp`."""

    def __init__(self, state_dir: Path, python: str = sys.executable) -> None:
        self.root = state_dir / "git" / "repos"
        self.hooks_dir = state_dir / "git" / "hooks"
        self.work_dir = state_dir / "git" / "tmp"
        self.python = python

    def path(self, project_id: int) -> Path:
        return self.root / f"{project_id}.git"

    def install_hooks(self) -> None:
        """(Re)write the hook scripts: they run this interpreter's `receive_hook`."""
        self.hooks_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        command = shlex.join([self.python, "-I", "-m", "shipline.scm.receive_hook", "pre-receive"])
        scripts = {
            "pre-receive": _PRE_RECEIVE.format(rules=RULES_ENV, command=command),
            # Only appends what git reports; in shell, to spare an interpreter's start.
            "post-receive": f'[ -n "${REPORT_ENV}" ] && cat >> "${REPORT_ENV}"\nexit 0\n',
        }
        for name, script in scripts.items():
            hook = self.hooks_dir / name
            hook.write_text(f"#!/bin/sh\n{script}", encoding="utf-8")
            hook.chmod(0o700)

    def ensure(self, project_id: int, default_branch: str) -> Path:
        """The project's repository, created (empty, HEAD on `default_branch`) if missing."""
        path = self.path(project_id)
        if (path / "HEAD").exists():
            return path
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._git("init", "--bare", "--quiet", f"--initial-branch={default_branch}", str(path))
        for key, value in (
            ("http.receivepack", "true"),
            ("http.uploadpack", "true"),
            ("receive.fsckObjects", "true"),
            ("receive.denyNonFastForwards", "false"),
            ("core.logAllRefUpdates", "true"),
        ):
            self._git("config", "--file", str(path / "config"), key, value)
        return path

    def backend_env(
        self,
        project_id: int,
        *,
        rules: str | None = None,
        report: Path | None = None,
    ) -> dict[str, str]:
        """The environment of a `git http-backend` process serving the project: git's own
        variables only, the forced hooks path, and the push's rules and report file."""
        # Only what git and the hooks need: the server's own variables (tokens, database
        # credentials) stay out of every process a push starts.
        env = {k: v for k, v in os.environ.items() if k in _PASSED}
        env.update(
            GIT_TERMINAL_PROMPT="0",
            GIT_CONFIG_NOSYSTEM="1",
            GIT_CONFIG_GLOBAL="/dev/null",
            GIT_PROJECT_ROOT=str(self.root),
            GIT_HTTP_EXPORT_ALL="1",
            GIT_CONFIG_COUNT="1",
            GIT_CONFIG_KEY_0="core.hooksPath",
            GIT_CONFIG_VALUE_0=str(self.hooks_dir),
        )
        if rules is not None:
            env[RULES_ENV] = rules
        if report is not None:
            env[REPORT_ENV] = str(report)
        return env

    def write_pull_refs(
        self, project_id: int, number: int, head_sha: str, base_sha: str
    ) -> str | None:
        """`PullRefs.write` for the project's repository."""
        return PullRefs(self).write(project_id, number, head_sha, base_sha)

    @staticmethod
    def _git(*args: str) -> None:
        result = subprocess.run(
            ["git", *args],
            env=git_env(),
            capture_output=True,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            raise RepositoryError(f"git {args[0]}: {result.stderr.decode(errors='replace')}")


class PullRefs:
    """`refs/pull/<n>/head` and `refs/pull/<n>/merge` of hosted pull requests, written in
    the hosted repository (clients cannot push them: `plan.protection` refuses every ref
    outside `refs/heads/` and `refs/tags/`)."""

    def __init__(self, hosted: HostedRepositories) -> None:
        self._hosted = hosted

    def write(self, project_id: int, number: int, head_sha: str, base_sha: str) -> str | None:
        """Point `refs/pull/<n>/head` at the head commit and `refs/pull/<n>/merge` at a test
        merge of head into base; the merge commit's sha, or None when head and base
        conflict (the merge ref is then removed)."""
        repo = str(self._hosted.path(project_id))
        for sha in (head_sha, base_sha):
            if not _SHA.match(sha):
                raise RepositoryError(f"not a commit sha: {sha!r}")
        prefix = f"refs/pull/{int(number)}"
        _run("--git-dir", repo, "update-ref", "--end-of-options", f"{prefix}/head", head_sha)
        merged = subprocess.run(
            [
                *("git", "--git-dir", repo, "merge-tree", "--write-tree", "--end-of-options"),
                *(base_sha, head_sha),
            ],
            env=git_env(),
            capture_output=True,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if merged.returncode != 0:  # 1: conflicts; anything else: git could not merge
            _run("--git-dir", repo, "update-ref", "-d", "--end-of-options", f"{prefix}/merge")
            return None
        tree = merged.stdout.decode().split("\n", 1)[0].strip()
        message = f"Merge {head_sha} into {base_sha}"
        commit = _run(
            "--git-dir",
            repo,
            "-c",
            "user.name=Shipline",
            "-c",
            "user.email=shipline@localhost",
            "commit-tree",
            "-p",
            base_sha,
            "-p",
            head_sha,
            "-m",
            message,
            "--end-of-options",
            tree,
            env={"GIT_AUTHOR_DATE": "@0 +0000", "GIT_COMMITTER_DATE": "@0 +0000"},
        ).strip()
        _run("--git-dir", repo, "update-ref", "--end-of-options", f"{prefix}/merge", commit)
        return commit


def _run(*args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        ["git", *args],
        env={**git_env(), **(env or {})},
        capture_output=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise RepositoryError(f"git {args[2]}: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout.decode()
