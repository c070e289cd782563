"""Debian's nginx, configured as docs/runners.md shows, in front of two servers on one
PostgreSQL; three runners know only nginx's URL: a workflow of 30 jobs completes with
each job run exactly once, every request having passed through nginx."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator

import pytest

from tests.e2e.remote import Nginx, local_nginx_config, nginx_sample
from tests.e2e.test_many_servers import cells, cluster, database, wide_project
from tests.e2e.test_remote_runners import Cluster, trigger
from tests.e2e.test_server import wait_completed

__all__ = ["cluster", "database"]


@pytest.fixture
def nginx(cluster: Cluster) -> Iterator[Nginx]:
    cluster.server()
    cluster.server()
    proxy = Nginx(cluster.tmp / "nginx", [s.url for s in cluster.servers])
    yield proxy
    proxy.stop()


def test_the_documented_sample_is_what_runs() -> None:
    sample = nginx_sample()
    local = local_nginx_config(sample, ["http://127.0.0.1:1", "http://127.0.0.1:2"], 3)
    assert "proxy_buffering off;" in local and "proxy_read_timeout 120s;" in local
    assert "server 127.0.0.1:1 max_fails=1 fail_timeout=5s;" in local
    assert "listen 127.0.0.1:3;" in local and "ssl" not in local
    kept = [line for line in sample.splitlines() if "ssl" not in line and "10.0.0." not in line]
    assert all(line in local.splitlines() for line in kept)  # nothing else was changed


def test_thirty_jobs_through_nginx_each_run_once(cluster: Cluster, nginx: Nginx) -> None:
    ledger = cluster.tmp / "ledger"
    wide_project(cluster, ledger, pause=0)
    runners = [
        cluster.runner(cluster.register(f"r{i}", servers=[nginx.url]), "--slots", "2")
        for i in range(3)
    ]
    run_id = trigger(cluster, "wide.yml", url=nginx.url)

    run = wait_completed(cluster.cli, run_id, timeout=240)
    assert run["conclusion"] == "success", [r.stderr for r in runners] + [nginx.error_log]
    assert cells(ledger) == Counter(f"cell {n}" for n in range(1, 31))
    jobs = json.loads(cluster.cli("runs", "show", str(run_id), "--json").stdout)["jobs"]
    assert len(jobs) == 30 and all(j["conclusion"] == "success" for j in jobs)
    # The runners talked to nginx only: their claims, logs and ends are in its log.
    access = nginx.access_log.read_text()
    # Each job was handed out once: by a claim, or with the end of the runner's
    # previous job (a finish answered 200 carries the next job).
    claimed = access.count('POST /api/v1/runner/jobs/request HTTP/1.1" 200 ')
    passed_on = access.count('/finish HTTP/1.1" 200 ')
    assert claimed >= 1 and claimed + passed_on == 30
    assert passed_on + access.count('/finish HTTP/1.1" 204 ') == 30
