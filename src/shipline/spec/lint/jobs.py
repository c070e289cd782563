"""Ids and the `needs` graph: what makes a job or a step addressable and orderable.

- job and step ids: must start with a letter or `_`, hold only alphanumerics, `-` and `_`;
  ids starting with `__` are reserved by GitHub; ids are case insensitive, so `Build` and
  `build` collide (jobs) and two steps of one job cannot share an id;
- `needs`: each entry must name a job of the workflow, once; the graph must have no cycle
  (the cycle is reported in full) and therefore at least one job without `needs`.
"""

from __future__ import annotations

import re

from shipline.spec.lint._context import LintContext, string_value
from shipline.spec.yamlpos import Mapping, Node, Scalar, Sequence

ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
MAX_ID_LENGTH = 100


def check(ctx: LintContext) -> None:
    """Run the id and `needs` checks."""
    needs = _job_ids_and_needs(ctx)
    _check_cycles(ctx, needs)
    for _, job in ctx.jobs():
        _check_step_ids(ctx, job)


def id_problem(value: str, what: str) -> str | None:
    """Why `value` is not a valid job or step id (`what` is "job" or "step"), or None."""
    if value.startswith("__"):
        return f'{what} ID "{value}" is invalid: IDs starting with "__" are reserved'
    if not ID.match(value) or len(value) >= MAX_ID_LENGTH:
        return (
            f'invalid {what} ID "{value}". {what} ID must start with a letter or _ and '
            "contain only alphanumeric characters, -, or _"
        )
    return None


def _job_ids_and_needs(ctx: LintContext) -> dict[str, tuple[Scalar, list[tuple[str, Node]]]]:
    """Check job ids and `needs` entries; return job id (lower case) -> (key, needs)."""
    jobs_node = ctx.root.get("jobs")
    if not isinstance(jobs_node, Mapping):
        return {}
    seen: dict[str, Scalar] = {}
    for key, _ in jobs_node.pairs:
        problem = id_problem(key.text, "job")
        if problem:
            ctx.error(key, "id", problem, path=f"jobs.{key.text}")
        # Case-insensitive duplicates are reported by the loader.
        seen.setdefault(key.text.lower(), key)
    graph: dict[str, tuple[Scalar, list[tuple[str, Node]]]] = {}
    for key, job in ctx.jobs():
        entries = _needs_entries(job.get("needs"))
        graph.setdefault(key.text.lower(), (key, []))
        listed: set[str] = set()
        for name, node in entries:
            low = name.lower()
            if low in listed:
                ctx.error(
                    node,
                    "job-needs",
                    f'job ID "{name}" duplicates in "needs" section. '
                    "note that job ID is case insensitive",
                    path=f"jobs.{key.text}.needs",
                )
                continue
            listed.add(low)
            if low not in seen:
                # One report, at the entry itself, as GitHub points at it.
                ctx.error(
                    node,
                    "job-needs",
                    f'job "{key.text}" needs job "{name}" which does not exist in this workflow',
                    path=f"jobs.{key.text}.needs",
                )
                continue
            graph[key.text.lower()][1].append((low, node))
    return graph


def _needs_entries(node: Node | None) -> list[tuple[str, Node]]:
    if isinstance(node, Scalar):
        value = string_value(node)
        return [(value, node)] if value else []
    if isinstance(node, Sequence):
        return [
            (item.text, item)
            for item in node.items
            if isinstance(item, Scalar) and string_value(item)
        ]
    return []


def _check_cycles(
    ctx: LintContext, graph: dict[str, tuple[Scalar, list[tuple[str, Node]]]]
) -> None:
    """Report each cycle once, at the key of its first job in file order."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    reported = False

    def visit(root: str) -> None:
        # Iterative depth-first search: a long chain of jobs must not exhaust the stack.
        nonlocal reported
        stack: list[str] = [root]
        edges = [iter(graph[root][1])]
        state[root] = 1
        while edges:
            job = stack[-1]
            step = next(edges[-1], None)
            if step is None:
                state[job] = 2
                stack.pop()
                edges.pop()
                continue
            target, node = step
            if state.get(target) == 1:
                cycle = [*stack[stack.index(target) :], target]
                names = " -> ".join(f'"{graph[j][0].text}"' for j in cycle)
                start = graph[cycle[0]][0]
                ctx.error(
                    start,
                    "job-needs",
                    'cyclic dependencies in "needs" job configurations are detected. '
                    f"detected cycle is {names}",
                    path=f"jobs.{start.text}.needs",
                )
                ctx.error(
                    node,
                    "job-needs",
                    f'job "{graph[job][0].text}" depends on job "{graph[target][0].text}", '
                    "which creates a cycle in the dependency graph",
                    path=f"jobs.{graph[job][0].text}.needs",
                )
                reported = True
            elif target not in state:
                state[target] = 1
                stack.append(target)
                edges.append(iter(graph[target][1]))

    for job in graph:
        if job not in state:
            visit(job)
    if graph and not reported and all(needs for _, needs in graph.values()):
        first = next(iter(graph.values()))[0]
        ctx.error(
            first,
            "job-needs",
            "the workflow must contain at least one job with no dependencies",
            path="jobs",
        )


def _check_step_ids(ctx: LintContext, job: Mapping) -> None:
    seen: dict[str, Scalar] = {}
    for _, step in ctx.steps(job):
        node = step.get("id")
        value = string_value(node)
        if not isinstance(node, Scalar) or not value or "${{" in value:
            continue
        problem = id_problem(value, "step")
        if problem:
            ctx.error(node, "id", problem)
        low = value.lower()
        if low in seen:
            first = seen[low]
            ctx.error(
                node,
                "id",
                f'step ID "{value}" duplicates. previously defined at '
                f"line:{first.line},col:{first.col}. step ID must be unique within a job. "
                "note that step ID is case insensitive",
            )
        else:
            seen[low] = node
