"""API latency of the server under a steady request rate, with many runs stored.

One invocation, per database (SQLite and PostgreSQL by default):

1. a fresh database gets a project (on a throwaway git repository) and `--runs` completed
   runs, each with 2 jobs of 2 steps, written through the store (`SqlStore`) directly --
   running 10,000 runs through the server would take hours (see `server_dispatch.py`);
2. a real `shipline server` starts on it (a subprocess; the first start makes the admin);
3. an open-loop load generator on loopback (asyncio streams with keep-alive HTTP/1.1
   connections, in this process; see `Connection`) sends
   requests at a fixed `--rate` for `--duration` seconds after a `--warmup` (not counted),
   one phase per request kind, each preceded by `--serial` requests sent one at a time
   (the server's cost of one request, nothing else in flight):
   - A0 `GET /healthz` (no target): the floor -- HTTP stack and load generator, no
     authentication, no database;
   - A1 `GET /api/v1/projects/{p}/runs?limit=20`: the newest page of runs;
   - A2 `GET /api/v1/runs/{id}`: the detail of a random stored run (its jobs and steps).

Open loop: request i is due at start + i / rate whatever happened to earlier ones, and its
latency is counted from that due time, not from when it was actually sent -- a server (or
generator) that falls behind shows up in the latencies instead of slowing the load down
(no coordinated omission). `late` is how far behind schedule the generator itself sent
(p99): when it is not small, the client, not the server, is the limit. When the server
cannot keep up, at most `MAX_IN_FLIGHT` requests are outstanding; a request due beyond
that is not sent and counts as failed ("shed"), as do errors and timeouts
(`REQUEST_TIMEOUT`): their latency is infinite, so a p99 of "inf" means more than 1% of
the requests were not answered in time at all.

`wrk` is not used: Debian's wrk is closed-loop (no fixed rate; wrk2's `-R` is what would
fit), which measures peak throughput, not latency at a given rate.

Usage: `.venv/bin/python benchmarks/server_api.py [--databases sqlite,postgresql]
[--runs 10000] [--rate 100] [--duration 30] [--warmup 3]`
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from server_harness import (
    BenchmarkError,
    Row,
    Server,
    admin_token,
    database,
    make_repo,
    ms,
    percentile,
    run_benchmark,
)
from sqlalchemy import insert

from shipline.domain.status import Conclusion, Status
from shipline.store.ports import NewJob, NewRun
from shipline.store.sql.schema import steps as steps_table
from shipline.store.sql.store import SqlStore

P99_TARGET = 0.050  # seconds
PROJECT = "bench"
BATCH = 500
WORKFLOW = """name: ci
on: [push, workflow_dispatch]
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - run: echo build
      - run: echo test
  lint:
    runs-on: ubuntu-latest
    steps:
      - run: echo lint
      - run: echo check
