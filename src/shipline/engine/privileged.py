"""Privileged pull request triggers: `pull_request_target`, as on GitHub.

A pull request event (hosted or announced by a webhook) also raises `pull_request_target`
at the base branch: the workflow files are read from the base branch's commit (the pull
request cannot change them), the run is trusted and checks out the base commit by default.
Checking out the pull request's head in such a run is refused — at plan time when a
checkout's `ref:` names it (`plan.trust.untrusted_checkouts`: the run fails before any job
starts), and again by `actions/checkout` on the evaluated ref — unless the job sets
`unsafe_execute_untrusted_code: true`. A job that sets it still gets no environment
secrets and saves caches only to an untrusted scope (`engine.assignments`,
`engine.secrets`). Both the refusal and the opt-in are audited.
"""

from __future__ import annotations

from shipline.domain.clock import Clock
from shipline.domain.records import ProjectRecord, RunRecord, Trust
from shipline.domain.status import Conclusion
from shipline.engine.service import RunService
from shipline.plan.events import Event
from shipline.plan.trust import untrusted_checkouts
from shipline.spec.workflow import load_workflow
from shipline.store.ports import Store

__all__ = ["TARGET_EVENT", "trigger_target"]

TARGET_EVENT = "pull_request_target"


def trigger_target(
    store: Store,
    clock: Clock,
    runs: RunService,
    project: ProjectRecord,
    pull_event: Event,
    base_sha: str,
) -> list[RunRecord]:
    """Start the base branch's `pull_request_target` workflows for `pull_event` (a
    `pull_request` event); audits every run that checks out the pull request's code."""
    if not pull_event.base_ref or not base_sha:
        return []
    event = Event(
        name=TARGET_EVENT,
        ref=f"refs/heads/{pull_event.base_ref}",
        sha=base_sha,
        repository=pull_event.repository,
        actor=pull_event.actor,
        before=pull_event.before,
        base_ref=pull_event.base_ref,
        head_ref=pull_event.head_ref,
        action=pull_event.action,
        changed_paths=pull_event.changed_paths,
        payload=pull_event.payload,
    )
    started = runs.trigger_event(project, event, trust=Trust.TRUSTED, fetch=False)
    for run in started:
        _audit(store, clock, project, run)
    return started


def _audit(store: Store, clock: Clock, project: ProjectRecord, run: RunRecord) -> None:
    with store.transaction(write=False) as tx:
        text, _ = tx.runs.definition(run.id)
    spec, _ = load_workflow(text, run.workflow_file)
    if spec is None:
        return
    checkouts = untrusted_checkouts(spec.jobs)
    if not checkouts:
        return
    blocked = run.conclusion is Conclusion.FAILURE and any(not c.allowed for c in checkouts)
    with store.transaction() as tx:
        tx.audit.append(
            actor=run.actor,
            action="run.untrusted_checkout",
            now=clock.now(),
            decision="denied" if blocked else "allowed",
            project_id=project.id,
            target=f"run:{run.id}",
            reason=(
                "a privileged run checks out the pull request's code without "
                "unsafe_execute_untrusted_code"
                if blocked
                else "unsafe_execute_untrusted_code: true"
            ),
            data={
                "event": run.event,
                "sha": run.sha,
                "jobs": sorted({c.job for c in checkouts if c.allowed or blocked}),
            },
        )
