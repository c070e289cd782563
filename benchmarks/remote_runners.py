"""Remote runners' throughput and the queue's claim latency (issue 5, "Performance").

R1  drain N queued trivial jobs (runs of 200-cell matrices, one `true` step each) with
    the embedded runner on SQLite, 8 slots: jobs per second from the first trigger to the
    last run's end, and CPU seconds per job (the server and every step it ran).
R2  the same N jobs with 4 `shipline runner` processes x 2 slots against one server
    (`--runner-slots 0`) on PostgreSQL, queued before the runners start: jobs per
    second from the runners' start to the last run's end; CPU per job (server + runners
    + steps); claim latency p50/p99 as a runner sees it during the drain (a probe runner
    in this process asks for a job with `wait=0` every 0.2 s, times the answers that
    carried one, and finishes each job at once; its jobs are not counted in jobs/s).
R3  claim latency through the server as in R2 (a probe's `POST /runner/jobs/request`
    answered with a job) with the queue at 100 and at 10,000 jobs: it should stay flat.
B   bare baselines in the same run: 8 threads spawning `bash -c true` N times (what the
    steps cost without Shipline), and one claim transaction in the store at 10,000 queued.

    .venv/bin/python benchmarks/remote_runners.py                 # N = 2000
    .venv/bin/python benchmarks/remote_runners.py --jobs 400 --only R2,R3
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
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
)

CELLS = 200  # jobs per run (one matrix)
_TICK = os.sysconf("SC_CLK_TCK")


def workflow(labels: str, cells: int = CELLS) -> str:
    listed = ", ".join(str(i) for i in range(cells))
    return (
        "on: workflow_dispatch\n"
        "jobs:\n"
        "  cell:\n"
        f"    runs-on: [{labels}]\n"
        f"    strategy: {{matrix: {{n: [{listed}]}}}}\n"
        "    steps: [{run: 'true'}]\n"
    )


def cpu_seconds(pid: int, *, children: bool = True) -> float:
    """CPU time of a live process and (unless `children` is false) of the children it has
    reaped (its steps)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return sum(int(f) for f in fields[11 : 15 if children else 13]) / _TICK


def request_counts(server: Server) -> dict[str, float]:
    """Requests the server answered so far, by route (from its `/metrics`)."""
    text = httpx.get(f"{server.url}/metrics", timeout=60).text
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("shipline_http_request_duration_seconds_count{"):
            labels, value = line[line.index("{") + 1 :].split("} ")
            route = dict(part.split("=", 1) for part in labels.split('",'))["route"]
            counts[route.strip('"')] = counts.get(route.strip('"'), 0.0) + float(value)
    return counts


def fleet_requests(fleet: list[Server]) -> dict[str, float]:
    """`request_counts` summed over the servers."""
    total: dict[str, float] = {}
    for server in fleet:
        for route, n in request_counts(server).items():
            total[route] = total.get(route, 0.0) + n
    return total


def transactions(url: str) -> int:
    """Transactions the database committed or rolled back so far (all its clients)."""
    import psycopg

    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database"
            " WHERE datname = current_database()"
        ).fetchone()
    return int(row[0]) if row is not None else 0


