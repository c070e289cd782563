"""The store contract (`shipline.store.ports`), run against every implementation: the SQL
store on a SQLite file and on PostgreSQL.

Each test gets an empty, migrated database. Concurrency tests use one transaction per
thread, as servers and runners do.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text

from shipline.domain.audit_chain import verify
from shipline.domain.records import Role, StepRecord, TokenKind, Trust
from shipline.domain.status import Conclusion, Status
from shipline.domain.transitions import InvalidTransition
from shipline.store.ports import Conflict, NewJob, NewRun, NotFound, RunFilter, Store
from shipline.store.sql import SqlStore, current_revision, upgrade
from shipline.store.sql.migrations import head_revision
from shipline.store.sql.schema import metadata
from tests.contract.store_backends import empty_url, pg_database, url

__all__ = ["empty_url", "pg_database", "url"]  # fixtures, imported to be found

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
THREADS = 8


@pytest.fixture
def store(url: str) -> Iterator[SqlStore]:
    opened = SqlStore(url, create=False)  # migrated already
    yield opened
    opened.close()


def new_run(project_id: int, **changes: object) -> NewRun:
    fields: dict[str, object] = {
        "project_id": project_id,
        "workflow_file": ".shipline/workflows/ci.yml",
        "workflow_name": "CI",
        "workflow_text": "on: push\njobs: {}\n",
        "event": "push",
        "ref": "refs/heads/main",
        "sha": "a" * 40,
        "actor": "alice",
    }
    fields.update(changes)
    return NewRun(**fields)  # type: ignore[arg-type]


def a_project(store: Store, name: str = "web") -> int:
    with store.transaction() as tx:
        return tx.projects.create(name, f"/srv/git/{name}").id


def a_run(store: Store, project_id: int, **changes: object) -> int:
    with store.transaction() as tx:
        return tx.runs.create(new_run(project_id, **changes), now=T0).id


def queued_jobs(store: Store, count: int, runs_on: tuple[str, ...] = ()) -> list[int]:
    project_id = a_project(store, f"p{count}-{'-'.join(runs_on)}")
    run_id = a_run(store, project_id)
    with store.transaction() as tx:
        jobs = [
            NewJob(key=f"j{i}", job_id=f"j{i}", name=f"j{i}", runs_on=runs_on) for i in range(count)
        ]
        return [job.id for job in tx.jobs.create(run_id, 1, jobs, now=T0)]


def in_threads(work: Callable[[int], None], count: int = THREADS) -> None:
    """Run `work(i)` in `count` threads started together; re-raise the first failure."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def body(i: int) -> None:
        try:
            barrier.wait()
            work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


# --- schema and migrations --------------------------------------------------------------


def test_migrations_build_exactly_the_schema_of_the_code(empty_url: str) -> None:
    assert current_revision(empty_url) is None
    upgrade(empty_url)
    upgrade(empty_url)  # a second time: nothing to do
    assert current_revision(empty_url) == head_revision() is not None
    engine = create_engine(empty_url)
    try:
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    finally:
        engine.dispose()


