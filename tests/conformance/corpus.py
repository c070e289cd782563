"""Shared helpers for the external conformance corpora in `../shared/conformance`.

Each suite computes its pass rate, asserts it against the issue's threshold and records it
with `record_rate`; the rates are printed at the end of the test output (also under xdist,
through files in `test-output/conformance/`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
RATES_DIR = ROOT / "test-output" / "conformance"


def corpus_dir() -> Path:
    """Where the corpora are: `$SHIPLINE_CONFORMANCE_DIR` or `../shared/conformance`."""
    env = os.environ.get("SHIPLINE_CONFORMANCE_DIR")
    return Path(env) if env else ROOT.parent / "shared" / "conformance"


def load_corpus(name: str) -> Any:
    path = corpus_dir() / name
    if not path.exists():
        pytest.skip(f"conformance corpus {path} is not present")
    return json.loads(path.read_text(encoding="utf-8"))


def load_known_failures(name: str) -> dict[str, str]:
    """`known_failures/<name>.txt`: one `case-id<TAB>reason` per line, `#` comments."""
    path = Path(__file__).parent / "known_failures" / f"{name}.txt"
    known: dict[str, str] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.startswith("#"):
                case_id, _, reason = line.partition("\t")
                known[case_id.strip()] = reason.strip()
    return known


def record_rate(suite: str, passed: int, total: int, threshold: float, detail: str = "") -> None:
    RATES_DIR.mkdir(parents=True, exist_ok=True)
    (RATES_DIR / f"{suite}.json").write_text(
        json.dumps(
            {
                "suite": suite,
                "passed": passed,
                "total": total,
                "threshold": threshold,
                "detail": detail,
            }
        ),
        encoding="utf-8",
    )
