"""Push-to-first-step latency of a hosted repository: a real `git push` over smart HTTP to
`shipline server` (a subprocess, SQLite, the embedded runner) until the first step's
process starts — the step prints bash's `$EPOCHREALTIME`, which the benchmark reads from
the job's log once the run completed, so the figure is exact whatever the log streaming
does, and works in the sandbox too. Next to it, in the same run, the bare baseline: the
same `git push` of the same commits to a local bare repository.

    python benchmarks/push_first_step.py [--pushes 20] [--executor shell|sandbox]

Prints p50/p90/max per row; the target (issue 4) is p50 <= 500 ms.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from shipline.domain.records import TokenKind
from shipline.security.tokens import new_token

WORKFLOW = """\
on: push
jobs:
  first:
    runs-on: ubuntu-latest
    steps:
      - run: echo "first-step-clock=$EPOCHREALTIME"
"""
PREFIX = "first-step-clock="


def git(cwd: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL="/dev/null",
        GIT_TERMINAL_PROMPT="0",
        GIT_AUTHOR_NAME="Bench",
        GIT_AUTHOR_EMAIL="bench@example.com",
        GIT_COMMITTER_NAME="Bench",
        GIT_COMMITTER_EMAIL="bench@example.com",
    )
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"git {' '.join(args)}: {result.stderr}")
    return result.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(root: Path, token: str, executor: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPLINE_")}
    env["SHIPLINE_ADMIN_TOKEN"] = token
    log = (root / "server.log").open("wb")
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "shipline", "server", "--port", str(port)),
            *("--state-dir", str(root / "state"), "--executor", executor, "--runner-slots", "2"),
        ],
        env=env,
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not start: see " + str(root / "server.log"))


def newest_run(client: httpx.Client) -> int:
    items = client.get("/api/v1/projects/app/runs?limit=1").json()["items"]
    return int(items[0]["id"]) if items else 0


def step_clock(client: httpx.Client, after: int) -> float:
    """The clock the first step of the first run newer than `after` printed, once that
    run completed."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        run_id = newest_run(client)
        if run_id > after:
            run = client.get(f"/api/v1/runs/{run_id}").json()
            if run["status"] == "completed":
                if run["conclusion"] != "success":
                    raise SystemExit(f"run {run_id} ended {run['conclusion']}")
                job = run["jobs"][0]["id"]
                log = client.get(f"/api/v1/runs/{run_id}/jobs/{job}/logs").text
                for line in log.splitlines():
                    if PREFIX in line and "echo" not in line:
                        return float(line.split(PREFIX, 1)[1].split()[0])
                raise SystemExit(f"run {run_id}: the step's clock is not in its log")
        time.sleep(0.02)
    raise SystemExit("the run did not complete within 60 s")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pushes", type=int, default=20)
    parser.add_argument("--executor", default="shell", choices=("shell", "sandbox"))
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="push-bench-"))
    token = new_token(TokenKind.USER)[0]
    proc, url = start_server(root, token, args.executor)
    try:
        auth = {"Authorization": f"Bearer {token}"}
        client = httpx.Client(base_url=url, headers=auth, timeout=30)
        created = httpx.post(
            f"{url}/api/v1/projects", json={"name": "app", "repository": "hosted"}, headers=auth
        )
        assert created.status_code == 201, created.text
        bare = root / "bare.git"
        git(root, "init", "-q", "--bare", str(bare))
        work = root / "work"
        git(root, "init", "-q", "-b", "main", str(work))
        host = url.removeprefix("http://")
        git(work, "remote", "add", "shipline", f"http://admin:{token}@{host}/git/app.git")
        git(work, "remote", "add", "bare", str(bare))
        (work / ".shipline" / "workflows").mkdir(parents=True)
        (work / ".shipline" / "workflows" / "ci.yml").write_text(WORKFLOW)
        git(work, "add", "-A")
        git(work, "commit", "-q", "-m", "pipeline")
        for remote in ("bare", "shipline"):
            git(work, "push", "-q", remote, "main")
        step_clock(client, 0)  # warm: the first run done

        def measure() -> tuple[list[float], list[float], list[float]]:
            bare_push, push_returns, first_step = [], [], []
            for i in range(args.pushes):
                (work / "n.txt").write_text(f"{time.time()}\n")
                git(work, "add", "-A")
                git(work, "commit", "-qm", f"change {i}")
                started = time.perf_counter()
                git(work, "push", "-q", "bare", "main")
                bare_push.append(time.perf_counter() - started)

                seen = newest_run(client)
                wall = time.time()
                started = time.perf_counter()
                git(work, "push", "-q", "shipline", "main")
                push_returns.append(time.perf_counter() - started)
                first_step.append(step_clock(client, seen) - wall)  # each push measured alone
            return bare_push, push_returns, first_step

        plain = measure()
        # A protection rule (on other branches): each push's refs are then checked by the
        # Python pre-receive hook instead of the shell's fast path.
        rule = {"kind": "branch", "pattern": "release/*", "push_role": "maintainer"}
        protected = httpx.put(f"{url}/api/v1/projects/app/protections", json=rule, headers=auth)
        assert protected.status_code in (200, 201), protected.text
        ruled = measure()
    finally:
        proc.terminate()
        proc.wait(timeout=60)

    print(f"{args.pushes} pushes a row, executor {args.executor}, load {os.getloadavg()[0]:.1f}")
    print(f"{'':52} {'p50 ms':>7} {'p90 ms':>7} {'max ms':>7}")
    for label, values in (
        ("bare: git push to a local bare repository", plain[0] + ruled[0]),
        ("shipline: git push over HTTP returns", plain[1]),
        ("shipline: git push -> first step starts", plain[2]),
        ("shipline, a protection rule: push returns", ruled[1]),
        ("shipline, a protection rule: push -> first step", ruled[2]),
    ):
        ms = [1000 * v for v in values]
        print(f"{label:52} {pct(ms, 0.5):7.0f} {pct(ms, 0.9):7.0f} {max(ms):7.0f}")
    print(f"mean push -> first step: {1000 * statistics.mean(plain[2]):.0f} ms")


if __name__ == "__main__":
    main()
