"""Runs a plan: jobs start as soon as the jobs they need have finished (a ready set, not
stage barriers), up to `parallel` at once, with GitHub's `if`, matrix, fail-fast and
max-parallel semantics.

The engine knows jobs only through the `JobDispatcher` port: `shipline run` dispatches to
an in-process runner; the server will dispatch to runners through its queue.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from shipline.domain.status import Conclusion, combine
from shipline.plan.compile import Plan, PlanError, PlannedJob, expand_job
from shipline.runner.model import JobAssignment, JobObserver, JobResult
from shipline.spec.expressions.errors import ExpressionError

STATUS_FUNCTIONS = ("success(", "failure(", "always(", "cancelled(")


class JobDispatcher(Protocol):
    """Runs one job somewhere and returns how it ended."""

    async def run(self, job: JobAssignment, cancel: asyncio.Event) -> JobResult: ...


class RunObserver(JobObserver, Protocol):
    """A `JobObserver` that also hears about jobs that never start."""

    def job_skipped(self, result: JobResult, reason: str) -> None: ...


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How to run: parallelism and what jobs may see."""

    run_id: str
    parallel: int = 2
    vars: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)
    inputs: Mapping[str, object] = field(default_factory=dict)
    debug: bool = False
    matrix_selectors: tuple[tuple[str, str], ...] = ()


@dataclass(slots=True)
class RunResult:
    conclusion: Conclusion
    jobs: list[JobResult]
    started: float
    finished: float


class _Status:
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
        raise ExpressionError("evaluation", "hashFiles is not available in a job's if", "", -1)


