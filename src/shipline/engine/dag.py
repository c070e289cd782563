"""The scheduling decisions of a run, as a pure state machine over its plan.

`RunState` knows the plan, which jobs finished and how; `decide()` says which jobs may start
now and which are skipped (a false `if`, a need that did not run, a cancelled run), expanding
matrices built from earlier jobs' outputs on the way. It holds no processes, no clock and no
I/O: `shipline run` drives it in memory, the server replays it from stored job records (and
keeps it between a run's changes, see `RunService.live`), and both get the same answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from shipline.domain.status import Conclusion, combine
from shipline.plan.compile import Plan, PlanError, PlannedJob, expand_job
from shipline.spec.expressions import ExpressionError, evaluate, evaluate_template, truthy
from shipline.spec.expressions.conditions import condition_expression


@dataclass(frozen=True, slots=True)
class Start:
    """Start this job (one matrix cell)."""

    job: PlannedJob


@dataclass(frozen=True, slots=True)
class Skip:
    """This job will not run; it ends with `conclusion` for `reason`."""

    job: PlannedJob
    conclusion: Conclusion
    reason: str


Decision = Start | Skip


@dataclass(slots=True)
class Finished:
    """How a job (one cell) ended, as far as scheduling cares."""

    key: str
    job_id: str
    conclusion: Conclusion
    outputs: Mapping[str, str] = field(default_factory=dict)


class _JobStatus:
    """Status functions at job level: over the results of the jobs this one needs."""

    def __init__(self, needs: list[Conclusion], cancelled: bool) -> None:
        self.needs = needs
        self.cancelled = cancelled

    def status_function(self, name: str) -> bool:
        if name == "always":
            return True
        if name == "cancelled":
            return self.cancelled
        if name == "failure":
            return any(c is Conclusion.FAILURE for c in self.needs) and not self.cancelled
        return all(c is Conclusion.SUCCESS for c in self.needs) and not self.cancelled

    def hash_files(self, patterns: list[str]) -> str:
        raise ExpressionError("evaluation", "hashFiles() is not available in a job's if", "")


class RunState:
    """What has happened in a run so far, and what may happen next.

    `github`, `vars` and `inputs` are the contexts a job's `if` and a dynamic matrix see;
    `matrix_selectors` are `--matrix KEY=VALUE` choices applied to dynamic matrices too.
    """

    def __init__(
        self,
        plan: Plan,
        *,
        github: Mapping[str, object],
        vars: Mapping[str, str] | None = None,
        inputs: Mapping[str, object] | None = None,
        matrix_selectors: Iterable[tuple[str, str]] = (),
    ) -> None:
        self.plan = plan
        self.github = dict(github)
        self.vars = dict(vars or {})
        self.inputs = dict(inputs or {})
        self.selectors = list(matrix_selectors)
        self.cancelled = False
        self.pending: list[PlannedJob] = list(plan.jobs)
        self.running: dict[str, PlannedJob] = {}
        self.results: dict[str, list[Finished]] = {}
        self.cells_left: dict[str, int] = {}
        for job in plan.jobs:
            self.cells_left[job.job_id] = self.cells_left.get(job.job_id, 0) + 1
        self.unselected = {job_id for job_id, _ in plan.not_selected}

    # -- queries -------------------------------------------------------------------------

    def done(self, job_id: str) -> bool:
        return self.cells_left.get(job_id, 0) == 0 and job_id not in self.unselected

    def finished(self) -> bool:
        return not self.pending and not self.running

    def conclusion_of(self, job_id: str) -> Conclusion:
        """A job's result over its cells, as `needs.<id>.result` shows it."""
        conclusions = [r.conclusion for r in self.results.get(job_id, [])]
        if not conclusions or all(c is Conclusion.SKIPPED for c in conclusions):
            return Conclusion.SKIPPED
        return combine([c for c in conclusions if c is not Conclusion.SKIPPED])

    def conclusion(self) -> Conclusion:
        """The run's conclusion from its jobs' (cancelled when the run was cancelled)."""
        if self.cancelled:
            return Conclusion.CANCELLED
        return combine([r.conclusion for rs in self.results.values() for r in rs])

    def needs_context(self, job: PlannedJob) -> dict[str, object]:
        out: dict[str, object] = {}
        for need in job.needs:
            outputs: dict[str, str] = {}
            for r in self.results.get(need, []):
                outputs.update(r.outputs)
            out[need] = {"result": str(self.conclusion_of(need)), "outputs": outputs}
        return out

    def contexts(self, job: PlannedJob) -> dict[str, object]:
        return {
            "github": {**self.github, "job": job.job_id},
            "needs": self.needs_context(job),
            "vars": dict(self.vars),
            "inputs": dict(self.inputs),
            "matrix": job.matrix_dict,
            "strategy": {"job-index": job.matrix_index, "job-total": job.matrix_total},
        }

    # -- changes -------------------------------------------------------------------------

    def decide(self) -> list[Decision]:
        """The jobs that start or are skipped now; call again after every `record`."""
        decisions: list[Decision] = []
        progressed = True
        while progressed:
            progressed = False
            for job in list(self.pending):
                decision = self._consider(job)
                if decision is None:
                    continue
                progressed = True
                self.pending.remove(job)
                if isinstance(decision, Skip):
                    self._record(job, Finished(job.key, job.job_id, decision.conclusion))
                    decisions.append(decision)
                elif decision.job.dynamic_matrix:
                    decisions.extend(self._expand(decision.job))
                else:
                    self.running[job.key] = job
                    decisions.append(decision)
        if not self.running and self.pending:
            # Nothing runs and nothing can start: what is left waits on jobs that never ran.
            for job in list(self.pending):
                self.pending.remove(job)
                self._record(job, Finished(job.key, job.job_id, Conclusion.SKIPPED))
                decisions.append(Skip(job, Conclusion.SKIPPED, "a job it needs did not run"))
        return decisions

    def record(self, result: Finished) -> None:
        """A started job ended."""
        job = self.running.pop(result.key, None)
        if job is None:
            raise KeyError(f"job {result.key!r} is not running")
        self._record(job, result)

    def cancel(self) -> list[PlannedJob]:
        """Cancel the run: returns the running jobs, which the caller must stop."""
        self.cancelled = True
        return list(self.running.values())

    def fail_fast(self, job: PlannedJob) -> tuple[list[PlannedJob], list[Skip]]:
        """After `job` failed: the running cells of its matrix to stop, and its queued cells
        (now cancelled), when its strategy is fail-fast."""
        if not self.is_fail_fast(job):
            return [], []
        running = [j for j in self.running.values() if j.job_id == job.job_id]
        skipped = []
        for other in [p for p in self.pending if p.job_id == job.job_id]:
            self.pending.remove(other)
            self._record(other, Finished(other.key, other.job_id, Conclusion.CANCELLED))
            skipped.append(
                Skip(other, Conclusion.CANCELLED, "fail-fast: another matrix cell failed")
            )
        return running, skipped

    def continue_on_error(self, job: PlannedJob) -> bool:
        value = job.spec.continue_on_error
        if isinstance(value, bool):
            return value
        try:
            return truthy(evaluate_template(value, self.contexts(job)))  # type: ignore[arg-type]
        except ExpressionError:
            return False

    # -- internals -----------------------------------------------------------------------

    def _record(self, job: PlannedJob, result: Finished) -> None:
        self.results.setdefault(job.job_id, []).append(result)
        self.cells_left[job.job_id] = self.cells_left.get(job.job_id, 1) - 1

    def _consider(self, job: PlannedJob) -> Decision | None:
        if any(n in self.unselected for n in job.needs):
            return Skip(job, Conclusion.SKIPPED, "a job it needs was not selected")
        if not all(self.done(n) for n in job.needs):
            return None
        if self._running_cells(job.job_id) >= self._max_parallel(job):
            return None
        try:
            if not self._should_run(job):
                conclusion = Conclusion.CANCELLED if self.cancelled else Conclusion.SKIPPED
                return Skip(job, conclusion, "its if condition is false")
        except ExpressionError as exc:
            return Skip(job, Conclusion.FAILURE, str(exc))
        return Start(job)

    def _running_cells(self, job_id: str) -> int:
        return sum(1 for j in self.running.values() if j.job_id == job_id)

    def _max_parallel(self, job: PlannedJob) -> int:
        strategy = job.spec.strategy
        if strategy and isinstance(strategy.max_parallel, int):
            return strategy.max_parallel
        return 1 << 30

    def _should_run(self, job: PlannedJob) -> bool:
        status = _JobStatus([self.conclusion_of(n) for n in job.needs], self.cancelled)
        contexts = self.contexts(job)
        contexts.pop("matrix")
        contexts.pop("strategy")
        return truthy(evaluate(condition_expression(job.spec.if_), contexts, status))  # type: ignore[arg-type]

    def _expand(self, job: PlannedJob) -> list[Decision]:
        strategy = job.spec.strategy
        assert strategy is not None
        contexts = self.contexts(job)
        contexts.pop("matrix")
        try:
            matrix = evaluate_data(strategy.matrix, contexts)
            cells = expand_job(job.spec, matrix, self.selectors)
        except (ExpressionError, PlanError) as exc:
            self._record(job, Finished(job.key, job.job_id, Conclusion.FAILURE))
            return [Skip(job, Conclusion.FAILURE, str(exc))]
        self.cells_left[job.job_id] = len(cells)
        if not cells:
            self.unselected.add(job.job_id)
            return []
        self.pending[0:0] = cells
        return []

    def is_fail_fast(self, job: PlannedJob) -> bool:
        strategy = job.spec.strategy
        if strategy is None or job.matrix_total <= 1:
            return False
        if isinstance(strategy.fail_fast, bool):
            return strategy.fail_fast
        try:
            value = evaluate_template(strategy.fail_fast, self.contexts(job))  # type: ignore[arg-type]
        except ExpressionError:
            return True
        return truthy(value)


def evaluate_data(value: object, contexts: dict[str, object]) -> object:
    """Evaluate every `${{ }}` inside a structured value (a dynamic matrix)."""
    if isinstance(value, str):
        if "${{" not in value:
            return value
        return evaluate_template(value, contexts)  # type: ignore[arg-type]
    if isinstance(value, list):
        return [evaluate_data(item, contexts) for item in value]
    if isinstance(value, dict):
        return {k: evaluate_data(v, contexts) for k, v in value.items()}
    return value
