"""Helpers for the remote runner tests: servers without embedded slots, runner processes."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

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


DOCS = Path(__file__).resolve().parents[2] / "docs" / "runners.md"
_SAMPLE = re.compile(
    r"<!-- nginx-sample: begin -->\n```nginx\n(.*?)```\n<!-- nginx-sample: end -->", re.S
)


def nginx_sample() -> str:
    """The sample configuration of docs/runners.md, as written there."""
    found = _SAMPLE.search(DOCS.read_text())
    assert found is not None, f"no nginx sample in {DOCS}"
    return found.group(1)


def local_nginx_config(sample: str, upstreams: list[str], port: int) -> str:
    """The sample with the test's servers as the upstream, listening on 127.0.0.1:`port`
    without TLS (the test has no certificate); every other line as documented."""
    lines = []
    servers_done = False
    for line in sample.splitlines():
        stripped = line.strip()
        if stripped.startswith("server ") and ":" in stripped and "{" not in stripped:
            if not servers_done:  # the upstream's servers: the test's, same parameters
                params = stripped.split(None, 2)[2] if len(stripped.split()) > 2 else ";"
                for url in upstreams:
                    host = url.removeprefix("http://")
                    lines.append(f"    server {host} {params}".rstrip())
                servers_done = True
            continue
        if stripped.startswith("listen "):
            lines.append(f"    listen 127.0.0.1:{port};")
            continue
        if stripped.startswith("ssl_"):
            continue
        lines.append(line)
    assert servers_done, "the sample has no upstream servers"
    return "\n".join(lines) + "\n"


class Nginx:
    """Debian's nginx in the foreground with the sample configuration of docs/runners.md
    in front of `upstreams`: its own files under `root` (config, pid, logs, temp)."""

    def __init__(self, root: Path, upstreams: list[str]) -> None:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(binary).exists():
            pytest.fail("nginx is not installed (scripts/test installs Debian's nginx)")
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.access_log = root / "access.log"
        site = root / "shipline.conf"
        site.write_text(local_nginx_config(nginx_sample(), upstreams, self.port))
        temp = {name: root / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
        for path in temp.values():
            path.mkdir(exist_ok=True)
        user = "user root root;\n" if os.geteuid() == 0 else ""
        (root / "nginx.conf").write_text(
            f"{user}daemon off;\nworker_processes 1;\npid {root / 'nginx.pid'};\n"
            f"error_log {root / 'error.log'} info;\n"
            "events { worker_connections 512; }\n"
            "http {\n"
            f"    access_log {self.access_log};\n"
            f"    client_body_temp_path {temp['body']};\n"
            f"    proxy_temp_path {temp['proxy']};\n"
            f"    fastcgi_temp_path {temp['fastcgi']};\n"
            f"    uwsgi_temp_path {temp['uwsgi']};\n"
            f"    scgi_temp_path {temp['scgi']};\n"
            f"    include {site};\n"
            "}\n"
        )
        checked = subprocess.run(
            [
                binary,
                "-t",
                "-p",
                str(root),
                "-c",
                str(root / "nginx.conf"),
                "-e",
                str(root / "error.log"),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert checked.returncode == 0, checked.stderr
        self.proc = subprocess.Popen(
            [
                binary,
                "-p",
                str(root),
                "-c",
                str(root / "nginx.conf"),
                "-e",
                str(root / "error.log"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"nginx exited:\n{self.error_log}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"nginx not answering:\n{self.error_log}")

    @property
    def error_log(self) -> str:
        path = self.root / "error.log"
        return path.read_text() if path.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
