"""The service as a process: it listens on $PORT, answers, and stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import unittest
import urllib.request
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "app.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ProcessTest(unittest.TestCase):
    def test_serves_and_stops_on_sigterm(self) -> None:
        port = free_port()
        env = {**os.environ, "PORT": str(port), "APP_VERSION": "test-1"}
        process = subprocess.Popen([sys.executable, str(APP)], env=env, stdout=subprocess.PIPE)
        try:
            body = None
            deadline = time.monotonic() + 10
            while body is None and time.monotonic() < deadline:
                try:
                    url = f"http://127.0.0.1:{port}/version"
                    with urllib.request.urlopen(url, timeout=2) as response:
                        body = json.load(response)
                except OSError:
                    time.sleep(0.05)
            self.assertIsNotNone(body, "the service did not answer within 10 s")
            assert body is not None
            if not (APP.parent / "VERSION").is_file():
                self.assertEqual(body["version"], "test-1")
            process.send_signal(signal.SIGTERM)
            self.assertEqual(process.wait(timeout=10), 0)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()


if __name__ == "__main__":
    unittest.main()
