"""What the server benchmarks share: a real `shipline server` subprocess, throwaway git
repositories and PostgreSQL databases, percentiles, and the result table.

Not a benchmark itself: `server_dispatch.py` and `server_api.py` import it (they run as
scripts, so this directory is on `sys.path`).
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from shipline.domain.records import TokenKind
from shipline.security.tokens import new_token

# The PostgreSQL the store's contract suite uses (trust auth, user `postgres`).
POSTGRES_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"

_GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
}


class BenchmarkError(Exception):
    """A step of the benchmark failed; the message says which."""


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the result table; `target` None: informative, no target."""

    workload: str
    what: str
    measured: str
    value: float
    target: float | None = None
    higher_is_better: bool = False
    unit: str = ""
    note: str = ""

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        if self.higher_is_better:
            return self.value >= self.target
        return self.value <= self.target

    @property
    def target_text(self) -> str:
        if self.target is None:
            return "-"
        return f"{'>=' if self.higher_is_better else '<='} {self.target:g} {self.unit}".rstrip()

    @property
    def verdict(self) -> str:
        met = self.met
        if met is None:
            return ""
        return "target met" if met else "MISSED"


def print_table(rows: Sequence[Row]) -> None:
    header = ("", "workload", "measured", "target", "", "note")
    lines = [header]
    lines += [(r.workload, r.what, r.measured, r.target_text, r.verdict, r.note) for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        print("  ".join(cells).rstrip())


def exit_status(rows: Sequence[Row]) -> int:
    """0 when every target is met, 1 when one is missed."""
    return 1 if any(row.met is False for row in rows) else 0


def percentile(values: Sequence[float], p: float) -> float:
    """The `p`-th percentile (0-100), nearest rank: a value that was actually observed."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def ms(seconds: float) -> str:
    return "inf" if math.isinf(seconds) else f"{seconds * 1e3:.1f} ms"


def machine() -> str:
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} CPUs ({model}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, load average {load}"
    )


def print_header() -> None:
    print(f"machine: {machine()}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}\n")


def byte_compile() -> None:
    """Byte-compile the package (PYTHONDONTWRITEBYTECODE may be set), as `pip install`
    does, so the server's start-up is not a compiler run."""
    import shipline

    package = Path(shipline.__file__).parent
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_repo(path: Path, workflows: Mapping[str, str]) -> Path:
    """A git repository at `path` (branch main) with `workflows` (file name -> YAML)."""
    folder = path / ".shipline" / "workflows"
    folder.mkdir(parents=True)
    for name, text in workflows.items():
        (folder / name).write_text(text, encoding="utf-8")
    env = {**os.environ, **_GIT_ENV}
    for git in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "bench"]):
        subprocess.run(["git", *git], cwd=path, env=env, check=True)
    return path


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database on 127.0.0.1:5432, dropped afterwards: its
    SQLAlchemy URL."""
    import psycopg

    name = f"shipline_bench_{secrets.token_hex(4)}"
    admin = POSTGRES_SERVER.replace("+psycopg", "") + "/postgres"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        raise BenchmarkError(f"cannot create a database on {admin}: {exc}") from exc
    try:
        yield f"{POSTGRES_SERVER}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def database(kind: str, state_dir: Path) -> Iterator[str]:
    """The URL of a fresh database of `kind` (`sqlite` in `state_dir`, or `postgresql`)."""
    if kind == "sqlite":
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        yield f"sqlite:///{state_dir / 'shipline.db'}"
    elif kind == "postgresql":
        with postgres_database() as url:
            yield url
    else:
        raise BenchmarkError(f"unknown database {kind!r} (sqlite, postgresql)")


class Server:
    """`python -m shipline server` on a free port, its output in files next to `state_dir`."""

    def __init__(
        self,
        state_dir: Path,
        database_url: str,
        *,
        slots: int,
        admin_token: str,
        executor: str = "auto",
    ) -> None:
        self.state_dir = state_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stdout = state_dir.parent / f"server-{self.port}.out"
        self.stderr = state_dir.parent / f"server-{self.port}.err"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPLINE_")}
        env["SHIPLINE_ADMIN_TOKEN"] = admin_token
        self.argv = [
            sys.executable, "-m", "shipline", "server", "--port", str(self.port),
            "--state-dir", str(state_dir), "--database", database_url,
            "--runner-slots", str(slots), "--executor", executor,
        ]  # fmt: skip
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.proc = subprocess.Popen(
                self.argv, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL
            )
        self._wait_healthy()

    def _wait_healthy(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchmarkError(f"the server exited {self.proc.returncode}:\n{self.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise BenchmarkError(f"the server was not ready within {timeout:g} s:\n{self.tail()}")

    def tail(self) -> str:
        return self.stderr.read_text(encoding="utf-8", errors="replace")[-3000:]

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 30 s."""
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def admin_token() -> str:
    """A fresh user token for `SHIPLINE_ADMIN_TOKEN`."""
    return new_token(TokenKind.USER)[0]


