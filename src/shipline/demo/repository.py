"""The demo repository: the packaged project copied into a work tree, with the ports and
host of this demo written into its environment files, committed and pushed with `git`."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ENVIRONMENTS",
    "PROJECT",
    "GitError",
    "Placement",
    "commit",
    "place",
    "prepare",
    "push",
]

# The packaged demo project (package data: `pip install .` ships it).
PROJECT = Path(__file__).resolve().parent / "project"
ENVIRONMENTS = ("staging", "production")

_TRAFFIC = re.compile(r"^traffic:\n(?:[ \t]+.*\n)*", re.MULTILINE)


class GitError(Exception):
    """A git command failed; the message is git's own, without credentials."""


@dataclass(frozen=True, slots=True)
class Placement:
    """Where an environment's router listens."""

    host: str
    port: int


def place(text: str, placement: Placement) -> str:
    """An environment file with its `traffic.host` and `traffic.port` set to `placement`."""
    found = _TRAFFIC.search(text)
    if found is None:
        raise ValueError("the environment file has no traffic section")
    section = found.group(0)
    section = re.sub(r"(?m)^(\s+port:\s*)\d+\s*$", rf"\g<1>{placement.port}", section)
    section = re.sub(r"(?m)^(\s+host:\s*)\S+\s*$", rf"\g<1>{placement.host}", section)
    return text[: found.start()] + section + text[found.end() :]


def prepare(work: Path, placements: dict[str, Placement]) -> None:
    """Copy the project into `work` (which must not exist) and place its environments."""
    shutil.copytree(PROJECT, work, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for script in (work / "scripts").glob("*.sh"):
        script.chmod(0o755)  # hooks must be executable; a wheel may not keep the mode
    for name, placement in placements.items():
        path = work / ".shipline" / "environments" / f"{name}.yml"
        path.write_text(place(path.read_text(encoding="utf-8"), placement), encoding="utf-8")


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    # The user's git configuration (hooks, signing, credential helpers) stays out of it.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_TERMINAL_PROMPT="0",
        GIT_AUTHOR_NAME="Shipline demo",
        GIT_AUTHOR_EMAIL="demo@shipline.invalid",
        GIT_COMMITTER_NAME="Shipline demo",
        GIT_COMMITTER_EMAIL="demo@shipline.invalid",
    )
    env.update(extra or {})
    return env


def _git(work: Path, *args: str, env: dict[str, str] | None = None) -> str:
    try:
        result = subprocess.run(
            ["git", *args],
            cwd=work,
            env=env or _env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
    except FileNotFoundError as exc:
        raise GitError("git is not installed (the demo pushes with the git client)") from exc
    except subprocess.TimeoutExpired as exc:
        raise GitError(f"git {args[0]} took more than 120 s") from exc
    if result.returncode != 0:
        raise GitError(f"git {args[0]} failed: {result.stderr.strip()}")
    return result.stdout


def commit(work: Path, message: str) -> str:
    """`git init` on `main`, commit everything; the commit's id."""
    _git(work, "init", "-q", "-b", "main")
    _git(work, "add", "-A")
    _git(work, "commit", "-q", "-m", message)
    return _git(work, "rev-parse", "HEAD").strip()


def push(work: Path, url: str, user: str, token: str) -> None:
    """Push `main` to `url` over smart HTTP with basic authentication.

    The credentials travel in git's environment (`http.extraHeader` through
    `GIT_CONFIG_*`), never in argv or the repository's configuration.
    """
    basic = base64.b64encode(f"{user}:{token}".encode()).decode()
    env = _env(
        {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
        }
    )
    _git(work, "remote", "add", "origin", url)
    _git(work, "push", "-q", "origin", "main", env=env)