def queue_runs(client: httpx.Client, jobs: int) -> list[int]:
    return [trigger(client, "bench", "wide.yml")["id"] for _ in range(max(1, jobs // CELLS))]


def wait_all(client: httpx.Client, runs: list[int], timeout: float = 3600) -> None:
    """Until every run of `runs` completed (one list request per poll: the runs are the
    project's newest, at most 100)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page = check(
            client.get("/api/v1/projects/bench/runs", params={"limit": min(100, len(runs))}),
            "list runs",
        )
        done = {r["id"] for r in page["items"] if r["status"] == "completed"}
        if done >= set(runs):
            return
        time.sleep(0.5)
    raise RuntimeError(f"runs {runs} did not complete within {timeout:g} s")


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SHIPLINE_")}


def register(
    client: httpx.Client, server: Server, config: Path, name: str, others: tuple[str, ...] = ()
) -> None:
    """A runner's config registered with `server`, given `others` (other servers' URLs,
    tried after the first) too."""
    reg = check(client.post("/api/v1/runners/registration-tokens", json={}), "registration")
    urls = [arg for url in (server.url, *others) for arg in ("--url", url)]
    subprocess.run(
        [sys.executable, "-m", "shipline", "runner", "register", *urls,
         "--config", str(config), "--name", name],
        env={**clean_env(), "SHIPLINE_REGISTRATION_TOKEN": reg["token"]},
        check=True, capture_output=True,
    )  # fmt: skip


class Probe:
    """A runner in this process that claims with `wait=0` and finishes each job at once:
    the time of each answer that carried a job is a claim's latency as runners see it."""

    def __init__(self, client: httpx.Client, server: Server) -> None:
        reg = check(client.post("/api/v1/runners/registration-tokens", json={}), "registration")
        created = check(
            httpx.post(
                f"{server.url}/api/v1/runner/register",
                json={"name": "probe", "labels": ["self-hosted"], "slots": 1},
                headers={"Authorization": f"Bearer {reg['token']}"},
            ),
            "probe registration",
        )
        self.http = httpx.Client(base_url=server.url, timeout=60)
        self.auth = {"Authorization": f"Bearer {created['token']}"}
        self.times: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def claim_once(self) -> bool:
        began = time.perf_counter()
        got = self.http.post("/api/v1/runner/jobs/request", json={"wait": 0}, headers=self.auth)
        took = time.perf_counter() - began
        if got.status_code == 204:
            return False
        job = check(got, "probe claim")
        self.times.append(took)
        done = self.http.post(
            f"/api/v1/runner/jobs/{job['job_id']}/finish",
            json={"conclusion": "success"},
            headers={"Authorization": f"Bearer {job['token']}"},
        )
        if done.status_code != 204:
            raise RuntimeError(f"probe finish: HTTP {done.status_code} {done.text[:300]}")
        return True

    def start(self, every: float = 0.2) -> None:
        def loop() -> None:
            while not self._stop.wait(every):
                self.claim_once()

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        self.http.close()


def drain_embedded(tmp: Path, jobs: int, executor: str) -> list[Row]:
    token = admin_token()
    repo = make_repo(tmp / "repo-r1", {"wide.yml": workflow("self-hosted")})
    with (
        database("sqlite", tmp / "state-r1") as url,
        Server(tmp / "state-r1", url, slots=8, admin_token=token, executor=executor) as server,
        api_client(server, token, timeout=120) as client,
    ):
        create_project(client, "bench", repo)
        pid = server.proc.pid
        cpu0, own0 = cpu_seconds(pid), cpu_seconds(pid, children=False)
        start = time.monotonic()
        runs = queue_runs(client, jobs)
        wait_all(client, runs)
        elapsed = time.monotonic() - start
        cpu = cpu_seconds(pid) - cpu0
        own = cpu_seconds(pid, children=False) - own0
    done = len(runs) * CELLS
    rate = done / elapsed
    what = f"{done} jobs, embedded runner x 8 slots ({executor}), SQLite"
    return [
        Row("R1", what, f"{rate:.1f} jobs/s", rate, unit="jobs/s"),
        Row("R1", "CPU per job (server + steps)", ms(cpu / done), cpu / done * 1e3, unit="ms"),
        Row("R1", "  of which the server's own", ms(own / done), own / done * 1e3, unit="ms"),
    ]


def drain_remote(tmp: Path, jobs: int, executor: str, servers: int = 1) -> list[Row]:
    token = admin_token()
    repo = make_repo(tmp / "repo-r2", {"wide.yml": workflow("self-hosted")})
    with (
        database("postgresql", tmp / "state-r2") as url,
        Server(tmp / "state-r2", url, slots=0, admin_token=token) as server,
        contextlib.ExitStack() as more,
        api_client(server, token, timeout=120) as client,
    ):
        # Further servers on the same database (the production layout of docs/runners.md):
        # runner i asks server i % N first, the others after it.
        fleet = [server] + [
            more.enter_context(Server(tmp / f"state-r2-{n}", url, slots=0, admin_token=token))
            for n in range(1, servers)
        ]
        create_project(client, "bench", repo)
        runs = queue_runs(client, jobs)
        configs = [tmp / f"runner-{i}.json" for i in range(4)]
        for i, config in enumerate(configs):
            first = fleet[i % len(fleet)]
            others = tuple(s.url for s in fleet if s is not first)
            register(client, first, config, f"bench-{i}", others)
        probe = Probe(client, server)
        requests0 = fleet_requests(fleet)
        xacts0 = transactions(url)
        cpu0 = sum(cpu_seconds(s.proc.pid) for s in fleet)
        start = time.monotonic()
        procs = []
        for i, config in enumerate(configs):
            argv = [sys.executable, "-m", "shipline", "runner", "--config", str(config),
                    "--slots", "2", "--work-dir", str(tmp / f"work-{i}"),
                    "--executor", executor]  # fmt: skip
            err = (tmp / f"runner-{i}.err").open("wb")
            procs.append(
                subprocess.Popen(argv, env=clean_env(), stdout=subprocess.DEVNULL, stderr=err)
            )
        probe.start()
        runner_cpu = 0.0
        try:
            wait_all(client, runs)
            elapsed = time.monotonic() - start
            cpu_server = sum(cpu_seconds(s.proc.pid) for s in fleet) - cpu0
            runner_cpu = sum(cpu_seconds(p.pid) for p in procs)
            time.sleep(1)  # the statistics of the last transactions reach pg_stat_database
            xacts = transactions(url) - xacts0
            requests1 = fleet_requests(fleet)
        finally:
            probe.stop()
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=60)
    times = probe.times
    done = len(runs) * CELLS - len(times)  # the runners' jobs only
    rate = done / elapsed
    cpu = cpu_server + runner_cpu
    where = f"{servers} servers, " if servers > 1 else ""
    what = f"{done} jobs, 4 remote runners x 2 slots ({executor}), {where}PostgreSQL"
    total = len(runs) * CELLS  # the probe's jobs too: their requests are counted
    per_route = {
        route: (n - requests0.get(route, 0.0)) / total
        for route, n in sorted(requests1.items())
        if route.startswith("/api/v1/runner") and n > requests0.get(route, 0.0)
    }
    counted = [
        Row("R2", f"  requests per job: {route.removeprefix('/api/v1')}", f"{n:.2f}", n)
        for route, n in per_route.items()
    ]
    return [
        Row("R2", what, f"{rate:.1f} jobs/s", rate, 50, higher_is_better=True, unit="jobs/s"),
        Row(
            "R2",
            "CPU per job (server + runners + steps)",
            ms(cpu / done),
            cpu / done * 1e3,
            unit="ms",
        ),
        Row(
            "R2", "  of which the server", ms(cpu_server / done), cpu_server / done * 1e3, unit="ms"
        ),
        Row(
            "R2",
            f"claim p50 during the drain ({len(times)} probes)",
            ms(percentile(times, 50)),
            percentile(times, 50) * 1e3,
            unit="ms",
        ),
        Row(
            "R2",
            "claim p99 during the drain",
            ms(percentile(times, 99)),
            percentile(times, 99) * 1e3,
            100,
            unit="ms",
        ),
        Row("R2", "HTTP requests per job (runner API)", f"{sum(per_route.values()):.2f}",
            sum(per_route.values())),
        *counted,
        Row("R2", "database transactions per job (every client)", f"{xacts / total:.2f}",
            xacts / total),
    ]  # fmt: skip


def claim_depth(tmp: Path, claims: int) -> list[Row]:
    """R3: probe claims through an idle server with 100, then 10,000 jobs queued."""
    token = admin_token()
    repo = make_repo(tmp / "repo-r3", {"wide.yml": workflow("self-hosted")})
    rows = []
    with (
        database("postgresql", tmp / "state-r3") as url,
        Server(tmp / "state-r3", url, slots=0, admin_token=token) as server,
        api_client(server, token, timeout=300) as client,
    ):
        create_project(client, "bench", repo)
        probe = Probe(client, server)
        queued = 0
        try:
            for depth in (100, 10_000):
                # Keep the queue at `depth` or above while `claims` are timed.
                while queued < depth + claims:
                    trigger(client, "bench", "wide.yml")
                    queued += CELLS
                probe.times = []
                for _ in range(claims):
                    if not probe.claim_once():
                        raise RuntimeError("the queue ran dry")
                queued -= claims
                times = probe.times
                rows += [
                    Row(
                        "R3",
                        f"claim p50, {depth:,}+ queued",
                        ms(percentile(times, 50)),
                        percentile(times, 50) * 1e3,
                        unit="ms",
                    ),
                    Row(
                        "R3",
                        f"claim p99, {depth:,}+ queued",
                        ms(percentile(times, 99)),
                        percentile(times, 99) * 1e3,
                        100,
                        unit="ms",
                    ),
                ]
        finally:
            probe.stop()
    return rows


def bare_steps(jobs: int) -> Row:
    """Baseline: what N `true` steps cost with 8 at a time and nothing around them."""
    start = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: subprocess.run(["bash", "-c", "true"], check=True), range(jobs)))
    rate = jobs / (time.monotonic() - start)
    return Row("B", f"bare: {jobs} x bash -c true, 8 threads", f"{rate:.1f} jobs/s", rate,
               unit="jobs/s")  # fmt: skip


