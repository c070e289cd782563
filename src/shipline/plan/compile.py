"""`compile_plan(workflow, event) -> Plan`: the jobs a run will have, in DAG order."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field

from shipline.plan.events import Event
from shipline.plan.matrix import Cell, MatrixError, cell_label, expand_matrix, select_cells
from shipline.plan.trust import PRIVILEGED_EVENTS, untrusted_checkouts
from shipline.spec.models import JobSpec, WorkflowSpec


class PlanError(ValueError):
    """The workflow cannot be planned (unknown needs, a cycle, a bad matrix)."""


@dataclass(frozen=True, slots=True)
class PlannedJob:
    """One node of the run's DAG: a job, or one cell of a job's matrix.

    `key` is unique in the run (`build` or `build (3.11, ubuntu)`); `needs` names job ids.
    `dynamic_matrix` marks a job whose matrix comes from an expression: the engine expands
    it (with `expand_job`) once the jobs it needs have finished.
    """

    key: str
    job_id: str
    spec: JobSpec
    needs: tuple[str, ...] = ()
    matrix: tuple[tuple[str, object], ...] = ()
    matrix_index: int = 0
    matrix_total: int = 1
    dynamic_matrix: bool = False

    @property
    def matrix_dict(self) -> Cell:
        return dict(self.matrix)

    @property
    def display_name(self) -> str:
        base = self.spec.name if self.spec.name and "${{" not in self.spec.name else self.job_id
        if self.matrix and not (self.spec.name and "${{" in self.spec.name):
            return f"{base} ({cell_label(self.matrix_dict)})"
        return base


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything a run will do, before anything runs.

    `order` lists job ids so that every job comes after the jobs it needs; `not_selected`
    names jobs or cells left out by `-j`/`--matrix`, with the reason.
    """

    workflow: WorkflowSpec
    event: Event
    jobs: tuple[PlannedJob, ...]
    order: tuple[str, ...]
    digest: str = ""
    not_selected: tuple[tuple[str, str], ...] = field(default=())

    def jobs_of(self, job_id: str) -> list[PlannedJob]:
        return [j for j in self.jobs if j.job_id == job_id]


def topological_order(workflow: WorkflowSpec) -> tuple[str, ...]:
    """Job ids so that each comes after its needs; PlanError names a cycle or unknown need."""
    ids = [j.id for j in workflow.jobs]
    known = set(ids)
    for job in workflow.jobs:
        for need in job.needs:
            if need not in known:
                raise PlanError(f'job "{job.id}" needs job "{need}", which does not exist')
    order: list[str] = []
    state: dict[str, int] = {}
    by_id = {j.id: j for j in workflow.jobs}

    def visit(job_id: str, trail: list[str]) -> None:
        if state.get(job_id) == 2:
            return
        if state.get(job_id) == 1:
            cycle = [*trail[trail.index(job_id) :], job_id]
            raise PlanError("the needs of these jobs form a cycle: " + " -> ".join(cycle))
        state[job_id] = 1
        for need in by_id[job_id].needs:
            visit(need, [*trail, job_id])
        state[job_id] = 2
        order.append(job_id)

    for job_id in ids:
        visit(job_id, [])
    return tuple(order)


def needs_closure(workflow: WorkflowSpec, job_ids: list[str]) -> set[str]:
    """The given jobs and every job they need, directly or not."""
    by_id = {j.id: j for j in workflow.jobs}
    seen: set[str] = set()
    stack = list(job_ids)
    while stack:
        job_id = stack.pop()
        if job_id in seen or job_id not in by_id:
            continue
        seen.add(job_id)
        stack.extend(by_id[job_id].needs)
    return seen


def has_dynamic_matrix(job: JobSpec) -> bool:
    if job.strategy is None:
        return False
    return "${{" in json.dumps(job.strategy.matrix)


