"""Router overhead and deployment duration per strategy (issue 8, "Performance").

Router: one instance of the example service (examples/webapp) behind an environment's
router (running in its supervisor process, as in production). A load generator on
loopback sends GET /version on keep-alive connections, alternating rounds straight to the
instance and through the router; per connection count it reports requests/s and p50/p99
latency of both, and the router's added p50 (median of the rounds' differences, so a
machine that gets busier during the run does not show as overhead). Target: <= 1 ms at p50.

Deployments: the example service on 4 local instances, version 1 replaced by version 2
with each strategy while a load generator sends requests through the router: duration of
the rollout and failed requests (target: 0).

Profile (`--only profile`): the `Router` class in this process (on uvloop) in front of one
instance, a load generator in another process; prints the router's CPU time per request
and where it goes (cProfile, by own time), so a change to the per-request path can be
judged on its CPU cost rather than on latencies a loaded machine blurs.

    .venv/bin/python benchmarks/deploy.py [--seconds 3] [--rounds 5]
        [--only router,deploy,profile] [--requests 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from shipline.deploy.controller import RolloutController
from shipline.deploy.local import LocalFleet
from shipline.deploy.types import Release
from shipline.spec.environment import load_environment
from shipline.spec.environment_models import EnvironmentSpec

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "webapp"
REQUEST = b"GET /version HTTP/1.1\r\nHost: bench\r\n\r\n"
STRATEGIES = {
    "all-at-once": "all-at-once",
    "rolling (batch 1)": "{rolling: {batch_size: 1}}",
    "blue-green (keep 2s)": "{blue-green: {keep_old: 2s}}",
    "canary 25/50/100 (bake 2s)": "{canary: {weights: [25, 50, 100], bake: 2s, analysis: "
    "{max_error_rate: 0.01, min_requests: 10, interval: 2s}}}",
}


def free_block(size: int = 40) -> int:
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            first = int(s.getsockname()[1])
        if first + size < 65000 and all(_free(p) for p in range(first, first + size)):
            return first
    raise SystemExit("no free block of ports")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def release(root: Path, version: str) -> Release:
    directory = root / f"release-{version}"
    shutil.copytree(EXAMPLE, directory, ignore=shutil.ignore_patterns(".shipline", "__pycache__"))
    (directory / "VERSION").write_text(version + "\n")
    (directory / "appspec.yml").unlink()  # measure the strategies, not the example's hooks
    return Release(f"r-{version}", version, directory)


def environment(name: str, strategy: str, instances: int) -> EnvironmentSpec:
    first = free_block()
    text = f"""
target:
  local: {{instances: {instances}, start: python3 app.py, ports: {first}-{first + 30}, grace: 5s}}