def check(response: httpx.Response, what: str) -> Any:
    """The JSON body of a 2xx answer; BenchmarkError with the body otherwise."""
    if response.status_code // 100 != 2:
        raise BenchmarkError(f"{what}: HTTP {response.status_code} {response.text[:500]}")
    return response.json()


def api_client(server: Server, token: str, timeout: float = 30) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout
    )


def create_project(client: httpx.Client, name: str, repository: Path) -> dict[str, Any]:
    body = {"name": name, "repository": str(repository)}
    project: dict[str, Any] = check(client.post("/api/v1/projects", json=body), "create project")
    return project


def trigger(client: httpx.Client, project: str, workflow: str) -> dict[str, Any]:
    """POST a run of `workflow` (a file name): the one run created."""
    body = {"workflow": workflow}
    runs = check(client.post(f"/api/v1/projects/{project}/runs", json=body), "trigger")
    run: dict[str, Any] = runs["items"][0]
    return run


def wait_completed(
    client: httpx.Client, project: str, run_id: int, *, timeout: float = 600, poll: float = 0.1
) -> dict[str, Any]:
    """The run (as listed: without its jobs) once it has completed.

    Polls the project's newest runs, a cheap query, rather than the run's detail, which
    carries every job and step and would load the server it measures.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page = check(
            client.get(f"/api/v1/projects/{project}/runs", params={"limit": 5}), "list runs"
        )
        for run in page["items"]:
            if run["id"] == run_id and run["status"] == "completed":
                found: dict[str, Any] = run
                return found
        time.sleep(poll)
    raise BenchmarkError(f"run {run_id} did not complete within {timeout:g} s")


@contextlib.contextmanager
def scratch_dir(*, keep: bool) -> Iterator[Path]:
    """A temporary directory for repositories, state directories and server logs; kept
    (and named) when `keep`."""
    path = Path(tempfile.mkdtemp(prefix="shipline-bench-"))
    try:
        yield path
    finally:
        if keep:
            print(f"kept: {path} (server-*.err are the servers' logs)")
        else:
            shutil.rmtree(path, ignore_errors=True)


def run_benchmark(databases: str, keep: bool, bench: Callable[[str, Path], list[Row]]) -> int:
    """The common `main` of the server benchmarks: for each database kind in the
    comma-separated `databases`, `bench(kind, scratch dir)` gives rows; prints the machine,
    then the table; returns the exit status (2 when a step failed)."""
    kinds = [k.strip() for k in databases.split(",") if k.strip()]
    byte_compile()
    print_header()
    rows: list[Row] = []
    with scratch_dir(keep=keep) as tmp:
        try:
            for kind in kinds:
                rows += bench(kind, tmp)
        except (BenchmarkError, httpx.HTTPError) as error:
            print(f"benchmark failed: {error}", file=sys.stderr)
            return 2
    print()
    print_table(rows)
    return exit_status(rows)
