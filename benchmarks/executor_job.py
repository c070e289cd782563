"""What a whole job costs each executor, measured at the executor (no `shipline run`).

For `shell`, `sandbox` (one sandbox per job, its launcher starting each step) and `sandbox`
with a sandbox per step (`launcher=None`, the fallback): setup, N steps running
`bash --noprofile --norc -eo pipefail SCRIPT` (a `true`), destroy; N = 1 and N = 11,
interleaved, median of `--repeat` runs after one warm-up. Prints the cost of a one-step job
(the per-job fixed cost shows here) and the cost of each further step, (T11 - T1) / 10.

Usage: `.venv/bin/python benchmarks/executor_job.py [--repeat 7]` (as root for the drop to
uid 65534, as runners run).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from shipline.executors.base import Executor, JobEnv, StepProcess
from shipline.executors.sandbox import SandboxExecutor, probe
from shipline.executors.shell import ShellExecutor


async def one_job(executor: Executor, base: Path, steps: int, number: int) -> float:
    root = base / f"job-{number}"
    job = JobEnv(f"job-{number}", root, root / "workspace", root / "temp", root / "tool_cache")
    began = time.perf_counter()
    await executor.setup(job)
    script = job.temp / "step.sh"
    script.write_text("true\n", encoding="utf-8")
    argv = ("bash", "--noprofile", "--norc", "-eo", "pipefail", str(script))
    for _ in range(steps):
        handle = await executor.start(
            job, StepProcess("s", argv, {"PATH": "/usr/bin:/bin"}, job.workspace)
        )
        async for _chunk in executor.tail(handle):
            pass
        await executor.wait(handle)
    await executor.destroy(job)
    return time.perf_counter() - began


async def measure(repeat: int) -> None:
    executors: dict[str, Executor] = {"shell": ShellExecutor(kill_grace=1)}
    if probe() is None:
        executors["sandbox"] = SandboxExecutor(kill_grace=1)
        executors["sandbox, per step"] = SandboxExecutor(kill_grace=1, launcher=None)
    times: dict[str, dict[int, list[float]]] = {name: {1: [], 11: []} for name in executors}
    with tempfile.TemporaryDirectory() as tmp:
        number = 0
        for run in range(repeat + 1):  # run 0 is the warm-up
            for steps in (1, 11):
                for name, executor in executors.items():
                    number += 1
                    took = await one_job(executor, Path(tmp), steps, number)
                    if run:
                        times[name][steps].append(took)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average {load}; medians of {repeat}")
    for name, by_steps in times.items():
        one, eleven = statistics.median(by_steps[1]), statistics.median(by_steps[11])
        print(
            f"{name:18s} job of 1 step {one * 1e3:7.1f} ms"
            f"   each further step {(eleven - one) / 10 * 1e3:6.1f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    asyncio.run(measure(parser.parse_args().repeat))


if __name__ == "__main__":
    main()
