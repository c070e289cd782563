"""Runs a plan in this process: jobs start as soon as the jobs they need have finished (a
ready set, not stage barriers), up to `parallel` at once.

Which job starts, is skipped or is cancelled is decided by `engine.dag.RunState`, the same
decisions the server makes from its stored jobs; this module only runs the jobs it starts,
through the `JobDispatcher` port.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from shipline.domain.status import Conclusion
from shipline.engine.dag import Decision, Finished, RunState, Skip
from shipline.plan.compile import Plan, PlannedJob
from shipline.runner.model import JobAssignment, JobObserver, JobResult


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
        self.state = RunState(
            plan,
            github=github,
            vars=options.vars,
            inputs=options.inputs,
            matrix_selectors=options.matrix_selectors,
        )
        self.results: list[JobResult] = []
        self.running: dict[str, tuple[PlannedJob, asyncio.Event, asyncio.Task[JobResult]]] = {}

    async def run(self) -> RunResult:
        started = time.time()
        slots = self.slots or asyncio.Semaphore(max(1, self.options.parallel))
        self._apply(self.state.decide(), slots)
        while self.running:
            tasks = {task for _, _, task in self.running.values()}
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for key, (job, _, task) in list(self.running.items()):
                if task in done:
                    del self.running[key]
                    self._finished(job, task.result())
            self._apply(self.state.decide(), slots)
        return RunResult(self.state.conclusion(), self.results, started, time.time())

    def cancel_run(self) -> None:
        self.cancel.set()
        self.state.cancel()
        for _, event, _ in self.running.values():
            event.set()

    def _apply(self, decisions: list[Decision], slots: asyncio.Semaphore) -> None:
        for decision in decisions:
            job = decision.job
            if isinstance(decision, Skip):
                self._skipped(job, decision.conclusion, decision.reason)
                continue
            # A job that starts after the run was cancelled runs because its `if` asked for
            # it (always(), cancelled()): it is not cancelled in turn.
            event = asyncio.Event()
            task = asyncio.ensure_future(self._run_job(job, event, slots))
            self.running[job.key] = (job, event, task)

    def _skipped(self, job: PlannedJob, conclusion: Conclusion, reason: str) -> None:
        result = JobResult(
            job.key,
            job.job_id,
            job.display_name,
            conclusion,
            error=reason if conclusion is Conclusion.FAILURE else None,
        )
        self.results.append(result)
        self.observer.job_skipped(result, reason)

    def _finished(self, job: PlannedJob, result: JobResult) -> None:
        if result.conclusion is Conclusion.FAILURE and self.state.continue_on_error(job):
            result.conclusion = Conclusion.SUCCESS
        self.results.append(result)
        self.state.record(Finished(job.key, job.job_id, result.conclusion, result.outputs))
        if result.conclusion is Conclusion.FAILURE:
            to_stop, cancelled = self.state.fail_fast(job)
            for other in to_stop:
                self.running[other.key][1].set()
            for skip in cancelled:
                self._skipped(skip.job, skip.conclusion, skip.reason)

    async def _run_job(
        self, job: PlannedJob, cancel: asyncio.Event, slots: asyncio.Semaphore
    ) -> JobResult:
        async with slots:
            if cancel.is_set():
                result = JobResult(job.key, job.job_id, job.display_name, Conclusion.CANCELLED)
                self.observer.job_skipped(result, "the run was cancelled")
                return result
            return await self.dispatcher.run(self._assignment(job), cancel)

    def _assignment(self, job: PlannedJob) -> JobAssignment:
        return JobAssignment(
            run_id=self.options.run_id,
            planned=job,
            workflow=self.plan.workflow,
            event=self.plan.event,
            github={**self.github, "job": job.job_id},
            needs=self.state.needs_context(job),
            vars=self.options.vars,
            secrets=self.options.secrets,
            inputs=self.options.inputs,
            debug=self.options.debug,
        )
