"""Two `shipline server` processes on one PostgreSQL and one shared directory, three
`shipline runner` processes given both URLs: a workflow of 30 jobs runs each job exactly
once, also when one server is killed (-9) in the middle."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.contract.store_backends import (
    PG_URL,
    create_pg_database,
    drop_pg_database,
    pg_unavailable,
    unavailable,
)
from tests.e2e.conftest import Repo
from tests.e2e.test_remote_runners import Cluster, trigger, wait_for
from tests.e2e.test_server import wait_completed

WIDE = """
    on: workflow_dispatch
    jobs:
      cells:
        strategy:
          matrix:
            n: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
                16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30]
        runs-on: [self-hosted]
        steps:
          - run: |
              echo "cell ${{{{ matrix.n }}}}" >> "{ledger}"
              sleep {pause}
"""


@pytest.fixture
def database() -> Iterator[str]:
    reason = pg_unavailable()
    if reason is not None:
        unavailable(reason)
    name = create_pg_database()
    try:
        yield PG_URL.format(name=name)
    finally:
        drop_pg_database(name)


@pytest.fixture
def cluster(tmp_path: Path, database: str) -> Iterator[Cluster]:
    made = Cluster(tmp_path, database)
    made.env["SHIPLINE_SHARED_DIR"] = str(tmp_path / "shared")
    yield made
    made.close()


def wide_project(cluster: Cluster, ledger: Path, pause: float) -> None:
    repo = Repo(cluster.tmp / "repo")
    repo.workflow(WIDE.format(ledger=ledger, pause=pause), name="wide.yml")
    repo.commit("wide")
    created = cluster.cli("projects", "create", "app", "--repo", "repo")
    assert created.returncode == 0, created.stderr


def cells(ledger: Path) -> Counter[str]:
    return Counter(ledger.read_text().splitlines()) if ledger.exists() else Counter()


def test_two_servers_three_runners_thirty_jobs_each_once(cluster: Cluster) -> None:
    ledger = cluster.tmp / "ledger"
    cluster.server()
    cluster.server()
    wide_project(cluster, ledger, pause=0)
    runners = [cluster.runner(cluster.register(f"r{i}"), "--slots", "2") for i in range(3)]
    run_id = trigger(cluster, "wide.yml")

    run = wait_completed(cluster.cli, run_id, timeout=180)
    assert run["conclusion"] == "success", [r.stderr for r in runners]
    assert cells(ledger) == Counter(f"cell {n}" for n in range(1, 31))
    jobs = json.loads(cluster.cli("runs", "show", str(run_id), "--json").stdout)["jobs"]
    assert len(jobs) == 30
    listed = json.loads(cluster.cli("runners", "list", "--json").stdout)["items"]
    assert sorted(r["name"] for r in listed) == ["r0", "r1", "r2"]


def test_killing_one_server_loses_and_doubles_no_job(cluster: Cluster) -> None:
    ledger = cluster.tmp / "ledger"
    doomed = cluster.server()
    cluster.server()
    wide_project(cluster, ledger, pause=0.3)
    runners = [cluster.runner(cluster.register(f"r{i}"), "--slots", "2") for i in range(3)]
    run_id = trigger(cluster, "wide.yml")
    wait_for(lambda: sum(cells(ledger).values()) >= 6, "the first jobs")
    doomed.kill()
    cluster.servers.remove(doomed)  # the CLI talks to the survivor from now on

    run = wait_completed(cluster.cli, run_id, timeout=240)
    assert run["conclusion"] == "success", [r.stderr for r in runners]
    assert cells(ledger) == Counter(f"cell {n}" for n in range(1, 31))


ONE = """
    on: workflow_dispatch
    jobs:
      one:
        runs-on: [self-hosted]
        steps:
          - run: echo "woken"
"""


def test_a_job_queued_on_one_server_wakes_a_long_poll_on_the_other(cluster: Cluster) -> None:
    """LISTEN/NOTIFY: the runner waits on server A in a 60 s long poll, and A reads the
    queue again on its own only every 120 s; a run triggered on server B is claimed at
    once all the same, because B's commit notified A."""
    cluster.env["SHIPLINE_QUEUE_POLL_SECONDS"] = "120"
    a = cluster.server()
    b = cluster.server()
    repo = Repo(cluster.tmp / "repo")
    repo.workflow(ONE, name="one.yml")
    repo.commit("one")
    assert cluster.cli("projects", "create", "app", "--repo", "repo").returncode == 0
    runner = cluster.runner(cluster.register("r", servers=[a.url]), "--poll-wait", "60")
    wait_for(  # its first long poll reached A (a poll marks the runner seen)
        lambda: json.loads(cluster.cli("runners", "list", "--json").stdout)["items"][0]["online"],
        "the runner's first poll",
    )

    run_id = trigger(cluster, "one.yml", url=b.url)
    run = wait_completed(cluster.cli, run_id, timeout=120)
    assert run["conclusion"] == "success", runner.stderr
    (job,) = json.loads(cluster.cli("runs", "show", str(run_id), "--json").stdout)["jobs"]
    waited = datetime.fromisoformat(job["started_at"]) - datetime.fromisoformat(run["created_at"])
    # Without the notification the claim would come when A's poll ends (~60 s) or when A
    # reads the queue again (120 s); a loaded machine still claims within seconds.
    assert waited.total_seconds() < 20, (waited, runner.stderr)
