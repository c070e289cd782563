"""`permissions:` of a workflow and its jobs as the scopes of the job's token.

GitHub's rules: a job's `permissions:` replaces the workflow's; once either is written,
every scope it does not name is `none`; `read-all` / `write-all` set every scope; `{}`
removes them all. Without `permissions:` anywhere a job gets `DEFAULT` (what a job token
could always do: read its project, deploy its own job's artifact). A run that is not
trusted (a fork's pull request) is capped at `read` whatever the workflow says
(SECURITY-CASES 22); `id-token`, which has no `read`, becomes `none` there. `deployments`
is the exception (`UNCAPPED`): an environment decides whether untrusted runs may deploy.

An expression (`${{ ... }}`) as a level is not evaluated for the token: it counts as
`none` (lint reports what it can; a token never gets more than the file plainly says).
Pure: no I/O; `spec.lint.permissions` reports unknown scopes and levels with positions.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "DEFAULT",
    "LEVELS",
    "SCOPES",
    "allows",
    "effective_permissions",
    "from_token_scopes",
    "token_scopes",
]

LEVELS = ("none", "read", "write")
_RWN = ("read", "write", "none")
SCOPES: dict[str, tuple[str, ...]] = {
    "actions": _RWN,
    "artifact-metadata": _RWN,
    "attestations": _RWN,
    "checks": _RWN,
    "contents": _RWN,
    "deployments": _RWN,
    "discussions": _RWN,
    "id-token": ("write", "none"),
    "issues": _RWN,
    "models": ("read", "none"),
    "packages": _RWN,
    "pages": _RWN,
    "pull-requests": _RWN,
    "repository-projects": _RWN,
    "security-events": _RWN,
    "statuses": _RWN,
}

# Without `permissions:`: every scope it has a `read` for, and the deployment of the job's
# own artifact (`shipline/deploy`), which the environment's protection rules still gate.
DEFAULT: dict[str, str] = {
    scope: "read" if "read" in levels else "none" for scope, levels in SCOPES.items()
}
DEFAULT["deployments"] = "write"

# Not capped for untrusted runs: whether one may deploy is its environment's decision
# (`protection.allow_untrusted`, never by default), which the environment's gate takes on
# the server from the file on the default branch; its secrets are never delivered to it.
UNCAPPED = frozenset({"deployments"})


def _all(level: str) -> dict[str, str]:
    """Every scope at `level`, or the highest level below it the scope has."""
    found = {}
    for scope, levels in SCOPES.items():
        below = LEVELS[: LEVELS.index(level) + 1]
        found[scope] = next(x for x in reversed(below) if x in levels or x == "none")
    return found


def _declared(value: object) -> dict[str, str]:
    """The scopes a written `permissions:` value gives (anything unknown gives nothing)."""
    if value == "read-all":
        return _all("read")
    if value == "write-all":
        return _all("write")
    found = dict.fromkeys(SCOPES, "none")
    if isinstance(value, Mapping):
        for scope, level in value.items():
            if isinstance(scope, str) and scope in SCOPES and level in SCOPES[scope]:
                found[scope] = str(level)
    return found


def effective_permissions(workflow: object, job: object, *, trusted: bool) -> dict[str, str]:
    """Every scope's level for a job: `workflow` and `job` are the `permissions:` values
    as written (None when absent); `trusted` the run's trust class."""
    if job is not None:
        levels = _declared(job)
    elif workflow is not None:
        levels = _declared(workflow)
    else:
        levels = dict(DEFAULT)
    if not trusted:
        levels = {
            scope: level if scope in UNCAPPED else _capped(scope, level)
            for scope, level in levels.items()
        }
    return levels


def _capped(scope: str, level: str) -> str:
    if level != "write":
        return level
    return "read" if "read" in SCOPES[scope] else "none"


def token_scopes(levels: Mapping[str, str]) -> tuple[str, ...]:
    """The levels as a token records them: `("actions:read", ..., "statuses:none")`."""
    return tuple(f"{scope}:{levels.get(scope, 'none')}" for scope in SCOPES)


def from_token_scopes(scopes: tuple[str, ...]) -> dict[str, str]:
    """The levels a token recorded; a token without any (issued before scopes) has
    `DEFAULT`."""
    if not scopes:
        return dict(DEFAULT)
    levels = dict.fromkeys(SCOPES, "none")
    for item in scopes:
        scope, _, level = item.partition(":")
        if scope in levels and level in LEVELS:
            levels[scope] = level
    return levels


def allows(levels: Mapping[str, str], scope: str, needed: str) -> bool:
    """Whether `levels` give `needed` (`read` or `write`) on `scope`; write implies read."""
    have = levels.get(scope, "none")
    return LEVELS.index(have if have in LEVELS else "none") >= LEVELS.index(needed)