def bare_claim(claims: int) -> list[Row]:
    """Baseline: one claim transaction in the store, no HTTP, at 10,000 queued."""
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
        for _ in range(10):
            with store.transaction() as tx:
                run = tx.runs.create(
                    NewRun(project.id, "w.yml", "w", "on: push", "push", "refs/heads/main",
                           "a" * 40, "bench"),
                    now=now,
                )  # fmt: skip
                tx.jobs.create(
                    run.id, 1,
                    [NewJob(f"j{i}", "j", "j", runs_on=("linux",)) for i in range(1000)],
                    now=now,
                )  # fmt: skip
        times = []
        for _ in range(claims):
            began = time.perf_counter()
            with store.transaction() as tx:
                job = tx.jobs.claim("runner:1", frozenset({"linux"}), lease_seconds=30, now=now)
                assert job is not None
                _, digest = new_token(TokenKind.JOB)
                record = tx.tokens.create(TokenKind.JOB, "j", digest, now=now, job_id=job.id)
                tx.runners.assign(runner.id, job.id, job.tries, record.id, now=now)
            times.append(time.perf_counter() - began)
        store.close()
    return [
        Row(
            "B",
            "bare claim transaction p50, 10,000 queued",
            ms(percentile(times, 50)),
            percentile(times, 50) * 1e3,
            unit="ms",
        ),
        Row(
            "B",
            "bare claim transaction p99, 10,000 queued",
            ms(percentile(times, 99)),
            percentile(times, 99) * 1e3,
            unit="ms",
        ),
    ]


