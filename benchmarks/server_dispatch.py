"""How fast the server gets a triggered run going, and how many trivial jobs it gets through.

One invocation starts a real `shipline server` (a subprocess, on a fresh state directory)
per database -- SQLite and PostgreSQL by default -- creates a project through the API on a
throwaway git repository, and measures:

- D1, trigger to first step: from just before `POST /api/v1/projects/{p}/runs` to the
  moment the first step's process runs. The step is `echo "first-step-clock=$(date +%s.%N)"`:
  the shell the runner started prints the wall clock, which the benchmark (same machine,
  same clock) reads from the job's log once the run completed and compares with its own
  clock read before sending the request. This is the issue's definition ("API call to the
  first step's process starting") measured from inside the step, with no polling error, and
  in the sandbox too; it includes the time `date` takes to start (~1 ms). The median over
  `--triggers` runs, one at a time (each waits for the previous to complete), with a random
  pause of 50-250 ms between them so that triggers fall at every phase of the runner's
  polling.
- D1 breakdown (no target): the server's own timestamps of those runs -- the POST's answer,
  the run's `created_at`, the job's `started_at` (claimed), the step's `started_at` -- to
  show where the time goes.
- D2, first log line readable through the API (no target): from before the POST to the
  step's `echo` being in `GET /runs/{id}/jobs/{job}/logs`, polled every 20 ms. What a user
  following the run sees at best; it adds the log's flush to the store to D1.
- D3, dispatch throughput: one workflow of `--jobs` independent jobs with one step `true`;
  jobs / (run's `finished_at` - time before the POST), the median of `--repeat` runs.
  The embedded runner has `--runner-slots` slots.

Usage: `.venv/bin/python benchmarks/server_dispatch.py [--databases sqlite,postgresql]
[--triggers 30] [--jobs 200] [--repeat 3] [--runner-slots 4] [--executor auto|sandbox|shell]`
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from server_harness import (
    BenchmarkError,
    Row,
    Server,
    admin_token,
    api_client,
    check,
    create_project,
    database,
    make_repo,
    ms,
    run_benchmark,
    trigger,
    wait_completed,
)

LATENCY_TARGET = 0.250  # seconds, p50
THROUGHPUT_TARGET = 100.0  # jobs per second
LOG_MARKER = "first-step-says-hello"
STAMP_PREFIX = "first-step-clock="
PROJECT = "bench"


def latency_workflow() -> str:
    # The step prints its own wall clock; the benchmark reads it from the log afterwards, so
    # the measure works in the sandbox too (a step there cannot write outside its workspace).
    return (
        "name: latency\n"
        "on: workflow_dispatch\n"
        "jobs:\n"
        "  first:\n"
        "    runs-on: ubuntu-latest\n"
        "    steps:\n"
        f'      - run: echo "{STAMP_PREFIX}$(date +%s.%N)" && echo {LOG_MARKER}\n'
    )


def throughput_workflow(jobs: int) -> str:
    body = "".join(
        f"  j{i:04d}:\n    runs-on: ubuntu-latest\n    steps:\n      - run: 'true'\n"
        for i in range(jobs)
    )
    return f"name: throughput\non: workflow_dispatch\njobs:\n{body}"


def epoch(value: str | None) -> float:
    """A timestamp of the API (ISO 8601; naive means UTC) as seconds since the epoch."""
    if value is None:
        raise BenchmarkError("a timestamp the benchmark needs is missing")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def optional_epoch(value: str | None) -> float:
    """`epoch`, NaN for a timestamp the server did not record."""
    return math.nan if value is None else epoch(value)


@dataclass(frozen=True, slots=True)
class Trigger:
    """One D1 measurement, seconds after the clock read before the POST."""

    answered: float  # the POST's response arrived
    created: float  # the run's created_at
    claimed: float  # the job's started_at
    step_started: float  # the step's started_at (NaN: not recorded)
    first_step: float  # the step's own `date`


def step_clock(client: httpx.Client, run_id: int, job_id: int) -> float:
    """The wall clock the first step printed (seconds since the epoch)."""
    response = client.get(f"/api/v1/runs/{run_id}/jobs/{job_id}/logs")
    for line in response.text.splitlines():
        if STAMP_PREFIX in line and "echo" not in line:
            return float(line.split(STAMP_PREFIX, 1)[1].split()[0])
    raise BenchmarkError(f"run {run_id}: the step's clock is not in its log")


def run_detail(client: httpx.Client, run_id: int) -> dict[str, Any]:
    detail: dict[str, Any] = check(client.get(f"/api/v1/runs/{run_id}"), "run detail")
    return detail


def require_success(run: dict[str, Any]) -> None:
    if run["conclusion"] != "success":
        raise BenchmarkError(f"run {run['id']} ended {run['conclusion']}: {run.get('error')}")


def measure_trigger(client: httpx.Client) -> Trigger:
    t0 = time.time()
    run = trigger(client, PROJECT, "latency.yml")
    answered = time.time() - t0
    require_success(wait_completed(client, PROJECT, run["id"], poll=0.05))
    job = run_detail(client, run["id"])["jobs"][0]
    first_step = step_clock(client, run["id"], job["id"]) - t0
    return Trigger(
        answered=answered,
        created=epoch(run["created_at"]) - t0,
        claimed=epoch(job["started_at"]) - t0,
        step_started=optional_epoch(job["steps"][0]["started_at"]) - t0,
        first_step=first_step,
    )


def measure_log_line(client: httpx.Client) -> float:
    """Seconds from before the POST until the step's echo is readable through the API."""
    t0 = time.time()
    run = trigger(client, PROJECT, "latency.yml")
    deadline = time.monotonic() + 60
    job_id: int | None = None
    while time.monotonic() < deadline:
        if job_id is None:
            jobs = run_detail(client, run["id"])["jobs"]
            job_id = jobs[0]["id"] if jobs else None
        if job_id is not None:
            response = client.get(f"/api/v1/runs/{run['id']}/jobs/{job_id}/logs")
            if response.status_code == 200 and LOG_MARKER in response.text:
                seen = time.time() - t0
                require_success(wait_completed(client, PROJECT, run["id"], poll=0.05))
                return seen
        time.sleep(0.02)
    raise BenchmarkError(f"run {run['id']}: no log line within 60 s")