def expand_job(job: JobSpec, matrix: object, selectors: list[tuple[str, str]]) -> list[PlannedJob]:
    """The planned cells of one job for an evaluated matrix value."""
    try:
        cells = expand_matrix(matrix) if job.strategy is not None else [{}]
    except MatrixError as exc:
        raise PlanError(f'job "{job.id}": {exc}') from exc
    if job.strategy is not None and not cells:
        raise PlanError(f'job "{job.id}": the matrix has no combinations')
    relevant = [(k, v) for k, v in selectors if any(k in c for c in cells)]
    chosen = select_cells(cells, relevant)
    total = len(chosen)
    planned = []
    for index, cell in enumerate(chosen):
        key = f"{job.id} ({cell_label(cell)})" if cell else job.id
        planned.append(
            PlannedJob(
                key=key,
                job_id=job.id,
                spec=job,
                needs=job.needs,
                matrix=tuple(cell.items()),
                matrix_index=index,
                matrix_total=total,
            )
        )
    return planned


def compile_plan(
    workflow: WorkflowSpec,
    event: Event,
    *,
    jobs: list[str] | None = None,
    matrix: list[tuple[str, str]] | None = None,
) -> Plan:
    """Compile a workflow for an event into a plan.

    `jobs` (`-j`) keeps those jobs and everything they need; `matrix` (`--matrix K=V`)
    keeps only the matching cells of the jobs whose matrix has that key.
    """
    if event.name in PRIVILEGED_EVENTS:
        blocked = [c for c in untrusted_checkouts(workflow.jobs) if not c.allowed]
        if blocked:
            where = ", ".join(f"job {c.job!r} step {c.step + 1}" for c in blocked)
            raise PlanError(
                f"{where} of {workflow.file} check out the pull request's code in a "
                f"{event.name} run, which runs trusted with the base branch's workflow; "
                "set `unsafe_execute_untrusted_code: true` on the job to allow it (it then "
                "gets no environment secrets and writes no protected cache)"
            )
    order = topological_order(workflow)
    selectors = matrix or []
    not_selected: list[tuple[str, str]] = []
    wanted = needs_closure(workflow, jobs) if jobs else {j.id for j in workflow.jobs}
    if jobs:
        unknown = [j for j in jobs if workflow.job(j) is None]
        if unknown:
            names = ", ".join(j.id for j in workflow.jobs)
            raise PlanError(f"no job {', '.join(unknown)} in {workflow.file} (jobs: {names})")
    planned: list[PlannedJob] = []
    for job_id in order:
        job = workflow.job(job_id)
        assert job is not None
        if job_id not in wanted:
            not_selected.append((job_id, "not selected with -j"))
            continue
        if has_dynamic_matrix(job):
            planned.append(
                PlannedJob(
                    key=job.id, job_id=job.id, spec=job, needs=job.needs, dynamic_matrix=True
                )
            )
            continue
        matrix_value = job.strategy.matrix if job.strategy else None
        cells = expand_job(job, matrix_value, selectors)
        if selectors and job.strategy is not None:
            chosen = {c.key for c in cells}
            for cell in expand_job(job, matrix_value, []):
                if cell.key not in chosen:
                    not_selected.append((cell.key, "not selected with --matrix"))
        if not cells:
            not_selected.append((job_id, "no matrix cell matches --matrix"))
            continue
        planned.extend(cells)
    if not planned:
        raise PlanError("nothing to run: no job is left after the -j and --matrix selections")
    plan = Plan(workflow, event, tuple(planned), order, "", tuple(not_selected))
    return dataclasses.replace(plan, digest=plan_digest(plan))


def plan_digest(plan: Plan) -> str:
    """A stable SHA-256 of what the plan will do (same inputs, same digest)."""
    body = json.dumps(
        {
            "workflow": repr(plan.workflow),
            "event": repr(plan.event),
            "jobs": [repr(j) for j in plan.jobs],
            "order": plan.order,
        },
        sort_keys=True,
    )
    return hashlib.sha256(body.encode()).hexdigest()
