"""The service's request handler, served in this process on a free port."""

from __future__ import annotations

import json
import sys
import threading
import unittest
import urllib.request
from http.server import ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import app  # noqa: E402  (the service is a script, not a package)


class HandlerTest(unittest.TestCase):
    def setUp(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), app.Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def tearDown(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def get(self, path: str) -> tuple[int, dict[str, object]]:
        with urllib.request.urlopen(self.url + path, timeout=5) as response:
            return response.status, json.load(response)

    def test_version_reports_the_release(self) -> None:
        status, body = self.get("/version")
        self.assertEqual(status, 200)
        self.assertEqual(body["version"], app.VERSION)

    def test_health_check_passes(self) -> None:
        status, body = self.get("/healthz")
        self.assertEqual((status, body["healthy"]), (200, True))

    def test_other_paths_greet(self) -> None:
        status, body = self.get("/")
        self.assertEqual((status, body["hello"]), (200, "world"))


if __name__ == "__main__":
    unittest.main()
