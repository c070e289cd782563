"""Shared parts of the deployment tests: releases of the example service, environments,
and a load generator that counts every failed request."""

from __future__ import annotations

import http.client
import json
import random
import shutil
import socket
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

from shipline.deploy.controller import RolloutController
from shipline.deploy.types import Release
from shipline.spec.environment import load_environment
from shipline.spec.environment_models import EnvironmentSpec

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "webapp"


def make_release(
    root: Path,
    version: str,
    *,
    broken: bool = False,
    fail_rate: float = 0.0,
    slow_ms: float = 0.0,
    appspec: bool = True,
) -> Release:
    """The example service as an unpacked artifact with its VERSION (and BROKEN) file."""
    directory = root / f"release-{version}"
    shutil.copytree(EXAMPLE, directory, ignore=shutil.ignore_patterns(".shipline", "__pycache__"))
    (directory / "VERSION").write_text(version + "\n")
    if broken:
        (directory / "BROKEN").write_text("fails its health check on purpose\n")
    if not appspec:
        (directory / "appspec.yml").unlink()
    if fail_rate:
        (directory / "FAIL_RATE").write_text(f"{fail_rate}\n")
    if slow_ms:
        (directory / "SLOW_MS").write_text(f"{slow_ms}\n")
    return Release(id=f"r-{version}", version=version, directory=directory)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ephemeral_start() -> int:
    """Where the kernel's range of ports for outgoing connections starts."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def port_block(size: int = 40) -> int:
    """The first port of `size` free consecutive ports (tests run in parallel), below the
    kernel's ephemeral range: a port found free there could become the source port of any
    test's outgoing connection before the instance binds it (a flaky "not healthy")."""
    high = _ephemeral_start() - size
    for _ in range(200):
        first = random.randrange(max(1024, high - 12_000), high)
        ok = True
        for port in range(first, first + size):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return first
    raise RuntimeError("no free block of ports")


def environment(
    name: str, strategy: str, *, extra: str = "", instances: int = 4
) -> EnvironmentSpec:
    text = environment_text(strategy, extra=extra, instances=instances)
    spec, diagnostics = load_environment(text, f".shipline/environments/{name}.yml")
    assert spec is not None, [d.format() for d in diagnostics]
    return spec


def environment_text(strategy: str, *, extra: str = "", instances: int = 4) -> str:
    """An environment file for the example service on free ports."""
    first = port_block()
    return f"""
target:
  local:
    instances: {instances}
    start: python3 app.py
    ports: {first}-{first + 30}
    grace: 5s
strategy: {strategy}
health:
  http: {{path: /healthz, status: 200}}
  timeout: 2s
  interval: 100ms
  start_timeout: 15s
traffic:
  port: {first + 35}
  drain: 5s
{extra}
"""


class LoadGenerator:
    """Threads sending GET /version through the router without pause, on keep-alive
    connections (a new one after any failure); counts failures and versions seen."""

    def __init__(self, port: int, threads: int = 4) -> None:
        self.port = port
        self.failures: list[str] = []
        self.versions: Counter[str] = Counter()
        self.requests = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> LoadGenerator:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(10)

    def _run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        while not self._stop.is_set():
            try:
                conn.request("GET", "/version")
                response = conn.getresponse()
                body = response.read()
                if response.status != 200:
                    raise RuntimeError(f"status {response.status}: {body[:100]!r}")
                version = json.loads(body)["version"]
                with self._lock:
                    self.requests += 1
                    self.versions[version] += 1
            except Exception as exc:
                with self._lock:
                    self.requests += 1
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.close()


def versions_now(port: int, count: int = 40) -> Counter[str]:
    """The versions `count` fresh requests through the router report."""
    seen: Counter[str] = Counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    for _ in range(count):
        conn.request("GET", "/version")
        response = conn.getresponse()
        seen[json.loads(response.read())["version"]] += 1
    conn.close()
    return seen


def wait_until(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


async def with_controller(
    state_dir: Path, env: EnvironmentSpec, body: Callable[[RolloutController], Awaitable[None]]
) -> None:
    """Run `body` with a controller, then stop the environment's supervisor (always)."""
    controller = RolloutController(state_dir)
    try:
        await body(controller)
    finally:
        await controller.shutdown(env)