strategy: {strategy}
health: {{http: {{path: /healthz}}, interval: 100ms, start_timeout: 30s}}
traffic: {{port: {first + 35}, drain: 5s}}
"""
    spec, diagnostics = load_environment(text, f"{name}.yml")
    if spec is None:
        raise SystemExit("\n".join(d.format() for d in diagnostics))
    return spec


# -- load generators --------------------------------------------------------------------


async def _connection(port: int, until: float, latencies: list[float], errors: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < until:
            started = time.perf_counter()
            writer.write(REQUEST)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            latencies.append((time.perf_counter() - started) * 1000)
            if not head.startswith(b"HTTP/1.1 200"):
                errors.append(1)
    finally:
        writer.close()


async def measure(port: int, connections: int, seconds: float) -> tuple[float, float, float, int]:
    """requests/s, p50 ms, p99 ms, errors of `connections` keep-alive connections."""
    latencies: list[float] = []
    errors: list[int] = []
    until = time.perf_counter() + seconds
    began = time.perf_counter()
    await asyncio.gather(*(_connection(port, until, latencies, errors) for _ in range(connections)))
    elapsed = time.perf_counter() - began
    ordered = sorted(latencies)
    p50 = ordered[len(ordered) // 2]
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return len(latencies) / elapsed, p50, p99, len(errors)


class ThreadLoad:
    """Continuous GET /version through the router from threads; counts failures."""

    def __init__(self, port: int, threads: int = 4) -> None:
        self.port = port
        self.requests = 0
        self.failures = 0
        self.versions: dict[str, int] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> ThreadLoad:
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
                ok = response.status == 200
                version = json.loads(body)["version"] if ok else None
            except (OSError, http.client.HTTPException, ValueError):
                ok, version = False, None
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            with self._lock:
                self.requests += 1
                self.failures += not ok
                if version:
                    self.versions[version] = self.versions.get(version, 0) + 1
        conn.close()


# -- the two benchmarks -----------------------------------------------------------------


async def router_overhead(root: Path, seconds: float, rounds: int) -> bool:
    env = environment("bench-router", "all-at-once", 1)
    assert env.traffic is not None
    state = root / "router-state"
    fleet = await LocalFleet.open(state, env.name)
    met = True
    try:
        router_port = await fleet.configure_router("127.0.0.1", env.traffic.port)
        rel = release(root, "1.0.0")
        instance_port = env.traffic.port - 35
        await fleet.start(
            "i1",
            release=rel.id,
            version=rel.version,
            directory=rel.directory,
            command="python3 app.py",
            env={},
            port=instance_port,
        )
        await fleet.route({"i1": 1.0})
        for _ in range(100):
            if _answers(instance_port):
                break
            await asyncio.sleep(0.1)
        await measure(router_port, 1, 0.5)  # warm-up
        print(f"router overhead: {rounds} alternating rounds of {seconds:g}s per side\n")
        print(
            "| connections | direct req/s | direct p50 | direct p99 | router req/s | router p50 "
            "| router p99 | added p50 | errors |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        supervisor = await fleet.pid()
        cpu_seconds, proxied = 0.0, 0
        for connections in (1, 8):
            direct_rows, router_rows, added = [], [], []
            errors = 0
            for _ in range(rounds):
                d = await measure(instance_port, connections, seconds)
                before = _cpu(supervisor)
                r = await measure(router_port, connections, seconds)
                cpu_seconds += _cpu(supervisor) - before
                proxied += int(r[0] * seconds)
                direct_rows.append(d)
                router_rows.append(r)
                added.append(r[1] - d[1])
                errors += d[3] + r[3]

            def med(rows: list[tuple[float, float, float, int]], i: int) -> float:
                return statistics.median(row[i] for row in rows)

            overhead = statistics.median(added)
            print(
                f"| {connections} | {med(direct_rows, 0):,.0f} | {med(direct_rows, 1):.2f} ms "
                f"| {med(direct_rows, 2):.2f} ms | {med(router_rows, 0):,.0f} "
                f"| {med(router_rows, 1):.2f} ms | {med(router_rows, 2):.2f} ms "
                f"| {overhead:+.2f} ms | {errors} |"
            )
            if connections == 1 and overhead > 1.0:
                met = False
        print(
            f"\nrouter process CPU per proxied request: {cpu_seconds * 1000 / proxied:.3f} ms "
            f"({proxied:,} requests)"
        )
        print(f"router adds <= 1 ms at p50 (1 connection): {'target met' if met else 'MISSED'}")
    finally:
        await fleet.shutdown()
    return met


_CLIENT = """
import http.client, sys
conn = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
for _ in range(int(sys.argv[2])):
    conn.request("GET", "/version")
    response = conn.getresponse()
    response.read()
    assert response.status == 200, response.status
