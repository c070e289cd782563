"""Property access on the known contexts: `steps.<id>`, `needs.<job>`, `matrix.<key>`, ...

A reference like `steps.build.outputs.x` is checked against the `Scope` of the place it is
written: the step must exist (and come earlier), the job must be in `needs`, the matrix key
must be in the matrix, the input must be declared, and the fixed properties of `github`,
`runner`, `job`, `strategy`, `steps.<id>` and `needs.<job>` must be real ones.
"""

from __future__ import annotations

from shipline.spec.expressions import ContextReference
from shipline.spec.lint.scope import Scope

GITHUB = frozenset(
    [
        "action",
        "action_path",
        "action_ref",
        "action_repository",
        "action_status",
        "actor",
        "actor_id",
        "api_url",
        "base_ref",
        "env",
        "event",
        "event_name",
        "event_path",
        "graphql_url",
        "head_ref",
        "job",
        "job_workflow_sha",
        "path",
        "ref",
        "ref_name",
        "ref_protected",
        "ref_type",
        "repository",
        "repository_id",
        "repository_owner",
        "repository_owner_id",
        "repositoryurl",
        "retention_days",
        "run_id",
        "run_number",
        "run_attempt",
        "secret_source",
        "server_url",
        "sha",
        "state",
        "step_summary",
        "output",
        "token",
        "triggering_actor",
        "workflow",
        "workflow_ref",
        "workflow_sha",
        "workspace",
    ]
)
RUNNER = frozenset(["arch", "debug", "environment", "name", "os", "temp", "tool_cache"])
JOB = frozenset(
    [
        "container",
        "services",
        "status",
        "check_run_id",
        "workflow_ref",
        "workflow_sha",
        "workflow_repository",
        "workflow_file_path",
    ]
)
STRATEGY = frozenset(("fail-fast", "job-index", "job-total", "max-parallel"))
STEP = frozenset(("outputs", "outcome", "conclusion"))
NEEDS = frozenset(("outputs", "result"))
CONTAINER = frozenset(("id", "network"))


def _show(names: object) -> str:
    if not isinstance(names, frozenset | set | dict):
        return "{}"
    items = sorted(str(n) for n in names)
    return "{" + "; ".join(items) + "}" if items else "{}"


def property_problem(ref: ContextReference, scope: Scope) -> str | None:
    """Why `ref` can never have a value here, or None when it may."""
    path = ref.path
    if not path or path[0] is None:
        return None
    first = path[0]
    context = ref.context
    fixed = {"github": GITHUB, "runner": RUNNER, "job": JOB, "strategy": STRATEGY}.get(context)
    if fixed is not None:
        if first not in fixed:
            return _undefined(first, fixed)
        return _nested(context, path, scope)
    if context == "matrix":
        if scope.matrix is None or first in scope.matrix:
            return None
        return _undefined(first, scope.matrix)
    if context == "inputs":
        if scope.inputs is None or first in scope.inputs:
            return None
        return _undefined(first, scope.inputs)
    if context == "steps":
        return _member(path, scope.steps, STEP, "outputs")
    if context == "needs":
        return _member(path, scope.needs, NEEDS, "outputs")
    if context == "jobs":
        return _member(path, scope.jobs, NEEDS, "outputs")
    return None


def _nested(context: str, path: tuple[str | None, ...], scope: Scope) -> str | None:
    """Second-level properties with a known shape: dispatch inputs, job containers."""
    second = path[1] if len(path) > 1 else None
    if second is None:
        return None
    if context == "github" and path[0] == "event" and second == "inputs" and len(path) > 2:
        name = path[2]
        if name is not None and scope.inputs is not None and name not in scope.inputs:
            return _undefined(name, scope.inputs)
    if context == "job" and path[0] == "container" and second not in CONTAINER:
        return _undefined(second, CONTAINER)
    return None


def _member(
    path: tuple[str | None, ...],
    members: dict[str, frozenset[str] | None],
    props: frozenset[str],
    outputs_key: str,
) -> str | None:
    first = path[0]
    assert first is not None
    if first not in members:
        return _undefined(first, frozenset(members))
    if len(path) < 2 or path[1] is None:
        return None
    if path[1] not in props:
        return _undefined(path[1], props)
    outputs = members[first]
    name = path[2] if path[1] == outputs_key and len(path) > 2 else None
    if name is not None and outputs is not None and name not in outputs:
        return _undefined(name, outputs)
    return None


def _undefined(name: str, available: frozenset[str]) -> str:
    return f'property "{name}" is not defined in object type {_show(available)}'
