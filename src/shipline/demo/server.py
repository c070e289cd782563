"""The demo's `shipline server`: a child process in its own session, on the demo's state
directory, stopped with SIGTERM (SIGKILL when it does not stop in time)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

__all__ = ["ServerError", "ServerProcess"]

_LISTENING = re.compile(r"^Shipline listening on (http://\S+)$")


class ServerError(Exception):
    """The server did not start; the message says why (its log's last lines)."""


class ServerProcess:
    """`python -m shipline server` for the demo.

    `state_dir` holds the server's state; its output goes to `server.log` next to it.
    `admin_token` becomes the first admin's token (through the environment, never argv).
    Nothing of the caller's `SHIPLINE_*` environment reaches the server: the demo must not
    use the user's own database or keys.
    """

    def __init__(self, state_dir: Path, host: str, port: int, admin_token: str) -> None:
        self.state_dir = state_dir
        self.log_path = state_dir.parent / "server.log"
        self.url = ""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPLINE_")}
        env.update(SHIPLINE_ADMIN_TOKEN=admin_token, SHIPLINE_SHUTDOWN_GRACE="5")
        self._listening = threading.Event()
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop())
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "shipline",
                "server",
                "--host",
                host,
                "--port",
                str(port),
                "--state-dir",
                str(state_dir),
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            # Its own session: a Ctrl-C reaches the demo only, which stops the server once.
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self._process.pid

    def _read(self) -> None:
        """Copy the server's stdout into the log and find the URL it listens on."""
        assert self._process.stdout is not None
        for raw in self._process.stdout:
            self._log.write(raw)
            self._log.flush()
            found = _LISTENING.match(raw.decode(errors="replace").strip())
            if found:
                self.url = found.group(1)
                self._listening.set()
        self._listening.set()  # exited: whoever waits learns it at once

    def wait_listening(self, timeout: float) -> str:
        """The server's base URL once it listens; `ServerError` when it exits or takes
        longer than `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not self._listening.wait(0.1):
            if time.monotonic() > deadline:
                raise ServerError(f"the server did not start within {timeout:.0f} s{self._tail()}")
        if not self.url:
            self._process.wait()
            raise ServerError(
                f"the server exited with status {self._process.returncode}{self._tail()}"
            )
        return self.url

    def _tail(self) -> str:
        self._log.flush()
        lines = self.log_path.read_text(errors="replace").strip().splitlines()[-5:]
        return (":\n  " + "\n  ".join(lines)) if lines else ""

    def running(self) -> bool:
        return self._process.poll() is None

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout` seconds; the exit status."""
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait()
        self._reader.join(timeout=5)
        if self._process.stdout is not None:
            self._process.stdout.close()
        self._log.close()
        return self._process.returncode
