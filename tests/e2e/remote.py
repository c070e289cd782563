"""Helpers for the remote runner tests: servers without embedded slots, runner processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.e2e.test_server import free_port


class Proc:
    """A `shipline` subprocess with its output in files."""

    def __init__(self, args: list[str], env: dict[str, str], logs: Path, name: str) -> None:
        self.out = logs / f"{name}.out"
        self.err = logs / f"{name}.log"
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "shipline", *args],
                env=env,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
            )

    @property
    def stderr(self) -> str:
        return self.err.read_text()

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SHIPLINE_")}


class RemoteServer(Proc):
    """`shipline server --runner-slots 0`: every job goes to remote runners."""

    def __init__(self, state: Path, env: dict[str, str], logs: Path, port: int = 0) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = ["server", "--port", str(self.port), "--state-dir", str(state)]
        super().__init__(
            [*args, "--runner-slots", "0"],
            {**base_env(), **env},
            logs,
            f"server-{self.port}-{time.monotonic_ns()}",
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited:\n{self.stderr}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server not healthy:\n{self.stderr}")


def terminate(proc: Proc, timeout: float = 60) -> int:
    proc.signal(signal.SIGTERM)
    return proc.proc.wait(timeout=timeout)