class Engine:
    """Schedules the jobs of one plan."""

    def __init__(
        self,
        plan: Plan,
        dispatcher: JobDispatcher,
        observer: RunObserver,
        options: RunOptions,
        github: Mapping[str, object],
        slots: asyncio.Semaphore | None = None,
    ) -> None:
        self.plan = plan
        self.slots = slots
        self.dispatcher = dispatcher
        self.observer = observer
        self.options = options
        self.github = dict(github)
        self.cancel = asyncio.Event()
        self.results: dict[str, list[JobResult]] = {}
        self.pending: list[PlannedJob] = list(plan.jobs)
        self.running: dict[str, tuple[PlannedJob, asyncio.Event]] = {}
        self.cells_left: dict[str, int] = {}
        for job in plan.jobs:
            self.cells_left[job.job_id] = self.cells_left.get(job.job_id, 0) + 1
        self.unselected = {job_id for job_id, _ in plan.not_selected}

    async def run(self) -> RunResult:
        started = time.time()
        slots = self.slots or asyncio.Semaphore(max(1, self.options.parallel))
        tasks: set[asyncio.Task[None]] = set()
        wake = asyncio.Event()
        while self.pending or tasks:
            progressed = self._start_ready(slots, tasks, wake)
            if not tasks and not progressed:
                break
            if tasks:
                wake.clear()
                waiter = asyncio.ensure_future(wake.wait())
                cancel_waiter = asyncio.ensure_future(self.cancel.wait())
                await asyncio.wait({waiter, cancel_waiter}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                cancel_waiter.cancel()
                tasks = {t for t in tasks if not t.done()}
        for job in self.pending:  # jobs that can never become ready
            self._skip(job, Conclusion.SKIPPED, "a job it needs did not run")
        all_results = [r for rs in self.results.values() for r in rs]
        conclusion = combine([r.conclusion for r in all_results])
        if self.cancel.is_set():
            conclusion = Conclusion.CANCELLED
        return RunResult(conclusion, all_results, started, time.time())

    def cancel_run(self) -> None:
        self.cancel.set()
        for _, event in self.running.values():
            event.set()

    def _done(self, job_id: str) -> bool:
        return self.cells_left.get(job_id, 0) == 0 and job_id not in self.unselected

    def _conclusion_of(self, job_id: str) -> Conclusion:
        results = self.results.get(job_id, [])
        if not results:
            return Conclusion.SKIPPED
        conclusions = [r.conclusion for r in results]
        if all(c is Conclusion.SKIPPED for c in conclusions):
            return Conclusion.SKIPPED
        return combine([c for c in conclusions if c is not Conclusion.SKIPPED])

    def _needs_context(self, job: PlannedJob) -> dict[str, object]:
        out: dict[str, object] = {}
        for need in job.needs:
            outputs: dict[str, str] = {}
            for r in self.results.get(need, []):
                outputs.update(r.outputs)
            out[need] = {"result": str(self._conclusion_of(need)), "outputs": outputs}
        return out

    def _start_ready(
        self, slots: asyncio.Semaphore, tasks: set[asyncio.Task[None]], wake: asyncio.Event
    ) -> bool:
        progressed = False
        for job in list(self.pending):
            if job not in self.pending:
                continue
            if any(n in self.unselected for n in job.needs):
                self.pending.remove(job)
                self._skip(job, Conclusion.SKIPPED, "a job it needs was not selected")
                progressed = True
                continue
            if not all(self._done(n) for n in job.needs):
                continue
            if self._running_cells(job.job_id) >= self._max_parallel(job):
                continue
            self.pending.remove(job)
            progressed = True
            try:
                if not self._should_run(job):
                    conclusion = (
                        Conclusion.CANCELLED if self.cancel.is_set() else Conclusion.SKIPPED
                    )
                    self._skip(job, conclusion, "its if condition is false")
                    continue
                if job.dynamic_matrix:
                    self._expand(job)
                    continue
            except (ExpressionError, PlanError) as exc:
                self._skip(job, Conclusion.FAILURE, str(exc))
                continue
            event = asyncio.Event()
            if self.cancel.is_set():
                event.set()
            self.running[job.key] = (job, event)
            tasks.add(asyncio.ensure_future(self._run_job(job, event, slots, wake)))
        return progressed

    def _running_cells(self, job_id: str) -> int:
        return sum(1 for j, _ in self.running.values() if j.job_id == job_id)

    def _max_parallel(self, job: PlannedJob) -> int:
        strategy = job.spec.strategy
        if strategy and isinstance(strategy.max_parallel, int):
            return strategy.max_parallel
        return 1 << 30

    def _contexts(self, job: PlannedJob) -> dict[str, object]:
        return {
            "github": {**self.github, "job": job.job_id},
            "needs": self._needs_context(job),
            "vars": dict(self.options.vars),
            "inputs": dict(self.options.inputs),
            "matrix": job.matrix_dict,
            "strategy": {"job-index": job.matrix_index, "job-total": job.matrix_total},
        }

    def _should_run(self, job: PlannedJob) -> bool:
        text = (job.spec.if_ or "").strip()
        needs = [self._conclusion_of(n) for n in job.needs]
        status = _Status(needs, self.cancel.is_set())
        if not text:
            # The default `success()`, answered without loading the expression parser.
            return status.status_function("success")
        from shipline.spec.expressions import evaluate, truthy

        if text.startswith("${{") and text.endswith("}}") and text.count("${{") == 1:
            text = text[3:-2].strip()
        if not text:
            text = "success()"  # `if: ${{ }}`
        elif not any(f in text.replace(" ", "").lower() for f in STATUS_FUNCTIONS):
            text = f"success() && ({text})"
        contexts = self._contexts(job)
        contexts.pop("matrix")
        contexts.pop("strategy")
        return truthy(evaluate(text, contexts, status))  # type: ignore[arg-type]

    def _expand(self, job: PlannedJob) -> None:
        strategy = job.spec.strategy
        assert strategy is not None
        contexts = self._contexts(job)
        contexts.pop("matrix")
        matrix = _evaluate_data(strategy.matrix, contexts)
        cells = expand_job(job.spec, matrix, list(self.options.matrix_selectors))
        self.cells_left[job.job_id] = len(cells)
        if not cells:
            self.unselected.add(job.job_id)
        self.pending[0:0] = cells

    def _skip(self, job: PlannedJob, conclusion: Conclusion, reason: str) -> None:
        result = JobResult(
            job.key,
            job.job_id,
            job.display_name,
            conclusion,
            error=reason if conclusion is Conclusion.FAILURE else None,
        )
        self._record(job, result)
        self.observer.job_skipped(result, reason)

    def _record(self, job: PlannedJob, result: JobResult) -> None:
        self.results.setdefault(job.job_id, []).append(result)
        self.cells_left[job.job_id] = self.cells_left.get(job.job_id, 1) - 1

    async def _run_job(
        self, job: PlannedJob, cancel: asyncio.Event, slots: asyncio.Semaphore, wake: asyncio.Event
    ) -> None:
        try:
            async with slots:
                if cancel.is_set():
                    result = JobResult(job.key, job.job_id, job.display_name, Conclusion.CANCELLED)
                    self.observer.job_skipped(result, "the run was cancelled")
                else:
                    result = await self.dispatcher.run(self._assignment(job), cancel)
            if result.conclusion is Conclusion.FAILURE and self._continue_on_error(job):
                result.conclusion = Conclusion.SUCCESS
            self._record(job, result)
            if result.conclusion is Conclusion.FAILURE and self._fail_fast(job):
                self._cancel_siblings(job)
        finally:
            self.running.pop(job.key, None)
            wake.set()

    def _assignment(self, job: PlannedJob) -> JobAssignment:
        return JobAssignment(
            run_id=self.options.run_id,
            planned=job,
            workflow=self.plan.workflow,
            event=self.plan.event,
            github={**self.github, "job": job.job_id},
            needs=self._needs_context(job),
            vars=self.options.vars,
            secrets=self.options.secrets,
            inputs=self.options.inputs,
            debug=self.options.debug,
        )

    def _continue_on_error(self, job: PlannedJob) -> bool:
        value = job.spec.continue_on_error
        if isinstance(value, bool):
            return value
        from shipline.spec.expressions import evaluate_template, truthy

        try:
            return truthy(evaluate_template(value, self._contexts(job)))  # type: ignore[arg-type]
        except ExpressionError:
            return False

    def _fail_fast(self, job: PlannedJob) -> bool:
        strategy = job.spec.strategy
        if strategy is None or job.matrix_total <= 1:
            return False
        if isinstance(strategy.fail_fast, bool):
            return strategy.fail_fast
        from shipline.spec.expressions import evaluate_template, truthy

        try:
            value = evaluate_template(strategy.fail_fast, self._contexts(job))  # type: ignore[arg-type]
            return truthy(value)
        except ExpressionError:
            return True

    def _cancel_siblings(self, job: PlannedJob) -> None:
        for other, event in self.running.values():
            if other.job_id == job.job_id and other.key != job.key:
                event.set()
        for other in [p for p in self.pending if p.job_id == job.job_id]:
            self.pending.remove(other)
            self._skip(other, Conclusion.CANCELLED, "fail-fast: another matrix cell failed")


def _evaluate_data(value: object, contexts: dict[str, object]) -> object:
    """Evaluate every `${{ }}` inside a structured value (a dynamic matrix)."""
    from shipline.spec.expressions import evaluate_template

    if isinstance(value, str):
        return evaluate_template(value, contexts) if "${{" in value else value  # type: ignore[arg-type]
    if isinstance(value, list):
        out: list[object] = []
        for item in value:
            evaluated = _evaluate_data(item, contexts)
            out.append(evaluated)
        return out
    if isinstance(value, dict):
        return {k: _evaluate_data(v, contexts) for k, v in value.items()}
    return value
