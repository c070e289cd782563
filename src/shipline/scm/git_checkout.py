"""`actions/checkout` for a local repository: a real git working copy made with the git CLI.

The copy is made as actions/checkout makes it: `git init`, an `origin` remote pointing at
the repository (`file://`), a fetch of exactly the commit wanted (depth 1 by default, all
branches and tags with depth 0), then HEAD on a local branch named after the ref (or
detached) and `git reset --hard`. Workflows can then run `git log`, `git describe` or
`git fetch` as they would on GitHub.

Git runs with argv lists (never a shell), refs and commits after `--end-of-options` or
`--`, without the user's or the system's configuration, and without prompts: a ref name
such as `--upload-pack=...` stays a name.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from shipline.domain.artifacts import ActionFailed

_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
# git-check-ref-format's rules, checked here so a bad name never reaches git's argv.
_BAD_REF = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//|/\.|\.lock(/|$)|^/|/$|^\.|\.$")
_GIT_TIMEOUT = 600.0


def _is_valid_ref(name: str) -> bool:
    return bool(name) and name != "@" and not _BAD_REF.search(name)


class GitSourceProvider:
    """Checks out commits of the git repository at `repo` (a working copy or bare).

    `git` is the executable to run (a name looked up on PATH, or a path).
    """

    def __init__(self, repo: Path, *, git: str = "git") -> None:
        self.repo = repo
        self.git = git

    def _env(self) -> dict[str, str]:
        # A clean environment: inherited GIT_DIR, GIT_WORK_TREE or GIT_CONFIG_* would
        # redirect or reconfigure every command, and the user's ~/.gitconfig may define
        # hooks, filters or url rewrites that must not run for a build.
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        env.update(
            GIT_TERMINAL_PROMPT="0",
            GIT_CONFIG_NOSYSTEM="1",
            GIT_CONFIG_GLOBAL=os.devnull,
            GIT_ALLOW_PROTOCOL="file",
            GIT_ASKPASS="true",
            LC_ALL="C",
        )
        return env

    async def _git(self, cwd: Path, *args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            self.git,
            "-c",
            "gc.auto=0",
            "-c",
            "maintenance.auto=false",
            "-c",
            "advice.detachedHead=false",
            # The working copy may belong to a sandbox's step user (uid 65534) while this
            # runs as root: trust it, but run none of its hooks or its fsmonitor program.
            "-c",
            f"safe.directory={cwd}",
            "-c",
            "core.hooksPath=/dev/null",
            "-c",
            "core.fsmonitor=false",
            *args,
            cwd=cwd,
            env=self._env(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), _GIT_TIMEOUT)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise ActionFailed(f"git {args[0]} timed out after {_GIT_TIMEOUT:.0f} s") from None
        if proc.returncode != 0:
            message = err.decode("utf-8", "replace").strip()
            raise ActionFailed(f"git {args[0]} failed (exit {proc.returncode}): {message}")
        return out.decode("utf-8", "replace")

    async def _resolve(self, dest: Path, ref: str) -> tuple[str, str]:
        """The commit and full ref name that `ref` names in the repository."""
        listing = await self._git(dest, "ls-remote", "--", "origin")
        refs: dict[str, str] = {}
        for line in listing.splitlines():
            sha, _, name = line.partition("\t")
            refs[name] = sha
        candidates = [ref] if ref.startswith("refs/") else []
        candidates += [f"refs/heads/{ref}", f"refs/tags/{ref}"]
        for full in candidates:
            # An annotated tag's peeled entry names the commit, not the tag object.
            found = refs.get(f"{full}^{{}}") or refs.get(full)
            if found:
                return found, full
        raise ActionFailed(f"ref {ref!r} not found in {self.repo}")

    async def checkout(
        self, dest: Path, *, sha: str, ref: str, fetch_depth: int, log: Callable[[str], None]
    ) -> str:
        """Make `dest` a working copy at `sha` (or at what `ref` names when `sha` is empty).

        A ref `refs/heads/<b>` (or a short name of a branch) puts HEAD on a local branch
        `<b>`; anything else detaches HEAD. The files of an existing working copy in `dest`
        are reused (tracked files are reset, untracked ones stay) but never its `.git`,
        which a step could have written. Returns the commit checked out.
        """
        if fetch_depth < 0:
            raise ActionFailed(f"fetch-depth must be 0 or more, got {fetch_depth}")
        if ref and _SHA.fullmatch(ref) and not sha:
            sha, ref = ref, ""
        if sha and not _SHA.fullmatch(sha):
            raise ActionFailed(f"not a full commit SHA: {sha!r}")
        if ref and not _is_valid_ref(ref):
            raise ActionFailed(f"invalid ref name {ref!r}")
        if not sha and not ref:
            raise ActionFailed("nothing to check out: neither a commit nor a ref given")

        dest.mkdir(parents=True, exist_ok=True)
        # An existing `.git` may have been written by a step (it owns the workspace): its
        # config could name programs this process would run outside the sandbox (filter
        # drivers, `include.path`, `core.sshCommand`, `uploadpack`), or it may be a link or
        # a `gitdir:` file pointing elsewhere. It is never trusted: only the working tree's
        # files are kept (tracked ones are reset below, untracked ones stay).
        remove_git_dir(dest / ".git")
        # No template: no sample hooks to copy, and nothing from a system template dir.
        await self._git(dest, "init", "--quiet", "--template=", "--", str(dest))
        await self._git(dest, "remote", "add", "--", "origin", self.repo.resolve().as_uri())

        full_ref = ref
        if ref and not (sha and ref.startswith("refs/")):
            try:
                resolved, full_ref = await self._resolve(dest, ref)
            except ActionFailed:
                if not sha:
                    raise
                full_ref = ""  # the commit is known: check it out detached
            sha = sha or resolved
        branch = full_ref.removeprefix("refs/heads/") if full_ref.startswith("refs/heads/") else ""
        tag = full_ref.removeprefix("refs/tags/") if full_ref.startswith("refs/tags/") else ""

        fetch = ["fetch", "--quiet", "--prune", "--no-recurse-submodules"]
        if fetch_depth == 0:
            refspecs = ["+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*", sha]
            if branch:
                refspecs.append(f"+{sha}:refs/heads/{branch}")
        else:
            fetch += ["--no-tags", f"--depth={fetch_depth}"]
            if branch:
                refspecs = [f"+{sha}:refs/remotes/origin/{branch}", f"+{sha}:refs/heads/{branch}"]
            elif tag:
                # By name, so an annotated tag arrives as a tag object (`git describe`);
                # the commit as well, in case the tag moved since the run started.
                refspecs = [f"+refs/tags/{tag}:refs/tags/{tag}", sha]
            else:
                refspecs = [sha]
        log(f"Fetching {full_ref or sha} ({sha[:12]}) from {self.repo}, depth {fetch_depth}")
        # The local branch is written by the fetch itself (one git process less);
        # --update-head-ok because it may be the branch HEAD already names.
        await self._git(dest, *fetch, "--update-head-ok", "origin", "--end-of-options", *refspecs)

        if branch:
            await self._git(dest, "symbolic-ref", "--", "HEAD", f"refs/heads/{branch}")
        else:
            await self._git(dest, "update-ref", "--no-deref", "--end-of-options", "HEAD", sha)
        await self._git(dest, "reset", "--quiet", "--hard")
        log(f"HEAD is now at {sha[:12]}" + (f" on branch {branch}" if branch else " (detached)"))
        return sha


def remove_git_dir(path: Path) -> None:
    """Remove `path` (a `.git` directory, or a file or link a step put in its place)
    without following links."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
