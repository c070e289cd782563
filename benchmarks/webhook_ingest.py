"""Webhook ingestion rate: signed GitHub `ping` deliveries (verified, stored, answered) and
replays of them (verified, found duplicate, answered) against a real server on 127.0.0.1
with SQLite — next to a bare baseline in the same run: `GET /healthz` through the same
clients and server (what HTTP alone costs here).

    python benchmarks/webhook_ingest.py [--deliveries 500] [--clients 4]

The machine is shared and loaded, so wall-clock rates say little: the table's figure is CPU
time per request (server and clients are one process), and the CPU above the bare
baseline (what ingestion itself costs). "service" rows call `WebhookService.receive`
in-process (no HTTP): verification, dedup and storage alone. `--profile` prints the
hottest functions of the in-process path.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import hmac
import pstats
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import uvicorn

from shipline.domain.source import Forge
from shipline.server.app import create_app
from shipline.settings import Settings
from shipline.wiring import build_server

BODY = b'{"zen": "Keep it logically awesome.", "hook_id": 1, "sender": {"login": "octocat"}}'


def timed(count: int, work: Callable[[], None]) -> tuple[float, float]:
    """(wall seconds, CPU ms per item) of `work`."""
    started, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - started, 1000 * (time.process_time() - cpu) / count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deliveries", type=int, default=500)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    n = args.deliveries
    state = Path(tempfile.mkdtemp()) / "state"
    context, _ = build_server(Settings.with_flags(state_dir=state, runner_slots=1))
    token = context.access.bootstrap_admin(None)
    assert token is not None
    app = create_app(context)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_keep_alive=60)
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {token}"}
    httpx.post(f"{url}/api/v1/projects", json={"name": "app", "repository": "hosted"}, headers=auth)
    secret = httpx.post(f"{url}/api/v1/projects/app/webhook/secret", headers=auth).json()["secret"]
    signature = "sha256=" + hmac.new(secret.encode(), BODY, hashlib.sha256).hexdigest()
    clients = [httpx.Client(timeout=60) for _ in range(args.clients)]

    def deliver(i: int, prefix: str = "delivery") -> None:
        response = clients[i % args.clients].post(
            f"{url}/hooks/github?project=app",
            content=BODY,
            headers={
                "X-GitHub-Event": "ping",
                "X-GitHub-Delivery": f"{prefix}-{i}",
                "X-Hub-Signature-256": signature,
            },
        )
        assert response.status_code == 200, response.text

    def bare(i: int) -> None:
        assert clients[i % args.clients].get(f"{url}/healthz").status_code == 200

    def over_http(one: Callable[[int], None]) -> Callable[[], None]:
        def work() -> None:
            with ThreadPoolExecutor(args.clients) as pool:
                list(pool.map(one, range(n)))

        return work

    hooks = app.state.services.webhooks
    headers = {"x-github-event": "ping", "x-hub-signature-256": signature}

    def in_process(prefix: str) -> Callable[[], None]:
        def work() -> None:
            for i in range(n):
                sent = {**headers, "x-github-delivery": f"{prefix}-{i}"}
                hooks.receive(Forge.GITHUB, "app", sent, BODY)

        return work

    over_http(bare)()  # warm up connections and code paths
    rows = [
        ("bare HTTP: GET /healthz", timed(n, over_http(bare))),
        ("HTTP: new deliveries", timed(n, over_http(deliver))),
        ("HTTP: replays (duplicates)", timed(n, over_http(deliver))),
        ("service: new deliveries", timed(n, in_process("service"))),
        ("service: replays", timed(n, in_process("service"))),
    ]
    baseline = rows[0][1][1]
    print(f"{n} requests each, {args.clients} clients, SQLite; CPU = server and clients")
    print(f"{'':28} {'wall s':>7} {'req/s':>7} {'CPU ms':>7} {'over bare':>9} {'2 cores/s':>9}")
    for label, (wall, cpu) in rows:
        over = f"{cpu - baseline:9.2f}" if label.startswith("HTTP") else f"{'':9}"
        print(f"{label:28} {wall:7.2f} {n / wall:7.0f} {cpu:7.2f} {over} {2000 / cpu:9.0f}")
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(in_process("profiled"))
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    server.should_exit = True


if __name__ == "__main__":
    main()
