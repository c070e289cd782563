"""What a runner is handed for a claimed job, computed from the store: the planned job, its
workflow and event, and the `github`, `needs` and `inputs` contexts. One function for the
embedded runner and for remote runners, so both run a job with the same contexts."""

from __future__ import annotations

from dataclasses import dataclass

from shipline.domain.records import JobRecord, RunRecord
from shipline.domain.status import Conclusion, combine
from shipline.engine.run_contexts import github_context
from shipline.engine.service import RunService
from shipline.runner.model import JobAssignment
from shipline.store.ports import Store


@dataclass(frozen=True, slots=True)
class Prepared:
    """A claimed job's assignment, with its run and the workflow text it was planned from."""

    assignment: JobAssignment
    run: RunRecord
    workflow_text: str


def prepare(store: Store, runs: RunService, job: JobRecord) -> Prepared:
    """The assignment of `job`; `LookupError` when the job is not in its run's plan."""
    with store.transaction(write=False) as tx:
        run = tx.runs.get(job.run_id)
        if run is None:
            raise LookupError(f"run {job.run_id} of job {job.id} is gone")
        project = tx.projects.get_by_id(run.project_id)
        if project is None:
            raise LookupError(f"the project of run {run.id} is gone")
        text, payload = tx.runs.definition(run.id)
        replay = runs.replay(tx, run)
        siblings = tx.jobs.for_run(run.id, run.attempt)
    plan = replay.plan
    planned = replay.planned.get(job.key)
    if planned is None:
        raise LookupError(f"job {job.key!r} is not in the plan of run {run.id}")
    needs: dict[str, object] = {}
    for need in planned.needs:
        records = [s for s in siblings if s.job_id == need]
        outputs: dict[str, object] = {}
        for record in records:
            if isinstance(record.outputs, dict):
                outputs.update(record.outputs)
        conclusions = [r.conclusion for r in records if r.conclusion is not None]
        result = combine(conclusions) if conclusions else Conclusion.SKIPPED
        needs[need] = {"result": str(result), "outputs": outputs}
    inputs = run.inputs if isinstance(run.inputs, dict) else {}
    assignment = JobAssignment(
        run_id=str(run.id),
        planned=planned,
        workflow=plan.workflow,
        event=plan.event,
        github=github_context(run, project, payload),
        needs=needs,
        inputs=inputs,
    )
    return Prepared(assignment, run, text)


def continue_on_error(store: Store, runs: RunService, run: RunRecord, job: JobRecord) -> bool:
    """Whether the job's `continue-on-error` turns its failure into the run's success."""
    with store.transaction(write=False) as tx:
        replay = runs.replay(tx, run)
    planned = replay.planned.get(job.key)
    return planned is not None and replay.state.continue_on_error(planned)
