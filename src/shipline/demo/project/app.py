"""A small HTTP service to deploy with Shipline (standard library only).

    PORT=8000 python3 app.py

GET /version answers the release's version (the VERSION file next to this script, or
$APP_VERSION), GET /healthz answers 200 unless a BROKEN file is present (a release that
fails its health check, for trying automatic rollback), anything else answers a greeting;
a FAIL_RATE file (say 0.5) makes that share of the other requests fail with 500, and a
SLOW_MS file (say 150) delays every other request by that many milliseconds (a release
that is healthy but slower: what a canary analysis compares with the stable version).
On SIGTERM it stops accepting connections and finishes the requests in flight.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent


def read_version() -> str:
    version_file = HERE / "VERSION"
    if version_file.is_file():
        return version_file.read_text(encoding="utf-8").strip()
    return os.environ.get("APP_VERSION", "dev")


VERSION = read_version()
BROKEN = (HERE / "BROKEN").is_file()
# A release that answers health checks but fails this share of other requests: what a
# canary analysis exists to catch.
FAIL_RATE = float((HERE / "FAIL_RATE").read_text()) if (HERE / "FAIL_RATE").is_file() else 0.0
SLOW_MS = float((HERE / "SLOW_MS").read_text()) if (HERE / "SLOW_MS").is_file() else 0.0
INSTANCE = os.environ.get("SHIPLINE_INSTANCE", "")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the router uses it
    # Headers and body are two writes: with Nagle's algorithm the second waits for the
    # peer's delayed ACK (40 ms on Linux) on a keep-alive connection.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        if self.path == "/healthz":
            status = 500 if BROKEN else 200
            self.reply(status, {"healthy": not BROKEN, "version": VERSION})
            return
        if SLOW_MS:
            time.sleep(SLOW_MS / 1000)
        if FAIL_RATE and random.random() < FAIL_RATE:
            self.reply(500, {"error": "injected failure", "version": VERSION})
        elif self.path == "/version":
            self.reply(200, {"version": VERSION, "instance": INSTANCE})
        else:
            self.reply(200, {"hello": "world", "version": VERSION})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self.reply(200, {"received": len(body), "version": VERSION})

    def reply(self, status: int, payload: dict[str, object]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: the router keeps the metrics


def main() -> None:
    port = int(os.environ.get("PORT", "8000"))
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True

    def stop(signum: int, frame: object) -> None:
        # shutdown() blocks until serve_forever returns: call it from another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    print(f"serving version {VERSION} on 127.0.0.1:{port}", flush=True)
    server.serve_forever(poll_interval=0.1)
    server.server_close()
    sys.exit(0)


if __name__ == "__main__":
    main()