def test_the_schema_comparison_sees_a_missing_table(empty_url: str) -> None:
    engine = create_engine(empty_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()
    assert {d[1].name for d in diff if d[0] == "add_table"} >= {"runs", "jobs", "audit_events"}


def test_opening_a_store_migrates_its_database(empty_url: str) -> None:
    SqlStore(empty_url).close()
    assert current_revision(empty_url) == head_revision()


# --- transactions -----------------------------------------------------------------------


def test_a_transaction_that_raises_leaves_nothing_behind(store: SqlStore) -> None:
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.projects.create("web", "/srv/git/web")
        raise RuntimeError("boom")
    with store.transaction() as tx:
        assert tx.projects.get("web") is None


def test_a_conflict_leaves_the_transaction_usable(store: SqlStore) -> None:
    with store.transaction() as tx:
        tx.projects.create("web", "/srv/git/web")
        with pytest.raises(Conflict):
            tx.projects.create("web", "/elsewhere")
        tx.projects.create("api", "/srv/git/api")
    with store.transaction(write=False) as tx:
        assert [p.name for p in tx.projects.page().items] == ["api", "web"]


# --- projects ---------------------------------------------------------------------------


def test_projects_create_get_page_delete(store: SqlStore) -> None:
    with store.transaction() as tx:
        web = tx.projects.create("web", "/srv/git/web", default_branch="trunk")
        assert tx.projects.get("web") == web
        assert tx.projects.get_by_id(web.id) == web
        assert tx.projects.get("nope") is None and tx.projects.get_by_id(999) is None
        assert web.default_branch == "trunk"
        assert web.created_at is not None and web.created_at.tzinfo is not None
    run_id = a_run(store, web.id)
    with store.transaction() as tx:
        tx.projects.delete(web.id)
        tx.projects.delete(web.id)  # deleting what is gone is no error
    with store.transaction() as tx:
        assert tx.projects.get("web") is None
        assert tx.runs.get(run_id) is None  # its runs went with it


def test_duplicate_project_name_is_a_conflict(store: SqlStore) -> None:
    a_project(store, "web")
    with pytest.raises(Conflict), store.transaction() as tx:
        tx.projects.create("web", "/other")


# --- runs -------------------------------------------------------------------------------


def test_runs_are_numbered_per_project(store: SqlStore) -> None:
    web, api = a_project(store, "web"), a_project(store, "api")
    numbers: dict[int, list[int]] = {web: [], api: []}
    for project_id in (web, api, web, web, api):
        with store.transaction() as tx:
            numbers[project_id].append(tx.runs.create(new_run(project_id), now=T0).number)
    assert numbers == {web: [1, 2, 3], api: [1, 2]}


def test_concurrent_runs_get_distinct_numbers(store: SqlStore) -> None:
    project_id = a_project(store)
    numbers: list[int] = []

    def create(_: int) -> None:
        for _ in range(5):
            with store.transaction() as tx:
                numbers.append(tx.runs.create(new_run(project_id), now=T0).number)

    in_threads(create)
    assert sorted(numbers) == list(range(1, 5 * THREADS + 1))


def test_a_run_for_a_missing_project_is_not_found(store: SqlStore) -> None:
    with pytest.raises(NotFound), store.transaction() as tx:
        tx.runs.create(new_run(999), now=T0)


def test_a_run_keeps_what_it_was_created_with(store: SqlStore) -> None:
    project_id = a_project(store)
    with store.transaction() as tx:
        run = tx.runs.create(
            new_run(
                project_id,
                trust=Trust.UNTRUSTED,
                inputs={"level": 3, "names": ["a", "b"]},
                event_payload={"after": "abc", "commits": [{"id": 1}]},
                concurrency_group="deploy-main",
                plan_digest="sha256:1234",
            ),
            now=T0,
        )
    with store.transaction(write=False) as tx:
        assert tx.runs.get(run.id) == run
        assert tx.runs.get(run.id + 100) is None
        assert tx.runs.definition(run.id) == (
            "on: push\njobs: {}\n",
            {"after": "abc", "commits": [{"id": 1}]},
        )
        with pytest.raises(NotFound):
            tx.runs.definition(run.id + 100)
    assert run.status is Status.QUEUED and run.attempt == 1 and run.conclusion is None
    assert run.trust is Trust.UNTRUSTED and run.inputs == {"level": 3, "names": ["a", "b"]}
    assert run.created_at == T0 and run.created_at.tzinfo is not None


def test_run_status_follows_the_transition_table(store: SqlStore) -> None:
    run_id = a_run(store, a_project(store))
    later = T0 + timedelta(minutes=5)
    with store.transaction() as tx:
        started = tx.runs.set_status(run_id, Status.IN_PROGRESS, now=T0)
        done = tx.runs.set_status(
            run_id, Status.COMPLETED, Conclusion.FAILURE, now=later, error="job build failed"
        )
    assert started.started_at == T0 and started.finished_at is None
    assert done.status is Status.COMPLETED and done.conclusion is Conclusion.FAILURE
    assert done.started_at == T0 and done.finished_at == later and done.error == "job build failed"
    with pytest.raises(InvalidTransition), store.transaction() as tx:
        tx.runs.set_status(run_id, Status.IN_PROGRESS, now=later)
    with pytest.raises(InvalidTransition), store.transaction() as tx:
        tx.runs.set_status(run_id, Status.COMPLETED, Conclusion.SUCCESS, now=later)
    with store.transaction() as tx:
        assert tx.runs.get(run_id) == done
        with pytest.raises(NotFound):
            tx.runs.set_status(run_id + 1, Status.IN_PROGRESS, now=later)


def test_completed_needs_a_conclusion(store: SqlStore) -> None:
    run_id = a_run(store, a_project(store))
    with pytest.raises(InvalidTransition), store.transaction() as tx:
        tx.runs.set_status(run_id, Status.COMPLETED, now=T0)
    with pytest.raises(InvalidTransition), store.transaction() as tx:
        tx.runs.set_status(run_id, Status.IN_PROGRESS, Conclusion.SUCCESS, now=T0)


def test_a_rerun_is_a_new_attempt_and_keeps_the_old_one(store: SqlStore) -> None:
    run_id = a_run(store, a_project(store))
    with store.transaction() as tx:
        with pytest.raises(InvalidTransition):
            tx.runs.new_attempt(run_id, now=T0)  # still queued
        first = tx.jobs.create(run_id, 1, [NewJob("build", "build", "build")], now=T0)
        tx.runs.set_status(run_id, Status.COMPLETED, Conclusion.FAILURE, now=T0, error="x")
        again = tx.runs.new_attempt(run_id, now=T0)
        second = tx.jobs.create(run_id, 2, [NewJob("build", "build", "build")], now=T0)
        assert again.attempt == 2 and again.status is Status.QUEUED
        assert again.conclusion is None and again.finished_at is None and again.error is None
        assert again.number == 1
        assert tx.jobs.for_run(run_id) == second
        assert tx.jobs.for_run(run_id, attempt=1) == first
        assert tx.jobs.for_run(run_id + 1) == []


def test_runs_are_listed_newest_first_with_filters_and_cursors(store: SqlStore) -> None:
    web, api = a_project(store, "web"), a_project(store, "api")
    web_runs = []
    for i in range(7):
        ref = "refs/heads/main" if i % 2 == 0 else "refs/heads/dev"
        web_runs.append(a_run(store, web, ref=ref, event="push" if i < 5 else "tag"))
        a_run(store, api)
    with store.transaction(write=False) as tx:
        flt = RunFilter(project_id=web)
        pages = [tx.runs.page(flt, limit=3)]
        while pages[-1].next_cursor is not None:
            pages.append(tx.runs.page(flt, limit=3, cursor=pages[-1].next_cursor))
        assert [[r.id for r in p.items] for p in pages] == [
            web_runs[6:3:-1],
            web_runs[3:0:-1],
            web_runs[0:1],
        ]
        main = tx.runs.page(RunFilter(project_id=web, ref="refs/heads/main")).items
        assert [r.id for r in main] == web_runs[6::-2]
        tags = tx.runs.page(RunFilter(event="tag", project_id=web)).items
        assert [r.id for r in tags] == web_runs[6:4:-1]
        by_file = tx.runs.page(RunFilter(workflow_file="other.yml")).items
        assert by_file == []
        assert len(tx.runs.page(RunFilter(), limit=100).items) == 14
    with store.transaction() as tx:
        tx.runs.set_status(web_runs[2], Status.IN_PROGRESS, now=T0)
        running = tx.runs.page(RunFilter(status=Status.IN_PROGRESS)).items
        assert [r.id for r in running] == [web_runs[2]]


def test_the_newest_run_of_each_workflow_file(store: SqlStore) -> None:
    web, api = a_project(store, "web"), a_project(store, "api")
    a_run(store, web, workflow_file="ci.yml", workflow_name="CI")
    newest_ci = a_run(store, web, workflow_file="ci.yml", workflow_name="CI renamed")
    deploy = a_run(store, web, workflow_file="deploy.yml", workflow_name="Deploy")
    a_run(store, api, workflow_file="zzz.yml")
    with store.transaction(write=False) as tx:
        latest = tx.runs.latest_per_workflow(web)
        assert [(r.id, r.workflow_file, r.workflow_name) for r in latest] == [
            (newest_ci, "ci.yml", "CI renamed"),
            (deploy, "deploy.yml", "Deploy"),
        ]
        assert tx.runs.latest_per_workflow(api + 1) == []


def test_a_cursor_that_was_not_handed_out_is_refused(store: SqlStore) -> None:
    with store.transaction(write=False) as tx, pytest.raises(ValueError, match="cursor"):
        tx.runs.page(RunFilter(), cursor="not-a-cursor!")


def test_concurrency_group_lists_unfinished_runs_oldest_first(store: SqlStore) -> None:
    web, api = a_project(store, "web"), a_project(store, "api")
    done = a_run(store, web, concurrency_group="deploy")
    first = a_run(store, web, concurrency_group="deploy")
    second = a_run(store, web, concurrency_group="deploy")
    a_run(store, web, concurrency_group="other")
    a_run(store, api, concurrency_group="deploy")
    plain = a_run(store, web)
    with store.transaction() as tx:
        tx.runs.set_status(done, Status.COMPLETED, Conclusion.CANCELLED, now=T0)
        tx.runs.set_status(second, Status.IN_PROGRESS, now=T0)
        assert [r.id for r in tx.runs.active_in_group(web, "deploy")] == [first, second]
        unfinished = [r.id for r in tx.runs.unfinished()]
    assert done not in unfinished and plain in unfinished and len(unfinished) == 5
    assert unfinished == sorted(unfinished)


# --- jobs -------------------------------------------------------------------------------


def test_jobs_are_created_in_order_with_what_they_were_given(store: SqlStore) -> None:
    run_id = a_run(store, a_project(store))
    with store.transaction() as tx:
        created = tx.jobs.create(
            run_id,
            1,
            [
                NewJob(
                    "build (3.11)",
                    "build",
                    "build (3.11)",
                    matrix={"py": "3.11"},
                    runs_on=("linux", "x64"),
                    timeout_minutes=10,
                ),
                NewJob("test", "test", "test", needs=("build",)),
                NewJob(
                    "docs",
                    "docs",
                    "docs",
                    status=Status.COMPLETED,
                    conclusion=Conclusion.SKIPPED,
                    error="if: false",
                ),
            ],
            now=T0,
        )
        assert tx.jobs.create(run_id, 1, [], now=T0) == []
    assert [j.key for j in created] == ["build (3.11)", "test", "docs"]
    build, test, docs = created
    assert build.matrix == {"py": "3.11"} and build.runs_on == ("linux", "x64")
    assert build.timeout_minutes == 10 and build.status is Status.QUEUED and build.tries == 0
    assert test.needs == ("build",) and test.outputs == {}
    assert docs.conclusion is Conclusion.SKIPPED and docs.error == "if: false"
    with store.transaction(write=False) as tx:
        assert tx.jobs.get(build.id) == build
        assert tx.jobs.get(docs.id + 100) is None


def test_a_duplicate_job_key_in_an_attempt_is_a_conflict(store: SqlStore) -> None:
    run_id = a_run(store, a_project(store))
    with pytest.raises(Conflict), store.transaction() as tx:
        tx.jobs.create(run_id, 1, [NewJob("a", "a", "a"), NewJob("a", "a", "a")], now=T0)
    with pytest.raises(NotFound), store.transaction() as tx:
        tx.jobs.create(run_id + 1, 1, [NewJob("a", "a", "a")], now=T0)


def test_job_status_follows_the_transition_table(store: SqlStore) -> None:
    (job_id,) = queued_jobs(store, 1)
    later = T0 + timedelta(seconds=30)
    with store.transaction() as tx:
        running = tx.jobs.set_status(job_id, Status.IN_PROGRESS, now=T0)
        done = tx.jobs.set_status(
            job_id, Status.COMPLETED, Conclusion.SUCCESS, now=later, outputs={"version": "1.2"}
        )
    assert running.started_at == T0
    assert done.finished_at == later and done.outputs == {"version": "1.2"}
    with pytest.raises(InvalidTransition), store.transaction() as tx:
        tx.jobs.set_status(job_id, Status.IN_PROGRESS, now=later)
    with pytest.raises(NotFound), store.transaction() as tx:
        tx.jobs.set_status(job_id + 1, Status.IN_PROGRESS, now=later)


def test_claim_takes_the_oldest_queued_job_and_leases_it(store: SqlStore) -> None:
    first, second = queued_jobs(store, 2)
    with store.transaction() as tx:
        job = tx.jobs.claim("runner-1", None, lease_seconds=60, now=T0)
    assert job is not None and job.id == first
    assert job.status is Status.IN_PROGRESS and job.lease_owner == "runner-1"
    assert job.lease_expires_at == T0 + timedelta(seconds=60)
    assert job.tries == 1 and job.started_at == T0
    with store.transaction() as tx:
        again = tx.jobs.claim("runner-2", None, lease_seconds=60, now=T0)
        assert again is not None and again.id == second
        assert tx.jobs.claim("runner-2", None, lease_seconds=60, now=T0) is None


def test_claim_matches_runner_labels(store: SqlStore) -> None:
    (gpu,) = queued_jobs(store, 1, ("linux", "gpu"))
    (plain,) = queued_jobs(store, 1, ("linux",))
    (anywhere,) = queued_jobs(store, 1)
    with store.transaction() as tx:
        claim = tx.jobs.claim
        assert claim("w", frozenset({"windows"}), lease_seconds=60, now=T0).id == anywhere  # type: ignore[union-attr]
        assert claim("w", frozenset({"windows"}), lease_seconds=60, now=T0) is None
        assert claim("l", frozenset({"linux", "x64"}), lease_seconds=60, now=T0).id == plain  # type: ignore[union-attr]
        assert claim("l", frozenset({"linux", "x64"}), lease_seconds=60, now=T0) is None
        assert claim("g", frozenset({"linux", "gpu", "x64"}), lease_seconds=60, now=T0).id == gpu  # type: ignore[union-attr]


def test_claim_looks_past_many_jobs_of_other_labels(store: SqlStore) -> None:
    queued_jobs(store, 250, ("macos",))
    (linux,) = queued_jobs(store, 1, ("linux",))
    with store.transaction() as tx:
        job = tx.jobs.claim("l", frozenset({"linux"}), lease_seconds=60, now=T0)
    assert job is not None and job.id == linux


def test_claim_many_takes_the_oldest_that_fit_past_other_labels(store: SqlStore) -> None:
    queued_jobs(store, 30, ("macos",))
    linux = queued_jobs(store, 3, ("linux",))
    with store.transaction() as tx:
        two = tx.jobs.claim_many("l", frozenset({"linux"}), 2, lease_seconds=60, now=T0)
        rest = tx.jobs.claim_many("l", frozenset({"linux"}), 5, lease_seconds=60, now=T0)
        none = tx.jobs.claim_many("l", frozenset({"linux"}), 5, lease_seconds=60, now=T0)
    assert [j.id for j in two] == linux[:2] and [j.id for j in rest] == linux[2:]
    assert none == []
    assert all(j.status is Status.IN_PROGRESS and j.lease_owner == "l" for j in two + rest)
    assert all(j.tries == 1 and j.started_at == T0 for j in two + rest)


def test_a_claim_skips_the_jobs_another_open_claim_holds(store: SqlStore, url: str) -> None:
    """Two claims at once (PostgreSQL: SQLite's writer lets one transaction in at a time):
    the second skips what the first holds, without waiting, and takes the next that fits,
    past jobs of other labels between them."""
    if not url.startswith("postgresql"):
        pytest.skip("SQLite serialises writing transactions: no claim is open beside another")
    first, second = queued_jobs(store, 2, ("linux",))
    queued_jobs(store, 3, ("macos",))
    (third,) = queued_jobs(store, 1, ("linux",))
    linux = frozenset({"linux"})
    with store.transaction() as held:
        got = held.jobs.claim_many("a", linux, 2, lease_seconds=60, now=T0)
        assert [j.id for j in got] == [first, second]
        with store.transaction() as tx:
            beside = tx.jobs.claim("b", linux, lease_seconds=60, now=T0)
            assert beside is not None and beside.id == third
            assert tx.jobs.claim("c", linux, lease_seconds=60, now=T0) is None
    with store.transaction() as tx:  # both committed: nothing left for linux
        assert tx.jobs.claim("d", linux, lease_seconds=60, now=T0) is None


def test_no_job_is_claimed_twice_by_concurrent_claims_of_many(store: SqlStore) -> None:
    jobs = queued_jobs(store, 60)
    claimed: list[int] = []

    def claim_all(i: int) -> None:
        while True:
            with store.transaction() as tx:
                got = tx.jobs.claim_many(f"runner-{i}", None, 3, lease_seconds=60, now=T0)
            if not got:
                return
            claimed.extend(job.id for job in got)

    in_threads(claim_all)
    assert sorted(claimed) == jobs


def test_no_job_is_claimed_twice_under_concurrency(store: SqlStore) -> None:
    jobs = queued_jobs(store, 50)
    claimed: list[tuple[int, str]] = []

    def claim_all(i: int) -> None:
        while True:
            with store.transaction() as tx:
                job = tx.jobs.claim(f"runner-{i}", None, lease_seconds=60, now=T0)
            if job is None:
                return
            claimed.append((job.id, f"runner-{i}"))

    in_threads(claim_all)
    assert sorted(job_id for job_id, _ in claimed) == jobs
    with store.transaction(write=False) as tx:
        for job_id, owner in claimed:
            stored = tx.jobs.get(job_id)
            assert stored is not None and stored.lease_owner == owner and stored.tries == 1


def test_a_requeued_job_is_claimed_again_with_one_more_try(store: SqlStore) -> None:
    (job_id,) = queued_jobs(store, 1)
    with store.transaction() as tx:
        tx.jobs.claim("lost", None, lease_seconds=60, now=T0)
        requeued = tx.jobs.set_status(job_id, Status.QUEUED, now=T0, error="runner lost")
        assert requeued.lease_owner is None and requeued.lease_expires_at is None
        again = tx.jobs.claim("new", None, lease_seconds=60, now=T0)
    assert again is not None and again.tries == 2 and again.lease_owner == "new"


def test_only_the_owner_renews_a_lease_and_expired_ones_are_found(store: SqlStore) -> None:
    first, second, _ = queued_jobs(store, 3)
    with store.transaction() as tx:
        tx.jobs.claim("a", None, lease_seconds=10, now=T0)
        tx.jobs.claim("b", None, lease_seconds=10, now=T0)
        assert tx.jobs.renew_lease(first, "a", lease_seconds=60, now=T0 + timedelta(seconds=5))
        assert not tx.jobs.renew_lease(first, "b", lease_seconds=60, now=T0)
        assert not tx.jobs.renew_lease(second + 100, "b", lease_seconds=60, now=T0)
        expired = tx.jobs.expired_leases(T0 + timedelta(seconds=30))
        assert [j.id for j in expired] == [second]
        assert tx.jobs.expired_leases(T0 + timedelta(seconds=5)) == []
        assert [j.id for j in tx.jobs.expired_leases(T0 + timedelta(hours=1))] == [first, second]
        tx.jobs.set_status(second, Status.COMPLETED, Conclusion.FAILURE, now=T0)
        assert not tx.jobs.renew_lease(second, "b", lease_seconds=60, now=T0)
        assert [j.id for j in tx.jobs.expired_leases(T0 + timedelta(hours=1))] == [first]


# --- steps ------------------------------------------------------------------------------


def test_steps_are_written_whole_as_they_progress(store: SqlStore) -> None:
    (job_id,) = queued_jobs(store, 1)
    queued = StepRecord(job_id, 0, "checkout", "Checkout", Status.QUEUED)
    running = StepRecord(job_id, 0, "checkout", "Checkout", Status.IN_PROGRESS, started_at=T0)
    done = StepRecord(
        job_id, 0, "checkout", "Checkout", Status.COMPLETED, Conclusion.SUCCESS, 0, T0, T0
    )
    other = StepRecord(job_id, 1, "test", "Run tests", Status.QUEUED)
    with store.transaction() as tx:
        tx.steps.upsert(other)
        tx.steps.upsert(queued)
        tx.steps.upsert(queued)  # the same again: no change, no error
        tx.steps.upsert(running)
        tx.steps.upsert(done)
        assert tx.steps.for_job(job_id) == [done, other]
        assert tx.steps.for_job(job_id + 1) == []
    with pytest.raises(InvalidTransition), store.transaction() as tx:
        tx.steps.upsert(running)  # completed is final
    failed = StepRecord(job_id, 0, "checkout", "Checkout", Status.COMPLETED, Conclusion.FAILURE)
    with pytest.raises(InvalidTransition), store.transaction() as tx:
        tx.steps.upsert(failed)
    with pytest.raises(NotFound), store.transaction() as tx:
        tx.steps.upsert(StepRecord(job_id + 1, 0, "x", "x", Status.QUEUED))


# --- logs -------------------------------------------------------------------------------


def test_log_appends_are_idempotent_and_reads_ranged(store: SqlStore) -> None:
    job_id, other = queued_jobs(store, 2)
    with store.transaction() as tx:
        assert tx.logs.last_seq(job_id) == -1
        for seq in range(5):
            assert tx.logs.append(job_id, seq, f"\x1b[32mline {seq}\x1b[0m\n".encode(), 0)
        assert not tx.logs.append(job_id, 2, b"resent, different", 0)
        assert tx.logs.append(other, 0, b"other job", None)
    with store.transaction(write=False) as tx:
        chunks = tx.logs.read(job_id)
        assert [c.seq for c in chunks] == [0, 1, 2, 3, 4]
        assert chunks[2].data == b"\x1b[32mline 2\x1b[0m\n" and chunks[2].step_index == 0
        assert [c.seq for c in tx.logs.read(job_id, after_seq=1, limit=2)] == [2, 3]
        assert tx.logs.read(job_id, after_seq=4) == []
        assert tx.logs.last_seq(job_id) == 4
        assert [(c.job_id, c.data, c.step_index) for c in tx.logs.read(other)] == [
            (other, b"other job", None)
        ]
    with pytest.raises(NotFound), store.transaction() as tx:
        tx.logs.append(other + 100, 0, b"no such job")


# --- users, memberships, tokens ---------------------------------------------------------


def test_users(store: SqlStore) -> None:
    with store.transaction() as tx:
        assert tx.users.count() == 0
        admin = tx.users.create("admin", is_admin=True, now=T0)
        bob = tx.users.create("bob", password_hash="$argon2id$x", now=T0)
        with pytest.raises(Conflict):
            tx.users.create("bob", now=T0)
        tx.users.set_password_hash(admin.id, "$argon2id$y")
        with pytest.raises(NotFound):
            tx.users.set_password_hash(bob.id + 100, "h")
    with store.transaction(write=False) as tx:
        assert tx.users.count() == 2
        assert tx.users.get("bob") == bob and tx.users.get_by_id(bob.id) == bob
        assert tx.users.get("carol") is None and tx.users.get_by_id(bob.id + 100) is None
        stored_admin = tx.users.get("admin")
        assert stored_admin is not None and stored_admin.is_admin
        assert stored_admin.password_hash == "$argon2id$y" and stored_admin.created_at == T0
        first = tx.users.page(limit=1)
        assert [u.name for u in first.items] == ["bob"] and first.next_cursor is not None
        rest = tx.users.page(limit=1, cursor=first.next_cursor)
        assert [u.name for u in rest.items] == ["admin"] and rest.next_cursor is None


def test_memberships(store: SqlStore) -> None:
    web = a_project(store, "web")
    with store.transaction() as tx:
        alice = tx.users.create("alice", now=T0).id
        bob = tx.users.create("bob", now=T0).id
        tx.members.set_role(web, bob, Role.VIEWER)
        assert tx.members.set_role(web, alice, Role.DEVELOPER).role is Role.DEVELOPER
        tx.members.set_role(web, alice, Role.MAINTAINER)  # a second role replaces the first
        assert tx.members.role(web, alice) is Role.MAINTAINER
        assert [(m.user_id, m.role) for m in tx.members.for_project(web)] == [
            (alice, Role.MAINTAINER),
            (bob, Role.VIEWER),
        ]
        tx.members.remove(web, bob)
        assert tx.members.role(web, bob) is None
        with pytest.raises(NotFound):
            tx.members.set_role(web, bob + 100, Role.ADMIN)


def test_tokens(store: SqlStore) -> None:
    (job_id,) = queued_jobs(store, 1)
    expires = T0 + timedelta(days=30)
    with store.transaction() as tx:
        alice = tx.users.create("alice", now=T0).id
        cli = tx.tokens.create(
            TokenKind.USER,
            "laptop",
            "h1",
            now=T0,
            user_id=alice,
            scopes=("runs:read",),
            expires_at=expires,
        )
        ci = tx.tokens.create(TokenKind.USER, "ci", "h2", now=T0, user_id=alice)
        job_token = tx.tokens.create(TokenKind.JOB, "job", "h3", now=T0, job_id=job_id)
        with pytest.raises(Conflict):
            tx.tokens.create(TokenKind.USER, "again", "h1", now=T0, user_id=alice)
    assert cli.kind is TokenKind.USER and cli.scopes == ("runs:read",)
    assert cli.expires_at == expires and cli.revoked_at is None
    later = T0 + timedelta(hours=1)
    with store.transaction() as tx:
        found = tx.tokens.find("h1")
        assert found is not None and found.token == cli and tx.tokens.find("nope") is None
        # read with what it is bound to: a user token its user, a job token its job's status
        assert found.user == tx.users.get_by_id(alice)
        assert (found.job_status, found.runner) == (None, None)
        of_job = tx.tokens.find("h3")
        assert of_job is not None and of_job.token == job_token
        assert (of_job.user, of_job.job_status) == (None, Status.QUEUED)
        assert tx.tokens.get(job_token.id) == job_token
        assert tx.tokens.for_user(alice) == [cli, ci]
        tx.tokens.touch(ci.id, now=later)
        tx.tokens.revoke(cli.id, now=later)
        tx.tokens.revoke(cli.id, now=later + timedelta(hours=1))  # keeps the first time
        tx.tokens.revoke_for_job(job_id, now=later)
    with store.transaction(write=False) as tx:
        assert tx.tokens.get(cli.id).revoked_at == later  # type: ignore[union-attr]
        assert tx.tokens.get(ci.id).last_used_at == later  # type: ignore[union-attr]
        assert tx.tokens.get(ci.id).revoked_at is None  # type: ignore[union-attr]
        assert tx.tokens.find("h3").token.revoked_at == later  # type: ignore[union-attr]


# --- audit and events -------------------------------------------------------------------


def test_audit_appends_form_a_chain_that_verifies(store: SqlStore) -> None:
    web = a_project(store, "web")
    with store.transaction() as tx:
        tx.audit.append(actor="alice", action="project.create", now=T0, project_id=web)
        tx.audit.append(
            actor="bob",
            action="run.cancel",
            now=T0 + timedelta(seconds=1),
            project_id=web,
            target="run:1",
            reason="wrong commit",
            request_id="req-1",
            data={"run": 1, "at": T0},
        )
        tx.audit.append(actor="eve", action="token.create", now=T0, decision="denied")
        # Read in the appending transaction: linked already.
        assert [r.actor for r in tx.audit.page(limit=3).items] == ["eve", "bob", "alice"]
    with store.transaction(write=False) as tx:
        first, second = list(tx.audit.iterate())[:2]
    assert first.prev_hash == "" and second.prev_hash == first.hash
    assert second.data == {"run": 1, "at": str(T0)}
    with store.transaction(write=False) as tx:
        records = list(tx.audit.iterate())
        assert records[:2] == [first, second]
        assert verify(records) is None
        assert [r.action for r in tx.audit.page(project_id=web).items] == [
            "run.cancel",
            "project.create",
        ]
        assert [r.actor for r in tx.audit.page(action="token.create").items] == ["eve"]
        top = tx.audit.page(limit=2)
        assert [r.id for r in top.items] == [3, 2]
        rest = tx.audit.page(limit=2, cursor=top.next_cursor)
        assert [r.id for r in rest.items] == [1] and rest.next_cursor is None


def test_a_read_only_transaction_cannot_write_to_the_feed(store: SqlStore) -> None:
    # On PostgreSQL it runs without BEGIN: it could not hold the feed's lock to its end.
    refused = pytest.raises(RuntimeError, match="read-only")
    with refused, store.transaction(write=False) as tx:
        tx.audit.append(actor="alice", action="project.create", now=T0)
    refused = pytest.raises(RuntimeError, match="read-only")
    with refused, store.reading(), store.transaction(write=False) as tx:
        tx.events.publish("run.started", now=T0, run_id=1)
    with store.transaction(write=False) as tx:
        assert tx.audit.page().items == []
        assert tx.events.since(0) == []


def test_an_audit_record_edited_in_the_database_is_found(store: SqlStore) -> None:
    with store.transaction() as tx:
        for i in range(5):
            tx.audit.append(actor="alice", action=f"a{i}", now=T0)
    engine = create_engine(store.url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE id = 3"))
    finally:
        engine.dispose()
    with store.transaction(write=False) as tx:
        assert verify(tx.audit.iterate()) == 2


def test_concurrent_audit_appends_keep_one_chain(store: SqlStore) -> None:
    def append(i: int) -> None:
        for j in range(5):
            with store.transaction() as tx:
                tx.audit.append(actor=f"t{i}", action=f"a{j}", now=T0)

    in_threads(append)
    with store.transaction(write=False) as tx:
        records = list(tx.audit.iterate())
    assert [r.id for r in records] == list(range(1, 5 * THREADS + 1))
    assert verify(records) is None


def test_events_published_are_read_back_in_their_transaction(store: SqlStore) -> None:
    """Events are written together at the end of their transaction, or before the
    transaction reads the feed itself."""
    with store.transaction() as tx:
        tx.events.publish("job.cancel", now=T0, job_id=3)
        assert [e.job_id for e in tx.events.since(0)] == [3]
        tx.events.publish("job.cancel", now=T0, job_id=4)
        assert tx.events.last_id() == 2
    with store.transaction() as tx:
        tx.events.publish("log", now=T0, job_id=4)
    with store.transaction(write=False) as tx:
        assert [e.kind for e in tx.events.since(0)] == ["job.cancel", "job.cancel", "log"]


def test_events_since_an_id(store: SqlStore) -> None:
    with store.transaction() as tx:
        assert tx.events.last_id() == 0
        tx.events.publish("run.updated", now=T0, run_id=1, data={"status": "queued"})
        tx.events.publish("job.updated", now=T0, run_id=1, job_id=7)
        tx.events.publish("run.updated", now=T0, run_id=2)
    with store.transaction(write=False) as tx:
        run, job, other = tx.events.since(0)
    assert (run.kind, run.run_id, run.job_id) == ("run.updated", 1, None)
    assert (job.kind, job.job_id, other.run_id) == ("job.updated", 7, 2)
    assert run.id < job.id < other.id
    assert run.data == {"status": "queued"} and job.data == {} and run.at == T0
    with store.transaction(write=False) as tx:
        assert tx.events.since(0) == [run, job, other]
        assert tx.events.since(run.id) == [job, other]
        assert tx.events.since(0, run_id=1) == [run, job]
        assert tx.events.since(0, job_id=7) == [job]
        assert tx.events.since(0, limit=1) == [run]
        assert tx.events.last_id() == other.id


def test_a_follower_misses_no_event_published_concurrently(store: SqlStore) -> None:
    published: list[int] = []
    seen: list[int] = []
    done = threading.Event()

    def follow() -> None:
        last = 0
        while True:
            finished = done.is_set()
            with store.transaction(write=False) as tx:
                batch = tx.events.since(last)
            seen.extend(e.id for e in batch)
            last = batch[-1].id if batch else last
            if finished and not batch:
                return

    follower = threading.Thread(target=follow)
    follower.start()

    def publish(i: int) -> None:
        for _ in range(10):
            with store.transaction() as tx:
                tx.events.publish("log", now=T0, job_id=i)
                published.append(tx.events.last_id())  # ours: the feed's lock is held

    try:
        in_threads(publish)
    finally:
        done.set()
        follower.join()
    assert sorted(published) == seen


def test_counts_by_status(store: Store) -> None:
    from shipline.store.ports import NewJob, NewRun

    now = datetime(2026, 1, 1, tzinfo=UTC)
    with store.transaction() as tx:
        project = tx.projects.create("counted", "/repo")
        for _ in range(3):
            run = tx.runs.create(
                NewRun(
                    project_id=project.id,
                    workflow_file="w.yml",
                    workflow_name="w",
                    workflow_text="",
                    event="push",
                    ref="refs/heads/main",
                    sha="0" * 40,
                    actor="dev",
                ),
                now=now,
            )
        tx.runs.set_status(run.id, Status.IN_PROGRESS, now=now)
        tx.jobs.create(run.id, 1, [NewJob("a", "a", "a"), NewJob("b", "b", "b")], now=now)
    with store.transaction() as tx:
        assert tx.runs.count_by_status() == {Status.QUEUED: 2, Status.IN_PROGRESS: 1}
        assert tx.jobs.count_by_status() == {Status.QUEUED: 2}