"""


def seed(url: str, repository: Path, runs: int) -> tuple[list[int], float]:
    """The project and `runs` completed runs (2 jobs of 2 steps each), straight into the
    store: the runs' ids and the seconds it took.

    Runs and jobs go through the store's API (`tx.runs.create`, `set_status`,
    `tx.jobs.create`), `BATCH` runs a transaction; the steps, four times as many rows,
    are inserted in one statement per batch into the steps table, which is what the
    store's `upsert` would leave there (one upsert is two statements).
    """
    start = time.perf_counter()
    store = SqlStore(url)
    ids: list[int] = []
    t = datetime.now(UTC) - timedelta(seconds=runs * 60)
    new_jobs = [
        NewJob(key=key, job_id=key, name=key, runs_on=("ubuntu-latest",),
               status=Status.COMPLETED, conclusion=Conclusion.SUCCESS)
        for key in ("build", "lint")
    ]  # fmt: skip
    try:
        with store.transaction() as tx:
            project = tx.projects.create(PROJECT, str(repository))
        for first in range(0, runs, BATCH):
            step_rows: list[dict[str, object]] = []
            with store.transaction() as tx:
                for i in range(first, min(first + BATCH, runs)):
                    t += timedelta(seconds=60)
                    run = tx.runs.create(
                        NewRun(
                            project_id=project.id,
                            workflow_file=".shipline/workflows/ci.yml",
                            workflow_name="ci",
                            workflow_text=WORKFLOW,
                            event="push" if i % 3 else "workflow_dispatch",
                            ref="refs/heads/main",
                            sha=f"{i:040x}",
                            actor="admin",
                        ),
                        now=t,
                    )
                    tx.runs.set_status(run.id, Status.IN_PROGRESS, now=t)
                    for job in tx.jobs.create(run.id, 1, new_jobs, now=t):
                        step_rows += [
                            {
                                "job_id": job.id, "index": index, "key": f"__{index}",
                                "name": f"Run step {index}", "status": Status.COMPLETED.value,
                                "conclusion": Conclusion.SUCCESS.value, "exit_code": 0,
                                "started_at": t, "finished_at": t + timedelta(seconds=5),
                            }
                            for index in range(2)
                        ]  # fmt: skip
                    finished = t + timedelta(seconds=30)
                    tx.runs.set_status(run.id, Status.COMPLETED, Conclusion.SUCCESS, now=finished)
                    ids.append(run.id)
            with store.engine.begin() as conn:
                conn.execute(insert(steps_table), step_rows)
    finally:
        store.close()
    return ids, time.perf_counter() - start


def service_time(url: str, token: str, path: Callable[[int], str], count: int) -> list[float]:
    """Seconds each of `count` requests takes, sent one at a time: the server's cost of
    one request with nothing else in flight (its capacity is about 1 / this)."""
    headers = {"Authorization": f"Bearer {token}"}
    seconds: list[float] = []
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        for i in range(count + 10):
            start = time.perf_counter()
            response = client.get(path(i))
            if response.status_code != 200:
                raise BenchmarkError(f"GET {path(i)}: HTTP {response.status_code}")
            if i >= 10:  # the first ten warm the connection and the server up
                seconds.append(time.perf_counter() - start)
    return seconds


@dataclass(frozen=True, slots=True)
class Result:
    latencies: list[float]  # seconds from each request's due time to its answer (inf: shed)
    late: list[float]  # seconds each request was sent after its due time
    errors: int  # answers that were not 200, and transport errors and timeouts
    shed: int  # requests not sent: MAX_IN_FLIGHT were still unanswered when they were due
    rate: float  # requests per second answered with 200


# An overloaded server makes the open loop pile up requests without bound, and a client
# with thousands of them waiting stops keeping its own schedule. Beyond this many requests
# unanswered a request is not sent but counted as failed (latency infinite), so that the
# generator stays on time and a phase ends shortly after its duration.
MAX_IN_FLIGHT = 100
REQUEST_TIMEOUT = 10.0


class Connection:
    """One keep-alive HTTP/1.1 connection of the load generator.

    The generator speaks just enough HTTP for these GETs (a request line and headers out; a
    status line, headers and a `Content-Length` body back): httpx's async client costs a few
    milliseconds of the generator's CPU per request, which on this 2-core machine made the
    generator, not the server, fall behind at 100 requests/s (`late` in seconds).
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def get(self, request: bytes) -> int:
        """Send one request (its bytes); the answer's status code once its body is read."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length:
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


async def open_loop(
    url: str,
    token: str,
    path: Callable[[int], str],
    *,
    rate: float,
    duration: float,
    warmup: float,
) -> Result:
    """Send `GET path(i)` at `rate` per second for `warmup + duration` seconds; the
    latencies of those due after the warm-up."""
    loop = asyncio.get_running_loop()
    address = httpx.URL(url)
    host, port = address.host, address.port or 80
    head = f"Host: {host}:{port}\r\nAuthorization: Bearer {token}\r\n\r\n"
    latencies: list[float] = []
    late: list[float] = []
    errors = shed = answered = 0
    in_flight = 0
    idle: list[Connection] = []

    async def send(request: bytes) -> bool:
        """True when the answer is 200. A kept-alive connection the server has closed
        meanwhile (its keep-alive timeout) is replaced once, as HTTP clients do for GETs."""
        while idle:
            connection = idle.pop()
            try:
                status = await connection.get(request)
            except (OSError, asyncio.IncompleteReadError):
                connection.close()
                continue
            idle.append(connection)
            return status == 200
        connection = await Connection.open(host, port)
        try:
            status = await connection.get(request)
        except BaseException:
            connection.close()
            raise
        idle.append(connection)
        return status == 200

    async def one(i: int, due: float, counted: bool) -> None:
        nonlocal errors, in_flight, answered
        sent = loop.time()
        request = f"GET {path(i)} HTTP/1.1\r\n{head}".encode()
        try:
            ok = await asyncio.wait_for(send(request), REQUEST_TIMEOUT)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
            ok = False
        finally:
            in_flight -= 1
        done = loop.time()
        if counted:
            latencies.append(done - due if ok else math.inf)
            late.append(sent - due)
            errors += 0 if ok else 1
            answered += 1 if ok else 0

    total = int((warmup + duration) * rate)
    start = loop.time() + 0.05
    tasks: list[asyncio.Task[None]] = []
    for i in range(total):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        counted = due >= start + warmup
        if in_flight >= MAX_IN_FLIGHT:
            if counted:
                shed += 1
                latencies.append(math.inf)
            continue
        in_flight += 1
        tasks.append(asyncio.create_task(one(i, due, counted)))
    await asyncio.gather(*tasks)
    elapsed = loop.time() - (start + warmup)
    for connection in idle:
        connection.close()
    return Result(latencies, late, errors, shed, answered / elapsed)


def phase(
    server: Server,
    token: str,
    workload: str,
    what: str,
    path: Callable[[int], str],
    args: argparse.Namespace,
    *,
    target: bool,
    duration: float | None = None,
) -> list[Row]:
    serial = service_time(server.url, token, path, args.serial)
    one = Row(
        workload, f"{what}, one request at a time, p50 of {len(serial)}",
        ms(percentile(serial, 50)), percentile(serial, 50) * 1e3,
        note=f"p99 {ms(percentile(serial, 99))}; capacity about "
        f"{1 / percentile(serial, 50):.0f} requests/s",
    )  # fmt: skip
    result = asyncio.run(
        open_loop(
            server.url,
            token,
            path,
            rate=args.rate,
            duration=args.duration if duration is None else duration,
            warmup=args.warmup,
        )
    )
    p50 = percentile(result.latencies, 50)
    p99 = percentile(result.latencies, 99)
    note = (
        f"p50 {ms(p50)}, {len(result.latencies)} requests, {result.rate:.1f}/s answered, "
        f"{result.errors} errors, {result.shed} shed, late p99 {ms(percentile(result.late, 99))}"
    )
    print(f"  {workload}: p99 {ms(p99)}; {note}", flush=True)
    loaded = Row(
        workload, f"{what}, p99 at {args.rate:g}/s", ms(p99), p99 * 1e3,
        P99_TARGET * 1e3 if target else None, unit="ms", note=note,
    )  # fmt: skip
    return [one, loaded]


def bench_database(kind: str, tmp: Path, args: argparse.Namespace) -> list[Row]:
    root = tmp / kind
    root.mkdir()
    repo = make_repo(root / "repo", {"ci.yml": WORKFLOW})
    state = root / "state"
    token = admin_token()
    with database(kind, state) as url:
        ids, seconds = seed(url, repo, args.runs)
        print(f"[{kind}] seeded {len(ids)} runs in {seconds:.1f} s", flush=True)
        with Server(state, url, slots=1, admin_token=token) as server:
            check = httpx.get(
                f"{server.url}/api/v1/projects/{PROJECT}/runs",
                params={"limit": 1},
                headers={"Authorization": f"Bearer {token}"},
            )
            if check.status_code != 200 or check.json()["items"][0]["id"] != ids[-1]:
                raise BenchmarkError(f"the seeded runs are not served: {check.text[:300]}")
            print(f"[{kind}] server on {server.url}", flush=True)
            chosen = random.Random(0)
            detail_ids = [chosen.choice(ids) for _ in range(100_000)]
            rows = [
                *phase(
                    server, token, f"A0 {kind}", "GET /healthz", lambda _: "/healthz", args,
                    target=False, duration=min(args.duration, 10.0),
                ),
                *phase(
                    server, token, f"A1 {kind}", "list runs (limit=20)",
                    lambda _: f"/api/v1/projects/{PROJECT}/runs?limit=20", args, target=True,
                ),
                *phase(
                    server, token, f"A2 {kind}", "run detail (2 jobs x 2 steps)",
                    lambda i: f"/api/v1/runs/{detail_ids[i % len(detail_ids)]}", args,
                    target=True,
                ),
            ]  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--databases", default="sqlite,postgresql", help="comma-separated")
    parser.add_argument("--runs", type=int, default=10_000, help="runs stored")
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds measured")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds not counted")
    parser.add_argument("--serial", type=int, default=200, help="requests one at a time")
    parser.add_argument("--keep", action="store_true", help="keep the servers' files and logs")
    args = parser.parse_args(argv)
    return run_benchmark(
        args.databases, args.keep, lambda kind, tmp: bench_database(kind, tmp, args)
    )


if __name__ == "__main__":
    sys.exit(main())
