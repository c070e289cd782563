"""Remote runners' throughput and the queue's claim latency (issue 5, "Performance").

R1  drain N queued trivial jobs with 4 `shipline runner` processes of 2 slots each against
    one server (`--runner-slots 0`) on PostgreSQL: jobs per second, from the runners' start
    to the last run's completion.
R2  the same N jobs through the embedded runner on SQLite (8 slots): jobs per second.
R3  claim latency in the store on PostgreSQL (one claim transaction: lock the oldest
    fitting job with FOR UPDATE SKIP LOCKED, lease it, issue its job token, record the
    assignment), p50 and p99, with 100 and with 10,000 jobs queued.

    .venv/bin/python benchmarks/remote_runners.py                 # N = 2000
    .venv/bin/python benchmarks/remote_runners.py --jobs 400 --only R1,R3
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from server_harness import (
    Row,
    Server,
    admin_token,
    api_client,
    check,
    create_project,
    database,
    make_repo,
    ms,
    percentile,
    run_benchmark,
    trigger,
    wait_completed,
)

CELLS = 200  # jobs per run (one matrix)


def workflow(labels: str) -> str:
    cells = ", ".join(str(i) for i in range(CELLS))
    return (
        "on: workflow_dispatch\n"
        "jobs:\n"
        "  cell:\n"
        f"    runs-on: [{labels}]\n"
        f"    strategy: {{matrix: {{n: [{cells}]}}}}\n"
        "    steps: [{run: 'true'}]\n"
    )


def queue_runs(client: httpx.Client, jobs: int) -> list[int]:
    return [trigger(client, "bench", "wide.yml")["id"] for _ in range(max(1, jobs // CELLS))]


def drain_remote(tmp: Path, jobs: int) -> Row:
    token = admin_token()
    repo = make_repo(tmp / "repo-r1", {"wide.yml": workflow("self-hosted")})
    with (
        database("postgresql", tmp / "state-r1") as url,
        Server(tmp / "state-r1", url, slots=0, admin_token=token) as server,
        api_client(server, token, timeout=120) as client,
    ):
        create_project(client, "bench", repo)
        runs = queue_runs(client, jobs)
        runners = []
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPLINE_")}
        for i in range(4):
            reg = check(client.post("/api/v1/runners/registration-tokens", json={}), "reg")
            config = tmp / f"runner-{i}.json"
            subprocess.run(
                [sys.executable, "-m", "shipline", "runner", "register", "--url", server.url,
                 "--config", str(config), "--name", f"bench-{i}"],
                env={**env, "SHIPLINE_REGISTRATION_TOKEN": reg["token"]},
                check=True, capture_output=True,
            )  # fmt: skip
            runners.append(config)
        start = time.monotonic()
        procs = []
        for i, config in enumerate(runners):
            argv = [sys.executable, "-m", "shipline", "runner", "--config", str(config),
                    "--slots", "2", "--work-dir", str(tmp / f"work-{i}")]  # fmt: skip
            err = (tmp / f"runner-{i}.err").open("wb")
            procs.append(subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=err))
        try:
            for run_id in runs:
                wait_completed(client, "bench", run_id, timeout=3600, poll=0.5)
            elapsed = time.monotonic() - start
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=60)
    done = len(runs) * CELLS
    rate = done / elapsed
    what = f"{done} jobs, 4 remote runners x 2 slots, PostgreSQL"
    return Row("R1", what, f"{rate:.1f} jobs/s", rate, 50, higher_is_better=True, unit="jobs/s")


def drain_embedded(tmp: Path, jobs: int) -> Row:
    token = admin_token()
    repo = make_repo(tmp / "repo-r2", {"wide.yml": workflow("self-hosted")})
    with (
        database("sqlite", tmp / "state-r2") as url,
        Server(tmp / "state-r2", url, slots=8, admin_token=token) as server,
        api_client(server, token, timeout=120) as client,
    ):
        create_project(client, "bench", repo)
        start = time.monotonic()
        runs = queue_runs(client, jobs)
        for run_id in runs:
            wait_completed(client, "bench", run_id, timeout=3600, poll=0.5)
        elapsed = time.monotonic() - start
    done = len(runs) * CELLS
    rate = done / elapsed
    return Row("R2", f"{done} jobs, embedded runner x 8 slots, SQLite", f"{rate:.1f} jobs/s",
               rate, unit="jobs/s")  # fmt: skip


def claim_latency(queued: int, claims: int) -> list[float]:
    from shipline.domain.records import TokenKind
    from shipline.security.tokens import new_token
    from shipline.store.ports import NewJob, NewRun
    from shipline.store.sql.store import SqlStore

    with database("postgresql", Path()) as url:
        store = SqlStore(url)
        now = datetime.now(UTC)
        with store.transaction() as tx:
            project = tx.projects.create("bench", "/nowhere")
            token = tx.tokens.create(TokenKind.RUNNER, "r", "runner-hash", now=now)
            runner = tx.runners.create("r", ["linux"], "1", 8, token.id, now=now)
        made = 0
        while made < queued:
            with store.transaction() as tx:
                run = tx.runs.create(
                    NewRun(project.id, "w.yml", "w", "on: push", "push", "refs/heads/main",
                           "a" * 40, "bench"),
                    now=now,
                )  # fmt: skip
                batch = min(1000, queued - made)
                tx.jobs.create(
                    run.id,
                    1,
                    [NewJob(f"j{i}", "j", "j", runs_on=("linux",)) for i in range(batch)],
                    now=now,
                )
            made += batch
        times = []
        for _ in range(claims):
            began = time.perf_counter()
            with store.transaction() as tx:
                job = tx.jobs.claim("runner:1", frozenset({"linux"}), lease_seconds=30, now=now)
                assert job is not None
                _, digest = new_token(TokenKind.JOB)
                record = tx.tokens.create(TokenKind.JOB, "j", digest, now=now, job_id=job.id)
                tx.audit.append(actor="system", action="token.issue_job", now=now)
                tx.runners.assign(runner.id, job.id, job.tries, record.id, 0, now=now)
            times.append(time.perf_counter() - began)
            # keep the queue's length: one job in, one out
            refill = [NewJob(f"x{len(times)}", "j", "j", runs_on=("linux",))]
            with store.transaction() as tx:
                tx.jobs.create(run.id, 1, refill, now=now)
        store.close()
    return times


def bench(kind: str, tmp: Path, args: argparse.Namespace) -> list[Row]:
    only = set(args.only.split(",")) if args.only else {"R1", "R2", "R3"}
    rows = []
    if kind == "postgresql" and "R1" in only:
        rows.append(drain_remote(tmp, args.jobs))
    if kind == "sqlite" and "R2" in only:
        rows.append(drain_embedded(tmp, args.jobs))
    if kind == "postgresql" and "R3" in only:
        for queued in (100, 10_000):
            times = claim_latency(queued, args.claims)
            rows.append(Row("R3", f"claim p50, {queued} queued", ms(percentile(times, 50)),
                            percentile(times, 50) * 1e3, unit="ms"))  # fmt: skip
            rows.append(Row("R3", f"claim p99, {queued} queued", ms(percentile(times, 99)),
                            percentile(times, 99) * 1e3, 100, unit="ms"))  # fmt: skip
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000, help="jobs to drain (R1, R2)")
    parser.add_argument("--claims", type=int, default=300, help="claims timed (R3)")
    parser.add_argument("--only", default="", help="R1,R2,R3")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args()
    return run_benchmark("postgresql,sqlite", args.keep, lambda kind, tmp: bench(kind, tmp, args))


if __name__ == "__main__":
    sys.exit(main())
