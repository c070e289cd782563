"""The server's run service on a real git repository and a real SQLite store."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from shipline.domain.records import ProjectRecord
from shipline.domain.status import Conclusion, Status
from shipline.engine.errors import Invalid
from shipline.engine.service import RunService, TriggerRequest
from shipline.scm.repository import GitRepository
from shipline.store.sql.store import SqlStore
from shipline.testing import FrozenClock

PIPELINE = """
    on: [push, workflow_dispatch]
    jobs:
      build:
        runs-on: ubuntu-latest
        outputs:
          version: ${{ steps.v.outputs.version }}
        steps: [{id: v, run: echo version=1 >> $GITHUB_OUTPUT}]
      test:
        needs: build
        runs-on: ubuntu-latest
        strategy:
          matrix:
            n: [1, 2, 3]
        steps: [{run: 'true'}]
      report:
        needs: test
        if: always()
        runs-on: ubuntu-latest
        steps: [{run: 'true'}]
"""


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    repo = tmp_path / "source"
    (repo / ".shipline" / "workflows").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "dev@example.com")
    git(repo, "config", "user.name", "Dev")
    (repo / ".shipline" / "workflows" / "ci.yml").write_text(textwrap.dedent(PIPELINE))
    (repo / ".shipline" / "workflows" / "broken.yml").write_text(
        "on: workflow_dispatch\njobs:\n  x:\n    runs-on: x\n    steps:\n      - runn: echo\n"
    )
    (repo / ".shipline" / "workflows" / "inputs.yml").write_text(
        textwrap.dedent("""
        on:
          workflow_dispatch:
            inputs:
              level: {type: choice, options: [low, high], required: true}
        jobs:
          a: {runs-on: x, steps: [{run: 'true'}]}
    """)
    )
    (repo / ".shipline" / "workflows" / "deploy.yml").write_text(
        textwrap.dedent("""
        on: workflow_dispatch
        concurrency:
          group: deploy-${{ github.ref }}
        jobs:
          a: {runs-on: x, steps: [{run: 'true'}]}
    """)
    )
    (repo / ".shipline" / "workflows" / "latest.yml").write_text(
        textwrap.dedent("""
        on: workflow_dispatch
        concurrency:
          group: latest
          cancel-in-progress: true
        jobs:
          a: {runs-on: x, steps: [{run: 'true'}]}
    """)
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "pipeline")
    return repo


@pytest.fixture
def world(tmp_path: Path, source: Path) -> tuple[RunService, SqlStore, ProjectRecord]:
    store = SqlStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with store.transaction() as tx:
        project = tx.projects.create("acme/app", str(source))
    service = RunService(
        store,
        FrozenClock(),
        lambda p: GitRepository(p.repository, tmp_path / "mirrors" / str(p.id)),
    )
    return service, store, project


def claim_all(store: SqlStore) -> list[int]:
    claimed = []
    while True:
        with store.transaction() as tx:
            job = tx.jobs.claim("runner-1", None, lease_seconds=60, now=FrozenClock().now())
        if job is None:
            return claimed
        claimed.append(job.id)


def test_a_push_runs_the_dag_to_success(world: tuple[RunService, SqlStore, ProjectRecord]) -> None:
    service, store, project = world
    runs = service.trigger(project, TriggerRequest(ref="main", event="push"), actor="dev")
    # As on GitHub, an invalid workflow file shows up as a failed run on every push.
    by_file = {r.workflow_file: r for r in runs}
    assert sorted(by_file) == [".shipline/workflows/broken.yml", ".shipline/workflows/ci.yml"]
    assert by_file[".shipline/workflows/broken.yml"].conclusion is Conclusion.FAILURE
    run = by_file[".shipline/workflows/ci.yml"]
    assert run.status is Status.QUEUED
    assert sorted(r.number for r in runs) == [1, 2]
    first = claim_all(store)
    assert len(first) == 1  # only build is ready
    service.job_started(first[0])
    service.job_finished(first[0], Conclusion.SUCCESS, outputs={"version": "1"})
    cells = claim_all(store)
    assert len(cells) == 3  # the three matrix cells of test, at once
    for job_id in cells:
        service.job_finished(job_id, Conclusion.SUCCESS)
    report = claim_all(store)
    assert len(report) == 1
    service.job_finished(report[0], Conclusion.SUCCESS)
    with store.transaction() as tx:
        done = tx.runs.get(run.id)
        jobs = tx.jobs.for_run(run.id)
        trail = [a.action for a in tx.audit.iterate()]
    assert done is not None
    assert done.status is Status.COMPLETED and done.conclusion is Conclusion.SUCCESS
    assert [j.key for j in jobs] == ["build", "test (1)", "test (2)", "test (3)", "report"]
    assert jobs[0].outputs == {"version": "1"}
    assert "run.trigger" in trail


def test_fail_fast_cancels_queued_cells_and_always_still_runs(
    world: tuple[RunService, SqlStore, ProjectRecord],
) -> None:
    service, store, project = world
    run = service.trigger(
        project, TriggerRequest(ref="main", workflow="ci.yml", event="push"), actor="dev"
    )[0]
    build = claim_all(store)[0]
    service.job_finished(build, Conclusion.SUCCESS)
    with store.transaction() as tx:
        one = tx.jobs.claim("runner-1", None, lease_seconds=60, now=FrozenClock().now())
    assert one is not None
    service.job_finished(one.id, Conclusion.FAILURE)
    with store.transaction() as tx:
        jobs = {j.key: j for j in tx.jobs.for_run(run.id)}
    others = [j for k, j in jobs.items() if k.startswith("test") and j.id != one.id]
    assert all(j.conclusion is Conclusion.CANCELLED for j in others)
    report = claim_all(store)
    assert len(report) == 1  # `if: always()`
    service.job_finished(report[0], Conclusion.SUCCESS)
    with store.transaction() as tx:
        done = tx.runs.get(run.id)
    assert done is not None and done.conclusion is Conclusion.FAILURE


def test_a_broken_workflow_gives_a_failed_run_with_diagnostics(
    world: tuple[RunService, SqlStore, ProjectRecord],
) -> None:
    service, _, project = world
    runs = service.trigger(project, TriggerRequest(ref="main", workflow="broken.yml"), actor="dev")
    assert len(runs) == 1
    assert runs[0].conclusion is Conclusion.FAILURE
    assert runs[0].error is not None and "broken.yml:6:9" in runs[0].error


def test_dispatch_inputs_are_checked(world: tuple[RunService, SqlStore, ProjectRecord]) -> None:
    service, _, project = world
    with pytest.raises(Invalid) as info:
        service.trigger(
            project, TriggerRequest(workflow="inputs.yml", inputs={"level": "medium"}), actor="dev"
        )
    assert info.value.field == "inputs.level"
    runs = service.trigger(
        project, TriggerRequest(workflow="inputs.yml", inputs={"level": "high"}), actor="dev"
    )
    assert runs[0].inputs == {"level": "high"}


def test_cancel_ends_queued_jobs_and_the_run(
    world: tuple[RunService, SqlStore, ProjectRecord],
) -> None:
    service, store, project = world
    run = service.trigger(
        project, TriggerRequest(ref="main", workflow="ci.yml", event="push"), actor="dev"
    )[0]
    cancelled = service.cancel(run.id, actor="dev")
    assert cancelled.conclusion is Conclusion.CANCELLED
    assert claim_all(store) == []


def test_rerun_failed_jobs_keeps_the_successful_ones(
    world: tuple[RunService, SqlStore, ProjectRecord],
) -> None:
    service, store, project = world
    run = service.trigger(
        project, TriggerRequest(ref="main", workflow="ci.yml", event="push"), actor="dev"
    )[0]
    build = claim_all(store)[0]
    service.job_finished(build, Conclusion.SUCCESS, outputs={"version": "1"})
    cells = claim_all(store)
    service.job_finished(cells[0], Conclusion.FAILURE)  # fail-fast tells the others to stop
    for job_id in cells[1:]:  # ...and their runners report them cancelled
        service.job_finished(job_id, Conclusion.CANCELLED)
    for job_id in claim_all(store):  # report (if: always())
        service.job_finished(job_id, Conclusion.SUCCESS)
    with store.transaction() as tx:
        first = tx.runs.get(run.id)
    assert first is not None and first.conclusion is Conclusion.FAILURE

    again = service.rerun(run.id, actor="dev", failed_only=True)
    assert again.attempt == 2 and again.status is Status.QUEUED
    with store.transaction() as tx:
        jobs = {j.key: j for j in tx.jobs.for_run(run.id)}
        old = tx.jobs.for_run(run.id, attempt=1)
    assert jobs["build"].conclusion is Conclusion.SUCCESS  # kept, with its outputs
    assert jobs["build"].outputs == {"version": "1"}
    assert len(old) == 5  # the first attempt's jobs are still there
    cells = claim_all(store)
    assert len(cells) == 3  # the failed job's cells run again, straight away
    for job_id in cells:
        service.job_finished(job_id, Conclusion.SUCCESS)
    for job_id in claim_all(store):
        service.job_finished(job_id, Conclusion.SUCCESS)
    with store.transaction() as tx:
        done = tx.runs.get(run.id)
    assert done is not None and done.conclusion is Conclusion.SUCCESS


def test_rerun_needs_a_completed_run(world: tuple[RunService, SqlStore, ProjectRecord]) -> None:
    from shipline.engine.errors import Conflict

    service, _, project = world
    run = service.trigger(
        project, TriggerRequest(ref="main", workflow="ci.yml", event="push"), actor="dev"
    )[0]
    with pytest.raises(Conflict):
        service.rerun(run.id, actor="dev")


def run_status(store: SqlStore, run_id: int) -> tuple[Status, Conclusion | None]:
    with store.transaction() as tx:
        run = tx.runs.get(run_id)
    assert run is not None
    return run.status, run.conclusion


def test_concurrency_group_one_running_one_pending(
    world: tuple[RunService, SqlStore, ProjectRecord],
) -> None:
    service, store, project = world

    def trigger() -> int:
        return service.trigger(project, TriggerRequest(workflow="deploy.yml"), actor="dev")[0].id

    first, second, third = trigger(), trigger(), trigger()
    assert run_status(store, first) == (Status.QUEUED, None)
    assert run_status(store, second) == (Status.COMPLETED, Conclusion.CANCELLED)  # replaced
    assert run_status(store, third) == (Status.WAITING, None)
    jobs = claim_all(store)
    assert len(jobs) == 1  # only the first run's job: the pending run has none yet
    service.job_finished(jobs[0], Conclusion.SUCCESS)
    assert run_status(store, first) == (Status.COMPLETED, Conclusion.SUCCESS)
    assert run_status(store, third) == (Status.QUEUED, None)  # its turn now
    assert len(claim_all(store)) == 1


def test_concurrency_cancel_in_progress(world: tuple[RunService, SqlStore, ProjectRecord]) -> None:
    service, store, project = world
    first = service.trigger(project, TriggerRequest(workflow="latest.yml"), actor="dev")[0]
    claim_all(store)
    second = service.trigger(project, TriggerRequest(workflow="latest.yml"), actor="dev")[0]
    assert run_status(store, first.id) == (Status.COMPLETED, Conclusion.CANCELLED)
    assert run_status(store, second.id) == (Status.QUEUED, None)


def test_schedules_fire_once_when_due_without_replaying_missed_ticks(
    tmp_path: Path, source: Path
) -> None:
    from datetime import timedelta

    from shipline.engine.schedules import Scheduler

    (source / ".shipline" / "workflows" / "nightly.yml").write_text(
        textwrap.dedent("""
        on:
          schedule:
            - cron: "0 3 * * *"
        jobs:
          a: {runs-on: x, steps: [{run: 'true'}]}
    """)
    )
    git(source, "add", "-A")
    git(source, "commit", "-q", "-m", "nightly")
    store = SqlStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with store.transaction() as tx:
        tx.projects.create("acme/app", str(source))
    clock = FrozenClock()
    repos = lambda p: GitRepository(p.repository, tmp_path / "mirrors" / str(p.id))  # noqa: E731
    scheduler = Scheduler(store, RunService(store, clock, repos), clock, repos)
    scheduler.load()
    assert scheduler.tick() == []  # nothing due yet
    clock.advance(timedelta(days=3))  # three 03:00 ticks missed (the server was down)
    fired = scheduler.tick()
    assert len(fired) == 1  # one run, not three
    assert scheduler.tick() == []
    with store.transaction() as tx:
        run = tx.runs.get(fired[0])
    assert run is not None and run.event == "schedule" and run.actor == "schedule"


def test_two_jobs_starting_together_both_start(
    world: tuple[RunService, SqlStore, ProjectRecord],
) -> None:
    service, store, project = world
    run = service.trigger(
        project, TriggerRequest(ref="main", workflow="ci.yml", event="push"), actor="dev"
    )[0]
    service.job_finished(claim_all(store)[0], Conclusion.SUCCESS)
    cells = claim_all(store)
    with store.transaction() as tx:  # as if another server had already marked it running
        tx.runs.set_status(run.id, Status.IN_PROGRESS, now=FrozenClock().now())
    for job_id in cells:
        service.job_started(job_id)  # no InvalidTransition escapes
    assert run_status(store, run.id) == (Status.IN_PROGRESS, None)
