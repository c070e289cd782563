"""What an expression can see at one place of the workflow, for property checks.

`Scope` answers "does `steps.build` exist here?", "is `needs.deploy` a job this one needs?",
"is `matrix.os` a key of the matrix?", "is `inputs.tag` declared?". A `None` set means the
shape is only known at run time (a matrix written as an expression, say) and every
property is accepted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shipline.spec.lint._context import LintContext, string_value
from shipline.spec.lint.actions import BUILTIN_ACTIONS
from shipline.spec.yamlpos import Mapping, Node, Scalar, Sequence, parse_yaml


@dataclass(frozen=True, slots=True)
class Scope:
    """Names visible at one place; all lower case."""

    job: str | None = None
    needs: dict[str, frozenset[str] | None] = field(default_factory=dict)
    matrix: frozenset[str] | None = frozenset()
    steps: dict[str, frozenset[str] | None] = field(default_factory=dict)
    inputs: frozenset[str] | None = frozenset()
    jobs: dict[str, frozenset[str] | None] = field(default_factory=dict)


def workflow_inputs(ctx: LintContext) -> frozenset[str] | None:
    """Inputs declared by `workflow_dispatch` and `workflow_call` (None: any)."""
    on = ctx.root.get("on")
    names: set[str] = set()
    if not isinstance(on, Mapping):
        return frozenset()
    for event in ("workflow_dispatch", "workflow_call"):
        spec = on.get(event)
        if isinstance(spec, Mapping):
            inputs = spec.get("inputs")
            if isinstance(inputs, Mapping):
                names.update(k.text.lower() for k, _ in inputs.pairs)
            elif inputs is not None and not (isinstance(inputs, Scalar) and inputs.value is None):
                return None
    return frozenset(names)


def job_outputs(job: Mapping) -> frozenset[str] | None:
    """The output names a job declares (None when `outputs` is an expression)."""
    if job.get("uses") is not None:
        return None  # a reusable workflow's outputs are declared in the other file
    outputs = job.get("outputs")
    if outputs is None:
        return frozenset()
    if isinstance(outputs, Mapping):
        return frozenset(k.text.lower() for k, _ in outputs.pairs)
    return None


def matrix_keys(job: Mapping) -> frozenset[str] | None:
    """Keys of a literal matrix (rows and include entries); None when not literal."""
    strategy = job.get("strategy")
    if strategy is None:
        return frozenset()
    if not isinstance(strategy, Mapping):
        return None
    matrix = strategy.get("matrix")
    if matrix is None:
        return frozenset()
    if not isinstance(matrix, Mapping):
        return None
    keys: set[str] = set()
    for key, value in matrix.pairs:
        name = key.text.lower()
        if name == "exclude":
            continue
        if name == "include":
            if not isinstance(value, Sequence):
                return None
            for entry in value.items:
                if not isinstance(entry, Mapping):
                    return None
                keys.update(k.text.lower() for k, _ in entry.pairs)
            continue
        if "${{" in name:
            return None
        keys.add(name)
    return frozenset(keys)


def step_outputs(ctx: LintContext, step: Mapping) -> frozenset[str] | None:
    """Outputs a step is known to set: a local action's declared outputs; else None (any)."""
    uses = string_value(step.get("uses"))
    if uses and "@" in uses:
        builtin = BUILTIN_ACTIONS.get(uses.split("@", 1)[0].lower())
        return builtin.outputs if builtin is not None else None
    if uses and uses.startswith("./"):
        text = ctx.local_actions.get(uses.rstrip("/"))
        if text is not None:
            root, problems = parse_yaml(text, uses)
            if isinstance(root, Mapping) and not problems:
                outputs = root.get("outputs")
                if isinstance(outputs, Mapping):
                    return frozenset(k.text.lower() for k, _ in outputs.pairs)
                return frozenset()
    return None


def job_scope(ctx: LintContext, job_id: str, job: Mapping, inputs: frozenset[str] | None) -> Scope:
    """The scope of a job's keys outside its steps (steps see `steps` of earlier steps)."""
    jobs_node = ctx.root.get("jobs")
    all_jobs: dict[str, Mapping] = {}
    if isinstance(jobs_node, Mapping):
        all_jobs = {k.text.lower(): v for k, v in jobs_node.pairs if isinstance(v, Mapping)}
    needs: dict[str, frozenset[str] | None] = {}
    for name in _needs(job.get("needs")):
        target = all_jobs.get(name.lower())
        needs[name.lower()] = job_outputs(target) if target is not None else None
    return Scope(job=job_id, needs=needs, matrix=matrix_keys(job), inputs=inputs)


def with_steps(scope: Scope, ctx: LintContext, job: Mapping, before: int | None) -> Scope:
    """`scope` plus the ids of the job's steps (only those before index `before`, if given)."""
    steps: dict[str, frozenset[str] | None] = {}
    for i, step in ctx.steps(job):
        if before is not None and i >= before:
            break
        step_id = string_value(step.get("id"))
        if step_id and "${{" not in step_id:
            steps[step_id.lower()] = step_outputs(ctx, step)
    return Scope(scope.job, scope.needs, scope.matrix, steps, scope.inputs, scope.jobs)


def _needs(node: Node | None) -> list[str]:
    if isinstance(node, Scalar) and node.value is not None:
        return [node.text]
    if isinstance(node, Sequence):
        return [i.text for i in node.items if isinstance(i, Scalar) and i.value is not None]
    return []
