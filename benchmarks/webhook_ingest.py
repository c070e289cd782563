"""Webhook ingestion rate: signed GitHub `ping` deliveries (verified, stored, answered) and
replays of them (verified, found duplicate) against a real server on 127.0.0.1, SQLite.

    python benchmarks/webhook_ingest.py [--deliveries 500] [--clients 4]

Prints deliveries per second for new deliveries and for replays, and the CPU time each took
(server and clients together: the figure that does not depend on other load).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import socket
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import uvicorn

from shipline.server.app import create_app
from shipline.settings import Settings
from shipline.wiring import build_server

BODY = b'{"zen": "Keep it logically awesome.", "hook_id": 1, "sender": {"login": "octocat"}}'


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deliveries", type=int, default=500)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp()) / "state"
    context, _ = build_server(Settings.with_flags(state_dir=state, runner_slots=1))
    token = context.access.bootstrap_admin(None)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(context),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            timeout_keep_alive=60,
        )
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {token}"}
    httpx.post(f"{url}/api/v1/projects", json={"name": "app", "repository": "hosted"}, headers=auth)
    secret = httpx.post(f"{url}/api/v1/projects/app/webhook/secret", headers=auth).json()["secret"]
    signature = "sha256=" + hmac.new(secret.encode(), BODY, hashlib.sha256).hexdigest()

    def send(client: httpx.Client, i: int) -> None:
        response = client.post(
            f"{url}/hooks/github?project=app",
            content=BODY,
            headers={
                "X-GitHub-Event": "ping",
                "X-GitHub-Delivery": f"delivery-{i}",
                "X-Hub-Signature-256": signature,
            },
        )
        assert response.status_code == 200, response.text

    clients = [httpx.Client(timeout=60) for _ in range(args.clients)]

    def one(i: int) -> None:
        send(clients[i % args.clients], i)

    for label in ("new", "replayed"):
        started, cpu = time.perf_counter(), time.process_time()
        with ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(one, range(args.deliveries)))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        print(
            f"{label}: {args.deliveries} deliveries in {elapsed:.2f}s = "
            f"{args.deliveries / elapsed:.0f}/s ({args.clients} clients); "
            f"CPU (server and clients, one process) {1000 * cpu / args.deliveries:.1f} ms each"
        )
    server.should_exit = True


if __name__ == "__main__":
    main()
