"""Old against new source tree, interleaved, on the same (shared, noisy) machine.

The server benchmarks' absolute figures follow the machine's load (this VM's other tenants
move them by 3-10x within minutes). This script runs the same workload on a server of an
old source tree (`--old-src`, e.g. `git archive <commit> src | tar -x -C /tmp/old`) and of
the installed one, alternately, and also reports the server process's own CPU time per job
or request (`/proc/<pid>/stat`), which depends much less on the load than wall time does.

- `d3`: `server_dispatch.py`'s D3 (one run of `--jobs` jobs `true`, 4 slots) on a fresh
  SQLite or PostgreSQL database;
- `api`: `server_api.py`'s A1 and A2 phases (serial service time, then 100 requests/s
  open loop) on a copy of a database seeded once by `server_api.seed` (`--seeded`: a
  SQLite file, or a PostgreSQL URL at migration 0001, which the old server must see first;
  `--token` then names its admin token, made at the first start).

Usage: `.venv/bin/python benchmarks/server_ab.py d3 --old-src /tmp/old/src --rounds 2
[--slots 4] [--executor auto|sandbox|shell]`
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
from pathlib import Path

import server_api
from server_dispatch import PROJECT, measure_throughput, throughput_workflow
from server_harness import (
    Server,
    admin_token,
    api_client,
    create_project,
    database,
    make_repo,
    print_header,
    scratch_dir,
)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def d3(tmp: Path, kind: str, label: str, jobs: int, slots: int = 4, executor: str = "auto") -> str:
    root = tmp / f"{label}-{random.randrange(1 << 30)}"
    repo = make_repo(root / "repo", {"throughput.yml": throughput_workflow(jobs)})
    token = admin_token()
    with (
        database(kind, root / "state") as url,
        Server(root / "state", url, slots=slots, admin_token=token, executor=executor) as server,
        api_client(server, token) as client,
    ):
        create_project(client, PROJECT, repo)
        measure_throughput(client, jobs)  # warm-up: imports, the mirror's first fetch
        before = cpu_seconds(server.proc.pid)
        result = measure_throughput(client, jobs)
        used = cpu_seconds(server.proc.pid) - before
    return (
        f"{jobs / result.seconds:.1f} jobs/s ({result.seconds:.1f} s), server CPU "
        f"{used / jobs * 1e3:.1f} ms per job, first job claimed after {result.first_job:.2f} s"
    )


def api(tmp: Path, seeded: str, token: str | None, label: str) -> str:
    root = tmp / f"{label}-{random.randrange(1 << 30)}"
    state = root / "state"
    state.mkdir(parents=True, mode=0o700)
    if seeded.startswith("postgresql"):
        url = seeded
    else:
        shutil.copy(seeded, state / "shipline.db")
        url = f"sqlite:///{state / 'shipline.db'}"
    token = token or admin_token()
    args = argparse.Namespace(rate=100.0, duration=30.0, warmup=3.0, serial=200)
    details = [random.Random(0).randint(1, 10_000) for _ in range(100_000)]
    out = []
    with Server(state, url, slots=1, admin_token=token) as server:
        for name, path in (
            ("A1", lambda _: f"/api/v1/projects/{server_api.PROJECT}/runs?limit=20"),
            ("A2", lambda i: f"/api/v1/runs/{details[i % len(details)]}"),
        ):
            before = cpu_seconds(server.proc.pid)
            one, loaded = server_api.phase(server, token, name, name, path, args, target=True)
            used = cpu_seconds(server.proc.pid) - before
            out.append(
                f"{name}: one at a time p50 {one.measured}, at 100/s p99 {loaded.measured} "
                f"({loaded.note}); server CPU {used:.1f} s in the phase"
            )
    return "; ".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("what", choices=["d3", "api"])
    parser.add_argument("--old-src", required=True, help="the old tree's src directory")
    parser.add_argument("--database", default="sqlite", help="d3: sqlite or postgresql")
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--seeded", help="api: a seeded SQLite file or PostgreSQL URL")
    parser.add_argument("--token", help="api: the admin token of a seeded PostgreSQL")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--slots", type=int, default=4, help="d3: the servers' runner slots")
    parser.add_argument(
        "--executor", default="auto", choices=("auto", "sandbox", "shell"), help="d3"
    )
    args = parser.parse_args()
    print_header()
    new_path = os.environ.get("PYTHONPATH")
    with scratch_dir(keep=False) as tmp:
        for round_ in range(args.rounds):
            for label in ("old", "new"):
                if label == "old":
                    os.environ["PYTHONPATH"] = str(Path(args.old_src).resolve())
                elif new_path is None:
                    os.environ.pop("PYTHONPATH", None)
                else:
                    os.environ["PYTHONPATH"] = new_path
                load = Path("/proc/loadavg").read_text().split()[0]
                if args.what == "d3":
                    result = d3(tmp, args.database, label, args.jobs, args.slots, args.executor)
                else:
                    result = api(tmp, args.seeded or "", args.token, label)
                print(f"round {round_ + 1} {label} (load {load}): {result}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
