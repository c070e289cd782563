"""What a local `shipline run` costs, against bare bash doing the same work.

One invocation runs every workload through `shipline run` and through a bare bash baseline
and prints a table of medians, ratios and the issue's targets:

- W0: one job with one step `true` -- the fixed cost of a whole `shipline run` process
  (baseline: `bash -c true`).
- W1: one job of 51 steps `true` against the same job with 1 step: the marginal cost of a
  step, start-up removed, (T51 - T1) / 50 (baseline: 51 against 1 runs of
  `bash --noprofile --norc -eo pipefail SCRIPT`, the way a step is started).
- W1S: W1 through `--executor sandbox` against W1 through the shell executor, interleaved
  pairs in the same run: what the sandbox (bubblewrap, the drop to uid 65534 when root, the
  job's cgroup limits) adds per step. Target (issue 6): at most 15 ms per step over shell.
  Skipped (with the reason) when the sandbox cannot run on this machine.
- W2: 20 independent jobs of `sleep 0.5` with `--parallel 2`; ideal 5.0 s (baseline: 20
  sleeps through `xargs -P 2`).
- W3: one step printing 200,000 lines (`seq 200000`), stdout to a file, against the same
  job with one step `true`: the cost per line, start-up removed (baseline:
  `bash -c 'seq 200000 > /dev/null'` against `bash -c true`).

W1 and W3 take the median of the differences of interleaved pairs, so a machine that gets
busier during the benchmark does not turn into a cost per step or per line.

Usage: `.venv/bin/python benchmarks/local_run.py [--repeat 5] [--repeat-w2 2] [--only W0,W3]`
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

W1_STEPS = 51
W2_JOBS = 20
W2_SLEEP = 0.5
W2_PARALLEL = 2
W3_LINES = 200_000

# Peers measured on the same work (see benchmarks/README.md), for the table only.
PEERS = {
    "W0": "Buildbot 434 ms, gitlab-ci-local 466 ms",
    "W1": "Buildbot 115 ms/step",
    "W1S": "-",
    "W2": "Buildbot 11.2 s, gitlab-ci-local 5.6 s",
    "W3": "Buildbot 7.8 us/line, gitlab-ci-local 15 us/line",
}

_GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
}


class BenchmarkError(Exception):
    """A command of the benchmark failed; the message says which and shows its output."""


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the result table."""

    workload: str
    what: str
    shipline: str
    bare: str
    ratio: str
    measure: float
    target: float
    unit: str

    @property
    def met(self) -> bool:
        return self.measure <= self.target


def shipline_command() -> list[str]:
    """The `shipline` console script installed next to this interpreter."""
    script = Path(sys.executable).parent / "shipline"
    if script.exists():
        return [str(script)]
    found = shutil.which("shipline")
    if found is None:
        raise BenchmarkError("no `shipline` next to sys.executable nor on PATH")
    return [found]


def job_yaml(job_id: str, commands: Sequence[str]) -> str:
    steps = "".join(f"      - run: {command}\n" for command in commands)
    return f"  {job_id}:\n    runs-on: ubuntu-latest\n    steps:\n{steps}"


def make_repo(parent: Path, name: str, jobs: Sequence[str]) -> Path:
    """A throwaway git repository with one workflow made of `jobs` (YAML fragments)."""
    repo = parent / name
    workflows = repo / ".shipline" / "workflows"
    workflows.mkdir(parents=True)
    text = f"name: {name}\non: push\njobs:\n{''.join(jobs)}"
    (workflows / "bench.yml").write_text(text, encoding="utf-8")
    env = {**os.environ, **_GIT_ENV}
    for git in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "benchmark"]):
        subprocess.run(["git", *git], cwd=repo, env=env, check=True)
    return repo


def timed(argv: Sequence[str], output: Path, cwd: Path | None = None) -> float:
    """Seconds `argv` takes, stdout and stderr to `output` (a file, not a TTY)."""
    with output.open("wb") as sink:
        start = time.perf_counter()
        code = subprocess.run(argv, cwd=cwd, stdout=sink, stderr=sink, check=False).returncode
        elapsed = time.perf_counter() - start
    if code != 0:
        tail = output.read_text(encoding="utf-8", errors="replace")[-2000:]
        raise BenchmarkError(f"{' '.join(argv)} exited {code}:\n{tail}")
    return elapsed


