"""Per-upstream request, error and latency metrics of the traffic router.

Counters and a fixed-bucket latency histogram for Prometheus, plus a ring of recent samples
for the windowed error rate and p95 that canary analysis reads.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections import deque
from dataclasses import dataclass

BUCKETS_MS = (1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0)


@dataclass(frozen=True, slots=True)
class Window:
    """Requests, errors and the p95 latency (ms) seen in a time window."""

    requests: int
    errors: int
    p95_ms: float | None

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


class UpstreamStats:
    """Counters of one upstream; `record` is called once per proxied request."""

    def __init__(self, samples: int = 20000) -> None:
        self.requests = 0
        self.errors = 0
        self.latency_sum_ms = 0.0
        self.buckets = [0] * (len(BUCKETS_MS) + 1)
        self._recent: deque[tuple[float, float, bool]] = deque(maxlen=samples)

    def record(self, latency_ms: float, error: bool, now: float | None = None) -> None:
        self.requests += 1
        self.errors += error
        self.latency_sum_ms += latency_ms
        # The first bucket whose bound is >= the latency (the last one: +Inf).
        self.buckets[bisect_left(BUCKETS_MS, latency_ms)] += 1
        self._recent.append((time.monotonic() if now is None else now, latency_ms, error))

    def window(self, seconds: float, now: float | None = None) -> Window:
        since = (time.monotonic() if now is None else now) - seconds
        latencies: list[float] = []
        errors = 0
        for at, ms, err in reversed(self._recent):
            if at < since:
                break
            latencies.append(ms)
            errors += err
        return Window(len(latencies), errors, percentile(latencies, 95))


def percentile(values: list[float], pct: float) -> float | None:
    """The nearest-rank percentile of `values` (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def merge(windows: list[Window], samples: list[list[float]] | None = None) -> Window:
    """Windows of several upstreams as one (p95: the worst of them)."""
    requests = sum(w.requests for w in windows)
    errors = sum(w.errors for w in windows)
    p95s = [w.p95_ms for w in windows if w.p95_ms is not None]
    return Window(requests, errors, max(p95s) if p95s else None)


def prometheus_text(environment: str, rows: list[tuple[str, str, UpstreamStats]]) -> str:
    """Prometheus exposition text for (upstream id, release id, stats) rows."""
    out = [
        "# HELP shipline_router_requests_total Requests proxied to an upstream.",
        "# TYPE shipline_router_requests_total counter",
    ]
    labels = [
        (f'environment="{_esc(environment)}",upstream="{_esc(u)}",release="{_esc(r)}"', s)
        for u, r, s in rows
    ]
    out += [f"shipline_router_requests_total{{{lab}}} {s.requests}" for lab, s in labels]
    out += [
        "# HELP shipline_router_errors_total Requests that failed (5xx or no answer).",
        "# TYPE shipline_router_errors_total counter",
    ]
    out += [f"shipline_router_errors_total{{{lab}}} {s.errors}" for lab, s in labels]
    out += [
        "# HELP shipline_router_request_duration_ms Upstream latency in milliseconds.",
        "# TYPE shipline_router_request_duration_ms histogram",
    ]
    for lab, s in labels:
        running = 0
        for bound, count in zip(BUCKETS_MS, s.buckets, strict=False):
            running += count
            out.append(
                f'shipline_router_request_duration_ms_bucket{{{lab},le="{bound:g}"}} {running}'
            )
        out.append(f'shipline_router_request_duration_ms_bucket{{{lab},le="+Inf"}} {s.requests}')
        out.append(f"shipline_router_request_duration_ms_sum{{{lab}}} {s.latency_sum_ms:.3f}")
        out.append(f"shipline_router_request_duration_ms_count{{{lab}}} {s.requests}")
    return "\n".join(out) + "\n"


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