@dataclass(frozen=True, slots=True)
class Throughput:
    seconds: float  # trigger to the run's finished_at
    first_job: float  # trigger to the first job's started_at
    job_median: float  # a job's started_at to finished_at, median
    concurrency: float  # sum of the jobs' durations / (last finish - first start)


def measure_throughput(client: httpx.Client, jobs: int) -> Throughput:
    t0 = time.time()
    run = trigger(client, PROJECT, "throughput.yml")
    done = wait_completed(client, PROJECT, run["id"], timeout=max(600.0, jobs * 2.0), poll=0.25)
    require_success(done)
    records = run_detail(client, run["id"])["jobs"]
    if len(records) != jobs:
        raise BenchmarkError(f"run {run['id']} has {len(records)} jobs, not {jobs}")
    starts = [epoch(j["started_at"]) for j in records]
    ends = [epoch(j["finished_at"]) for j in records]
    durations = [end - start for start, end in zip(starts, ends, strict=True)]
    span = max(ends) - min(starts)
    return Throughput(
        seconds=epoch(done["finished_at"]) - t0,
        first_job=min(starts) - t0,
        job_median=statistics.median(durations),
        concurrency=sum(durations) / span if span > 0 else float("nan"),
    )


def bench_database(kind: str, tmp: Path, args: argparse.Namespace) -> list[Row]:
    root = tmp / kind
    root.mkdir()
    repo = make_repo(
        root / "repo",
        {
            "latency.yml": latency_workflow(),
            "throughput.yml": throughput_workflow(args.jobs),
        },
    )
    token = admin_token()
    state = root / "state"
    with (
        database(kind, state) as url,
        Server(
            state, url, slots=args.runner_slots, admin_token=token, executor=args.executor
        ) as server,
        api_client(server, token) as client,
    ):
        create_project(client, PROJECT, repo)
        print(f"[{kind}] server on {server.url}, {args.runner_slots} runner slots", flush=True)
        for _ in range(2):  # warm-up: the mirror's first fetch, the first job's imports
            measure_trigger(client)
        triggers: list[Trigger] = []
        for _ in range(args.triggers):
            time.sleep(random.uniform(0.05, 0.25))
            triggers.append(measure_trigger(client))
        print(f"[{kind}] D1 done", flush=True)
        logs = []
        for _ in range(args.log_triggers):
            time.sleep(random.uniform(0.05, 0.25))
            logs.append(measure_log_line(client))
        print(f"[{kind}] D2 done", flush=True)
        throughputs = []
        for i in range(args.repeat):
            throughputs.append(measure_throughput(client, args.jobs))
            print(f"[{kind}] D3 {i + 1}/{args.repeat}: {throughputs[-1]}", flush=True)

    def med(field: str) -> float:
        values = [getattr(t, field) for t in triggers]
        known = [v for v in values if not math.isnan(v)]
        return statistics.median(known) if known else math.nan

    first = med("first_step")
    breakdown = (
        f"POST answered {ms(med('answered'))}, run created {ms(med('created'))}, "
        f"job claimed {ms(med('claimed'))}, step started "
        f"{'not recorded' if math.isnan(med('step_started')) else ms(med('step_started'))}"
    )
    chosen = sorted(throughputs, key=lambda t: t.seconds)[len(throughputs) // 2]
    rate = args.jobs / chosen.seconds
    rows = [
        Row(
            f"D1 {kind}", f"trigger to first step, p50 of {args.triggers}", ms(first),
            first * 1e3, LATENCY_TARGET * 1e3, unit="ms",
            note=f"min {ms(min(t.first_step for t in triggers))}, "
            f"max {ms(max(t.first_step for t in triggers))}",
        ),
        Row(f"D1 {kind}", "  where: medians since the POST", "", 0.0, note=breakdown),
    ]  # fmt: skip
    if logs:
        line = statistics.median(logs)
        rows.append(
            Row(
                f"D2 {kind}", f"trigger to log line via API, p50 of {len(logs)}", ms(line),
                line * 1e3, note=f"min {ms(min(logs))}, max {ms(max(logs))}",
            )
        )  # fmt: skip
    rows.append(
        Row(
            f"D3 {kind}", f"{args.jobs} jobs `true`, {args.runner_slots} slots, median of "
            f"{args.repeat}", f"{rate:.1f} jobs/s", rate, THROUGHPUT_TARGET,
            higher_is_better=True, unit="jobs/s",
            note=f"{chosen.seconds:.2f} s; first job claimed after {ms(chosen.first_job)}, "
            f"a job {ms(chosen.job_median)} (median), {chosen.concurrency:.2f} jobs at once",
        )
    )  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--databases", default="sqlite,postgresql", help="comma-separated")
    parser.add_argument("--triggers", type=int, default=30, help="D1 measurements (median)")
    parser.add_argument("--log-triggers", type=int, default=10, help="D2 measurements")
    parser.add_argument("--jobs", type=int, default=200, help="jobs of the D3 workflow")
    parser.add_argument("--repeat", type=int, default=3, help="D3 runs (median)")
    parser.add_argument("--runner-slots", type=int, default=4, help="the server's slots")
    parser.add_argument(
        "--executor",
        default="auto",
        choices=("auto", "sandbox", "shell"),
        help="the server's executor (auto: the sandbox where bwrap works)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the servers' files and logs")
    args = parser.parse_args(argv)
    return run_benchmark(
        args.databases, args.keep, lambda kind, tmp: bench_database(kind, tmp, args)
    )


if __name__ == "__main__":
    sys.exit(main())