def median_of(repeat: int, measure: Callable[[], float]) -> float:
    """Median of `repeat` measurements, after one untimed warm-up."""
    measure()
    return statistics.median(measure() for _ in range(repeat))


def median_delta(repeat: int, slow: Callable[[], float], fast: Callable[[], float]) -> float:
    """Median of `slow() - fast()` over `repeat` interleaved pairs, after one warm-up each.

    Interleaving keeps a busy machine's drift out of the difference.
    """
    slow()
    fast()
    return statistics.median(slow() - fast() for _ in range(repeat))


def spawn_many(count: int, argv: Sequence[str]) -> float:
    """Seconds to start `argv` `count` times, one after the other, as a runner starts steps."""
    start = time.perf_counter()
    for _ in range(count):
        subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.2f} us"


class Bench:
    """Runs the workloads in a temporary directory and collects the table's rows."""

    def __init__(self, tmp: Path, repeat: int, repeat_w2: int) -> None:
        self.tmp = tmp
        self.repeat = repeat
        self.repeat_w2 = repeat_w2
        self.shipline = shipline_command()
        self.out = tmp / "output.log"

    def run(self, repo: Path, *flags: str) -> float:
        return timed([*self.shipline, "run", "-C", str(repo), *flags], self.out)

    def w0(self) -> Row:
        repo = make_repo(self.tmp, "w0", [job_yaml("one", ["true"])])
        ship = median_of(self.repeat, lambda: self.run(repo))
        bare = median_of(self.repeat, lambda: timed(["bash", "-c", "true"], self.out))
        return Row(
            "W0", "1 job, 1 step `true`", ms(ship), ms(bare), f"{ship / bare:.1f}x",
            ship * 1e3, 250.0, "ms",
        )  # fmt: skip

    def w1(self) -> Row:
        many = make_repo(self.tmp, "w1-many", [job_yaml("steps", ["true"] * W1_STEPS)])
        one = make_repo(self.tmp, "w1-one", [job_yaml("steps", ["true"])])
        ship_delta = median_delta(self.repeat, lambda: self.run(many), lambda: self.run(one))
        script = self.tmp / "step.sh"
        script.write_text("true\n", encoding="utf-8")
        argv = ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)]
        bare_delta = median_delta(
            self.repeat, lambda: spawn_many(W1_STEPS, argv), lambda: spawn_many(1, argv)
        )
        ship = ship_delta / (W1_STEPS - 1)
        bare = bare_delta / (W1_STEPS - 1)
        return Row(
            "W1", "per step, (T51 - T1) / 50", ms(ship), ms(bare), f"{ship / bare:.1f}x",
            (ship - bare) * 1e3, 3.0, "ms/step over bare",
        )  # fmt: skip

    def w1s(self) -> Row:
        """W1 with `--executor sandbox` against W1 with the shell executor, interleaved."""
        many = make_repo(self.tmp, "w1s-many", [job_yaml("steps", ["true"] * W1_STEPS)])
        one = make_repo(self.tmp, "w1s-one", [job_yaml("steps", ["true"])])

        def per_step(*flags: str) -> float:
            return (self.run(many, *flags) - self.run(one, *flags)) / (W1_STEPS - 1)

        pairs = []
        per_step("--executor", "sandbox")  # warm-up
        for _ in range(self.repeat):
            shell = per_step()
            sandbox = per_step("--executor", "sandbox")
            pairs.append((sandbox, shell))
        sandbox = statistics.median(p[0] for p in pairs)
        shell = statistics.median(p[1] for p in pairs)
        over = statistics.median(p[0] - p[1] for p in pairs)
        return Row(
            "W1S", "W1 per step: sandbox vs shell", ms(sandbox), f"shell {ms(shell)}",
            f"{sandbox / shell:.1f}x", over * 1e3, 15.0, "ms/step over shell",
        )  # fmt: skip

    def w2(self) -> Row:
        jobs = [job_yaml(f"sleep{i:02d}", [f"sleep {W2_SLEEP}"]) for i in range(W2_JOBS)]
        repo = make_repo(self.tmp, "w2", jobs)
        flags = ("--parallel", str(W2_PARALLEL))
        ship = median_of(self.repeat_w2, lambda: self.run(repo, *flags))
        xargs = f"seq {W2_JOBS} | xargs -P {W2_PARALLEL} -I{{}} sleep {W2_SLEEP}"
        bare = median_of(self.repeat_w2, lambda: timed(["bash", "-c", xargs], self.out))
        ideal = W2_JOBS * W2_SLEEP / W2_PARALLEL
        return Row(
            "W2", f"{W2_JOBS} jobs `sleep {W2_SLEEP}`, --parallel {W2_PARALLEL}",
            f"{ship:.2f} s", f"{bare:.2f} s", f"{ship / ideal:.3f}x ideal",
            ship / ideal, 1.05, "x ideal",
        )  # fmt: skip

    def w3(self) -> Row:
        lines = make_repo(self.tmp, "w3", [job_yaml("lines", [f"seq {W3_LINES}"])])
        one = make_repo(self.tmp, "w3-true", [job_yaml("lines", ["true"])])
        ship_delta = median_delta(self.repeat, lambda: self.run(lines), lambda: self.run(one))
        seq = f"seq {W3_LINES} > /dev/null"
        bare_delta = median_delta(
            self.repeat,
            lambda: timed(["bash", "-c", seq], self.out),
            lambda: timed(["bash", "-c", "true"], self.out),
        )
        ship = ship_delta / W3_LINES
        bare = bare_delta / W3_LINES
        return Row(
            "W3", f"`seq {W3_LINES}`, per line", us(ship), us(bare), f"{ship / bare:.0f}x",
            (ship - bare) * 1e6, 2.0, "us/line over bare",
        )  # fmt: skip


