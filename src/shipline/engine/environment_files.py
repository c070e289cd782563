"""Environment files, read by the server from the project's default branch only.

A pull request, or any branch being run, cannot loosen an environment's rules: the rules
that apply are those of `.shipline/environments/<name>.yml` at the head of the default
branch when the server decides. An environment without a file is an error, never an
implicitly created open environment. The file is read whole, with the one parser of
environment files (`spec.environment.load_environment`): a file the deployment controller
could not use is refused at the gate, not after an approval.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from shipline.domain.errors import ShiplineError
from shipline.domain.records import ProjectRecord
from shipline.spec.diagnostics import Severity
from shipline.spec.environment import load_environment
from shipline.spec.environment_models import EnvironmentSpec, ProtectionRules

ENVIRONMENTS_DIR = ".shipline/environments"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z", re.ASCII)


class EnvironmentError(ShiplineError):
    """The environment cannot be used: no file, an invalid file, or a bad name."""


class Repository(Protocol):
    def fetch(self) -> None: ...

    def resolve(self, ref: str) -> tuple[str, str]: ...

    def read(self, sha: str, path: str) -> str: ...


@dataclass(frozen=True, slots=True)
class EnvironmentFile:
    """An environment file as read: the environment, text, path and the commit it was read
    at; `rules` are its protection rules."""

    name: str
    path: str
    sha: str
    text: str
    spec: EnvironmentSpec

    @property
    def rules(self) -> ProtectionRules:
        return self.spec.protection


def environment_path(name: str) -> str:
    if not _NAME.match(name):
        raise EnvironmentError(
            f"{name!r} is not an environment name (letters, digits, '.', '_', '-'; "
            "at most 100 characters)"
        )
    return f"{ENVIRONMENTS_DIR}/{name}.yml"


class EnvironmentFiles:
    """Reads environment files at the head of each project's default branch."""

    def __init__(self, repositories: Callable[[ProjectRecord], Repository]) -> None:
        self._repositories = repositories

    def read(self, project: ProjectRecord, name: str, *, fetch: bool = True) -> EnvironmentFile:
        """The environment `name` of `project`; `EnvironmentError` with the reason.

        `fetch=False` reads the server's mirror as it is (the caller fetched it moments
        ago: a run's trigger does), sparing a `git fetch` inside a transaction."""
        path = environment_path(name)
        repo = self._repositories(project)
        try:
            if fetch:
                repo.fetch()
            _, sha = repo.resolve(f"refs/heads/{project.default_branch}")
        except ShiplineError as exc:
            raise EnvironmentError(f"cannot read the default branch: {exc}") from exc
        try:
            text = repo.read(sha, path)
        except ShiplineError as exc:
            raise EnvironmentError(
                f"environment {name!r} is not defined: there is no {path} on the default "
                f"branch ({project.default_branch}) of {project.name}"
            ) from exc
        spec, diagnostics = load_environment(text, path, name=name)
        if spec is None:
            errors = [d.format() for d in diagnostics if d.severity is Severity.ERROR]
            raise EnvironmentError(
                f"environment {name!r} is invalid on {project.default_branch}:\n"
                + "\n".join(errors)
            )
        return EnvironmentFile(name, path, sha, text, spec)
