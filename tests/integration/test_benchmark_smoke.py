"""The benchmarks call the store and the server as the code is now: a tiny run of one that
touches the store's ports directly, so that a changed signature fails here, not the next
time someone measures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_bare_claim_benchmark_runs_against_the_current_store() -> None:
    done = subprocess.run(
        [sys.executable, "benchmarks/remote_runners.py", "--only", "B", "--jobs", "20",
         "--claims", "5"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "bare claim transaction p50" in done.stdout
