"""The server's embedded runner: real store, real git, real bash, the same JobRunner as
`shipline run`."""

from __future__ import annotations

import asyncio
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from shipline.domain.clock import SystemClock
from shipline.domain.records import ProjectRecord, RunRecord
from shipline.domain.status import Conclusion, Status
from shipline.engine.embedded import EmbeddedRunner
from shipline.engine.service import RunService, TriggerRequest
from shipline.executors.shell import ShellExecutor
from shipline.runner.job import JobRunner
from shipline.runner.model import JobObserver
from shipline.scm.git_checkout import GitSourceProvider
from shipline.scm.repository import GitRepository
from shipline.store.blobs import BlobStore
from shipline.store.local import LocalArtifactStore, LocalCacheStore
from shipline.store.sql.store import SqlStore

WORKFLOW = """
    on: push
    jobs:
      build:
        runs-on: ubuntu-latest
        outputs:
          word: ${{ steps.w.outputs.word }}
        steps:
          - uses: actions/checkout@v4
          - id: w
            run: |
              echo "building $(cat version.txt)"
              echo "word=hello" >> "$GITHUB_OUTPUT"
      test:
        needs: build
        runs-on: ubuntu-latest
        strategy:
          matrix:
            n: [1, 2]
        steps:
          - run: echo "cell ${{ matrix.n }} got ${{ needs.build.outputs.word }}"
"""


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[SqlStore, RunService, ProjectRecord, EmbeddedRunner]:
    source = tmp_path / "source"
    (source / ".shipline" / "workflows").mkdir(parents=True)
    git(source, "init", "-q", "-b", "main")
    git(source, "config", "user.email", "dev@example.com")
    git(source, "config", "user.name", "Dev")
    (source / ".shipline" / "workflows" / "ci.yml").write_text(textwrap.dedent(WORKFLOW))
    (source / "version.txt").write_text("1.2.3\n")
    git(source, "add", "-A")
    git(source, "commit", "-q", "-m", "pipeline")
    store = SqlStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    clock = SystemClock()
    with store.transaction() as tx:
        project = tx.projects.create("acme/app", str(source))
    mirrors = tmp_path / "mirrors"
    runs = RunService(store, clock, lambda p: GitRepository(p.repository, mirrors / str(p.id)))
    blobs = BlobStore(tmp_path / "blobs")

    def make_runner(observer: JobObserver, run: RunRecord) -> JobRunner:
        return JobRunner(
            ShellExecutor(kill_grace=1.0),
            observer,
            work_root=tmp_path / "work" / str(run.id),
            artifacts=LocalArtifactStore(blobs, tmp_path / "runs" / str(run.id)),
            caches=LocalCacheStore(blobs, tmp_path / "caches.json"),
            source=GitSourceProvider(mirrors / str(run.project_id)),
            host_env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
        )

    runner = EmbeddedRunner(
        store,
        runs,
        clock,
        slots=2,
        make_runner=make_runner,
        owner="embedded:test",
        poll_interval=0.05,
    )
    return store, runs, project, runner


async def until_completed(store: SqlStore, run_id: int, timeout: float = 60) -> RunRecord:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        with store.transaction() as tx:
            run = tx.runs.get(run_id)
        assert run is not None
        if run.status is Status.COMPLETED:
            return run
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} did not complete")


def drive(store: SqlStore, runner: EmbeddedRunner, run_id: int) -> RunRecord:
    """Run the embedded runner until run `run_id` completes, then stop it."""

    async def scenario() -> RunRecord:
        task = asyncio.ensure_future(runner.run())
        try:
            return await until_completed(store, run_id)
        finally:
            await runner.stop(grace=5)
            await task

    return asyncio.run(scenario())


def test_a_run_goes_from_trigger_to_success_with_logs(
    setup: tuple[SqlStore, RunService, ProjectRecord, EmbeddedRunner],
) -> None:
    store, runs, project, runner = setup
    run = runs.trigger(project, TriggerRequest(ref="main", event="push"), actor="dev")[0]

    done = drive(store, runner, run.id)
    assert done.conclusion is Conclusion.SUCCESS, done.error
    with store.transaction() as tx:
        jobs = tx.jobs.for_run(run.id)
        logs = {j.key: b"".join(c.data for c in tx.logs.read(j.id)).decode() for j in jobs}
        steps = tx.steps.for_job(jobs[0].id)
    assert "building 1.2.3" in logs["build"]
    assert "cell 1 got hello" in logs["test (1)"]
    assert "cell 2 got hello" in logs["test (2)"]
    assert [s.conclusion for s in steps] == [Conclusion.SUCCESS, Conclusion.SUCCESS]
    assert all(s.started_at is not None and s.finished_at is not None for s in steps)
    assert all(s.started_at <= s.finished_at for s in steps)  # type: ignore[operator]


def test_a_job_whose_assignment_cannot_be_read_fails_with_the_reason(
    setup: tuple[SqlStore, RunService, ProjectRecord, EmbeddedRunner],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The claim's transaction reads what the job's runner needs; when that read fails,
    the claim still commits and the job fails with the reason (it is not queued again)."""
    from shipline.engine import embedded

    def unreadable(*_args: object, **_kwargs: object) -> None:
        raise LookupError("job 'build' is not in the plan of the run")

    monkeypatch.setattr(embedded, "read_assignment", unreadable)
    store, runs, project, runner = setup
    run = runs.trigger(project, TriggerRequest(ref="main", event="push"), actor="dev")[0]

    done = drive(store, runner, run.id)
    assert done.conclusion is Conclusion.FAILURE
    with store.transaction() as tx:
        build = next(j for j in tx.jobs.for_run(run.id) if j.key == "build")
    assert (build.status, build.conclusion, build.tries) == (
        Status.COMPLETED,
        Conclusion.FAILURE,
        1,
    )
    assert build.error is not None and "cannot prepare the job" in build.error
    assert "not in the plan" in build.error


def test_jobs_left_by_a_killed_server_are_retried(
    setup: tuple[SqlStore, RunService, ProjectRecord, EmbeddedRunner],
) -> None:
    store, runs, project, runner = setup
    run = runs.trigger(project, TriggerRequest(ref="main", event="push"), actor="dev")[0]
    with store.transaction() as tx:  # the previous process claimed the job, then died
        claimed = tx.jobs.claim("embedded:test", None, lease_seconds=60, now=SystemClock().now())
    assert claimed is not None
    recovered = runner.recover()
    assert [j.id for j in recovered] == [claimed.id]
    with store.transaction() as tx:
        again = tx.jobs.get(claimed.id)
    assert again is not None and again.status is Status.QUEUED

    assert drive(store, runner, run.id).conclusion is Conclusion.SUCCESS


def test_a_stopped_runner_leaves_the_run_services_listeners(
    setup: tuple[SqlStore, RunService, ProjectRecord, EmbeddedRunner],
) -> None:
    _, runs, _, runner = setup
    before = list(runs.queued_listeners)

    async def scenario() -> list[object]:
        task = asyncio.ensure_future(runner.run())
        await asyncio.sleep(0.2)
        running = list(runs.queued_listeners)
        await runner.stop(grace=1)
        await asyncio.wait_for(task, timeout=10)
        return running

    running = asyncio.run(scenario())
    assert len(running) == len(before) + 1  # it listened while it ran
    assert runs.queued_listeners == before  # and no longer once stopped
    runs.wake_runners()  # queuing jobs after the stop wakes no dead loop