def bench(kind: str, tmp: Path, args: argparse.Namespace) -> list[Row]:
    only = set(args.only.split(",")) if args.only else {"R1", "R2", "R3", "B"}
    rows = []
    if kind == "sqlite" and "R1" in only:
        rows += drain_embedded(tmp, args.jobs, args.executor)
    if kind == "postgresql" and "R2" in only:
        rows += drain_remote(tmp, args.jobs, args.executor, args.servers)
    if kind == "postgresql" and "R3" in only:
        rows += claim_depth(tmp, args.claims)
    if kind == "postgresql" and "B" in only:
        rows.append(bare_steps(args.jobs))
        rows += bare_claim(args.claims)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000, help="jobs to drain (R1, R2)")
    parser.add_argument("--claims", type=int, default=200, help="claims timed (R3, B)")
    parser.add_argument("--only", default="", help="R1,R2,R3,B")
    parser.add_argument(
        "--executor",
        default="auto",
        help="the executor of R1's embedded runner and of R2's remote runners: auto (the "
        "sandbox where it works), sandbox or shell",
    )
    parser.add_argument(
        "--servers",
        type=int,
        default=1,
        help="R2: server processes on the one database (runners spread over them)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args()
    return run_benchmark("sqlite,postgresql", args.keep, lambda kind, tmp: bench(kind, tmp, args))


if __name__ == "__main__":
    sys.exit(main())
