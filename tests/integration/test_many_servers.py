"""Several servers on one database, as separate object graphs (each its own engine, run
service and scheduler), on SQLite and PostgreSQL: a schedule's tick starts one run, and
jobs handed to remote runners through different servers are each handed out once."""

from __future__ import annotations

import subprocess
import textwrap
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from shipline.domain.records import TokenKind
from shipline.domain.runners import RunnerRecord
from shipline.domain.status import Status
from shipline.engine.access import AccessService
from shipline.engine.remote import RemoteJobs
from shipline.engine.schedules import Scheduler
from shipline.engine.service import RunService, TriggerRequest
from shipline.scm.repository import GitRepository
from shipline.store.sql.store import SqlStore
from shipline.testing import FrozenClock
from tests.contract.store_backends import pg_database, url

__all__ = ["pg_database", "url"]

WIDE = """
    on:
      workflow_dispatch:
      schedule:
        - cron: "0 3 * * *"
    jobs:
      cells:
        strategy: {matrix: {n: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]}}
        runs-on: linux
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
    (repo / ".shipline" / "workflows" / "wide.yml").write_text(textwrap.dedent(WIDE))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "wide")
    return repo


class Node:
    """One server's object graph over the shared database."""

    def __init__(self, url: str, clock: FrozenClock, mirrors: Path) -> None:
        self.store = SqlStore(url, create=False)
        self.runs = RunService(
            self.store, clock, lambda p: GitRepository(p.repository, mirrors / str(p.id))
        )
        self.access = AccessService(self.store, clock)
        self.remote = RemoteJobs(self.store, clock, self.runs, self.access)
        self.scheduler = Scheduler(self.store, self.runs, clock, self.runs.repositories)


@pytest.fixture
def nodes(url: str, tmp_path: Path, source: Path) -> Iterator[tuple[Node, Node]]:
    clock = FrozenClock()
    first = Node(url, clock, tmp_path / "a")
    second = Node(url, clock, tmp_path / "b")
    with first.store.transaction() as tx:
        tx.projects.create("app", str(source))
    yield first, second
    first.store.close()
    second.store.close()


def test_a_schedule_fires_once_across_servers(nodes: tuple[Node, Node]) -> None:
    first, second = nodes
    for node in nodes:
        node.scheduler.load()
    clock = first.runs.clock
    assert isinstance(clock, FrozenClock)
    clock.advance(timedelta(days=1))
    fired = first.scheduler.tick() + second.scheduler.tick()
    assert len(fired) == 1
    clock.advance(timedelta(days=1))
    assert len(second.scheduler.tick() + first.scheduler.tick()) == 1


def test_jobs_claimed_through_two_servers_are_each_handed_out_once(
    nodes: tuple[Node, Node],
) -> None:
    first, _ = nodes
    now = first.runs.clock.now()
    runners: list[RunnerRecord] = []
    with first.store.transaction() as tx:
        project = tx.projects.get("app")
        assert project is not None
        for i in range(4):
            token = tx.tokens.create(TokenKind.RUNNER, f"r{i}", f"runner-hash-{i}", now=now)
            runners.append(tx.runners.create(f"r{i}", ["linux"], "1", 1, token.id, now=now))
    (run,) = first.runs.trigger(
        project, TriggerRequest(ref="main", workflow=".shipline/workflows/wide.yml"), actor="dev"
    )
    got: list[int] = []
    lock = threading.Lock()

    def work(node: Node, runner: RunnerRecord) -> None:
        while (job := node.remote.claim(runner)) is not None:
            with lock:
                got.append(job.job_id)

    threads = [threading.Thread(target=work, args=(nodes[i % 2], runners[i])) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(got) == 15 and len(set(got)) == 15
    with first.store.transaction() as tx:
        jobs = tx.jobs.for_run(run.id)
        assert all(j.status is Status.IN_PROGRESS and j.tries == 1 for j in jobs)
        assert len(tx.runners.assignments()) == 15