def byte_compile() -> None:
    """Byte-compile the package, as `pip install` does.

    The environment may set PYTHONDONTWRITEBYTECODE, and a source checkout installed in
    editable mode then recompiles every module of the package on every start: that would
    measure the compiler, not an installed `shipline`.
    """
    import shipline

    package = Path(shipline.__file__).parent
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True)


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


def print_table(rows: Sequence[Row]) -> None:
    header = ("", "workload", "shipline", "bare bash", "ratio", "measured", "target", "")
    lines = [header]
    for row in rows:
        lines.append(
            (
                row.workload, row.what, row.shipline, row.bare, row.ratio,
                f"{row.measure:.2f} {row.unit}", f"<= {row.target:g}",
                "target met" if row.met else "MISSED",
            )
        )  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))
    print()
    for row in rows:
        print(f"{row.workload} peers: {PEERS[row.workload]}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=5, help="runs of W0, W1, W3 (median)")
    parser.add_argument("--repeat-w2", type=int, default=2, help="runs of W2 (median)")
    parser.add_argument("--only", default="W0,W1,W1S,W2,W3", help="comma-separated workloads")
    args = parser.parse_args(argv)
    wanted = [w.strip().upper() for w in args.only.split(",") if w.strip()]
    if "W1S" in wanted:
        from shipline.executors.sandbox import probe

        why = probe()
        if why is not None:
            print(f"W1S skipped: the sandbox cannot run here ({why})")
            wanted.remove("W1S")
    unknown = sorted(set(wanted) - set(PEERS))
    if unknown:
        parser.error(f"unknown workload(s): {', '.join(unknown)}")

    byte_compile()
    print(f"machine: {machine()}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    with tempfile.TemporaryDirectory(prefix="shipline-bench-") as tmp:
        bench = Bench(Path(tmp), args.repeat, args.repeat_w2)
        print(f"shipline: {' '.join(bench.shipline)}\n")
        workloads = {
            "W0": bench.w0, "W1": bench.w1, "W1S": bench.w1s, "W2": bench.w2, "W3": bench.w3
        }  # fmt: skip
        try:
            rows = [workloads[name]() for name in wanted]
        except BenchmarkError as error:
            print(f"benchmark failed: {error}", file=sys.stderr)
            return 2
    print_table(rows)
    return 0 if all(row.met for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
