"""The run state `RunService` keeps in memory between a run's changes agrees with a replay
from the store, and a change made by another server (another `RunService` on the same
database) is noticed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from shipline.domain.records import ProjectRecord, RunRecord
from shipline.domain.status import Conclusion, Status
from shipline.engine.errors import NotFound
from shipline.engine.run_jobs import Replay
from shipline.engine.service import RunService, TriggerRequest
from shipline.scm.repository import GitRepository
from shipline.store.ports import Transaction
from shipline.store.sql.store import SqlStore
from shipline.testing import FrozenClock
from tests.integration.test_run_service import claim_all, source, world

__all__ = ["source", "world"]  # fixtures, imported to be found

World = tuple[RunService, SqlStore, ProjectRecord]


def another_server(store: SqlStore, tmp_path: Path) -> RunService:
    """A second service on the same database, as after a restart or on another server."""
    return RunService(
        store,
        FrozenClock(),
        lambda p: GitRepository(p.repository, tmp_path / "mirrors-2" / str(p.id)),
    )


def summary(replay: Replay) -> tuple[object, ...]:
    state = replay.state
    return (
        sorted(replay.planned),
        sorted(state.running),
        sorted(job.key for job in state.pending),
        {job_id: sorted(str(r.conclusion) for r in rs) for job_id, rs in state.results.items()},
        state.finished(),
        # What scheduling depends on: which stored jobs completed, and how (whether the
        # others are queued or running is the store's to say).
        sorted(
            (key, str(record.conclusion))
            for key, record in replay.stored.items()
            if record.status is Status.COMPLETED
        ),
        sorted(replay.stored),
    )


def current(store: SqlStore, run_id: int) -> RunRecord:
    with store.transaction(write=False) as tx:
        run = tx.runs.get(run_id)
    assert run is not None
    return run


def ci_run(service: RunService, project: ProjectRecord) -> RunRecord:
    request = TriggerRequest(ref="main", workflow="ci.yml")
    (run,) = service.trigger(project, request, actor="dev")
    return run


def test_the_kept_state_agrees_with_a_replay_after_every_change(
    world: World, tmp_path: Path
) -> None:
    service, store, project = world
    run = ci_run(service, project)
    conclusions = iter([Conclusion.SUCCESS, Conclusion.SUCCESS, Conclusion.FAILURE])
    rounds = 0
    while ready := claim_all(store):
        for job_id in ready:
            service.job_finished(job_id, next(conclusions, Conclusion.SUCCESS))
            fresh = another_server(store, tmp_path)  # knows nothing: replays the store
            with store.transaction(write=False) as tx:
                run = current(store, run.id)
                kept = service.live(tx, run)
                assert kept is service.live(tx, run)  # kept, not replayed each time
                assert summary(kept) == summary(fresh.replay(tx, run))
        rounds += 1
    assert rounds == 3  # build, the three cells of test, report (if: always())
    done = current(store, run.id)
    assert done.status is Status.COMPLETED and done.conclusion is Conclusion.FAILURE


def test_a_job_finished_by_another_server_is_noticed(world: World, tmp_path: Path) -> None:
    service, store, project = world
    other = another_server(store, tmp_path)
    run = ci_run(service, project)
    (build,) = claim_all(store)
    service.job_finished(build, Conclusion.SUCCESS, outputs={"version": "1"})
    first, *rest = claim_all(store)
    other.job_finished(first, Conclusion.SUCCESS)  # this service's kept state is stale now
    for job_id in rest:
        service.job_finished(job_id, Conclusion.SUCCESS)
    (report,) = claim_all(store)  # created once, when the last cell ended
    service.job_finished(report, Conclusion.SUCCESS)
    with store.transaction(write=False) as tx:
        jobs = tx.jobs.for_run(run.id)
    assert sorted(j.job_id for j in jobs) == ["build", "report", "test", "test", "test"]
    done = current(store, run.id)
    assert done.status is Status.COMPLETED and done.conclusion is Conclusion.SUCCESS


def test_a_restarted_service_finishes_a_run_begun_before(world: World, tmp_path: Path) -> None:
    service, store, project = world
    run = ci_run(service, project)
    (build,) = claim_all(store)
    service.job_finished(build, Conclusion.SUCCESS, outputs={"version": "1"})
    restarted = another_server(store, tmp_path)
    for job_id in claim_all(store):
        restarted.job_finished(job_id, Conclusion.SUCCESS)
    (report,) = claim_all(store)
    restarted.job_finished(report, Conclusion.SUCCESS)
    done = current(store, run.id)
    assert done.status is Status.COMPLETED and done.conclusion is Conclusion.SUCCESS


@pytest.mark.parametrize("stranger", [False, True])
def test_ends_that_queue_behind_the_runs_lock_are_stored_together(
    world: World, tmp_path: Path, stranger: bool
) -> None:
    """The matrix's cells end at once: the first holds the run, the two others queue and
    are stored in one transaction (their `before` runs in one thread); the run moves on
    as if they had ended one by one. A job that is not the run's, queued with them, makes
    that transaction fail: each end is then stored alone, and the stranger's fails."""
    service, store, project = world
    run = ci_run(service, project)
    (build,) = claim_all(store)
    service.job_finished(build, Conclusion.SUCCESS, outputs={"version": "1"}, run_id=run.id)
    first, second, third = claim_all(store)
    threads: dict[int, list[int]] = {}
    go = threading.Event()

    def before(job_id: int) -> Callable[[Transaction], None]:
        def write(tx: Transaction) -> None:
            threads.setdefault(job_id, []).append(threading.get_ident())
            if job_id == first:
                assert go.wait(10)

        return write

    def end(job_id: int) -> object:
        return service.job_finished(
            job_id, Conclusion.SUCCESS, before=before(job_id), run_id=run.id
        )

    with ThreadPoolExecutor(4) as pool:
        ends = [pool.submit(end, first)]
        queue = service._ends._queues
        wait_for(lambda: first in threads)
        ends += [pool.submit(end, second), pool.submit(end, third)]
        if stranger:
            wrong = pool.submit(end, build + 10_000)  # no such job in the run
        wait_for(lambda: len(queue[run.id].waiting) == 2 + stranger)
        go.set()
        for future in ends:
            future.result(10)
        if stranger:
            with pytest.raises(NotFound):
                wrong.result(10)
    assert threads[second][0] == threads[third][0] != threads[first][0]  # combined
    if stranger:  # that transaction was rolled back: each then alone, in its own thread
        assert len(threads[second]) == len(threads[third]) == 2
        assert threads[second][1] != threads[third][1]
    else:
        assert len(threads[second]) == len(threads[third]) == 1
    fresh = another_server(store, tmp_path)
    with store.transaction(write=False) as tx:
        run = current(store, run.id)
        assert summary(service.live(tx, run)) == summary(fresh.replay(tx, run))
    (report,) = claim_all(store)  # created once, when the last cell ended
    service.job_finished(report, Conclusion.SUCCESS, run_id=run.id)
    done = current(store, run.id)
    assert done.status is Status.COMPLETED and done.conclusion is Conclusion.SUCCESS


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)