"""


def profile_router(root: Path, requests: int) -> bool:
    """The router's own CPU per request, and where it goes (on uvloop, as it runs in its
    supervisor; the profiler counts CPU time, not time waiting for the network)."""
    import uvloop

    return uvloop.run(_profile_router(root, requests))


async def _profile_router(root: Path, requests: int) -> bool:
    import cProfile
    import pstats

    from shipline.deploy.router import Router, UpstreamConfig

    rel = release(root / "profile", "1.0.0")
    port = free_block(2)
    app = await asyncio.create_subprocess_exec(
        sys.executable, "app.py", cwd=rel.directory, env=os.environ | {"PORT": str(port)}
    )
    router = Router("bench-profile", "127.0.0.1", 0)
    await router.start()
    router.set_upstreams([UpstreamConfig("i1", port, 1.0)])
    try:
        for _ in range(100):
            if await asyncio.to_thread(_answers, port):
                break
            await asyncio.sleep(0.1)

        async def load(count: int) -> None:
            client = await asyncio.create_subprocess_exec(
                sys.executable, "-c", _CLIENT, str(router.port), str(count)
            )
            if await client.wait() != 0:
                raise SystemExit("the load generator failed")

        await load(500)  # warm-up
        cpu = time.process_time()
        await load(requests)
        plain = (time.process_time() - cpu) * 1000 / requests
        prof = cProfile.Profile(time.process_time)
        prof.enable()
        await load(requests)
        prof.disable()
    finally:
        await router.close()
        app.terminate()
        await app.wait()
    stats = pstats.Stats(prof)
    rows = sorted(
        ((v[2], v[0], k) for k, v in stats.stats.items()),  # type: ignore[attr-defined]
        reverse=True,
    )
    total = sum(r[0] for r in rows)
    print(f"\nrouter in process, {requests:,} keep-alive GET /version from another process")
    print(f"CPU per proxied request: {plain:.3f} ms (without the profiler)\n")
    print("| function (own CPU time, under the profiler) | calls per request | share |")
    print("|---|---|---|")
    for own, calls, (file, line, name) in rows[:10]:
        where = f"{Path(file).name}:{line}({name})" if line else name
        print(f"| `{where}` | {calls / requests:.1f} | {own / total:.0%} |")
    return True


def _cpu(pid: int) -> float:
    """User + system CPU seconds of a process (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _answers(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        conn.request("GET", "/healthz")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


async def deployments(root: Path) -> bool:
    print("\ndeployment of 2.0.0 over 1.0.0 on 4 local instances, under continuous load\n")
    print("| strategy | duration | requests during | failed | outcome |")
    print("|---|---|---|---|---|")
    ok = True
    for label, strategy in STRATEGIES.items():
        name = "bench-" + label.split()[0]
        env = environment(name, strategy, 4)
        assert env.traffic is not None
        controller = RolloutController(root / f"state-{name}")
        try:
            v1, v2 = release(root / name, "1.0.0"), release(root / name, "2.0.0")
            first = await controller.rollout(env, v1, lambda _m: None)
            if not first.ok:
                raise SystemExit(f"{label}: first release failed: {first.reason}")
            with ThreadLoad(env.traffic.port) as load:
                await asyncio.sleep(0.5)
                result = await controller.rollout(env, v2, lambda _m: None)
                await asyncio.sleep(0.5)
            ok = ok and result.ok and load.failures == 0
            print(
                f"| {label} | {result.duration:.1f} s | {load.requests:,} | {load.failures} "
                f"| {result.outcome} |"
            )
        finally:
            await controller.shutdown(env)
    print(f"\nzero failed requests in every strategy: {'target met' if ok else 'MISSED'}")
    return ok


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", default="router,deploy")
    parser.add_argument("--requests", type=int, default=20000)
    args = parser.parse_args()
    only = set(args.only.split(","))
    root = Path(tempfile.mkdtemp(prefix="shipline-bench-deploy-"))
    results = []
    try:
        if "router" in only:
            results.append(await router_overhead(root, args.seconds, args.rounds))
        if "profile" in only:
            results.append(await asyncio.to_thread(profile_router, root, args.requests))
        if "deploy" in only:
            results.append(await deployments(root))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
