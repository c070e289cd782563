"""Health checks of instances: HTTP (path, expected status) or a command.

`wait_healthy` polls new instances until each has passed `healthy_threshold` checks in a
row, failing when one has not within `start_timeout`; `check_once` is one probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path

from shipline.deploy.types import DeployFailure
from shipline.spec.environment_models import CommandCheck, HealthCheckSpec, HttpCheck


async def check_once(
    spec: HealthCheckSpec, port: int, directory: Path, host: str = "127.0.0.1"
) -> str | None:
    """None when healthy, else why not (for the deployment's record)."""
    check = spec.check
    try:
        if isinstance(check, HttpCheck):
            return await asyncio.wait_for(_http(check, host, port), spec.timeout)
        return await _command(check, spec.timeout, port, directory)
    except TimeoutError:
        return f"no answer within {spec.timeout:g}s"


async def _http(check: HttpCheck, host: str, port: int) -> str | None:
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        return f"connection to port {port} failed: {exc.strerror or exc}"
    try:
        writer.write(
            f"GET {check.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "User-Agent: shipline-health\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        line = await reader.readline()
    except OSError as exc:
        return f"GET {check.path} failed: {exc}"
    finally:
        writer.close()
    fields = line.split(b" ", 2)
    if len(fields) < 2 or not fields[1].isdigit():
        return f"GET {check.path}: not an HTTP answer"
    status = int(fields[1])
    if status != check.status:
        return f"GET {check.path} answered {status}, expected {check.status}"
    return None


async def _command(check: CommandCheck, timeout: float, port: int, directory: Path) -> str | None:
    env = dict(os.environ, PORT=str(port))
    proc = await asyncio.create_subprocess_shell(
        check.run,
        cwd=directory,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return f"command {check.run!r} did not finish within {timeout:g}s"
    if proc.returncode != 0:
        tail = out.decode(errors="replace").strip().splitlines()[-1:] if out else []
        detail = f": {tail[0][:200]}" if tail else ""
        return f"command {check.run!r} exited with {proc.returncode}{detail}"
    return None


async def wait_healthy(
    spec: HealthCheckSpec,
    ports: dict[str, int],
    directory: Path,
    progress: Callable[[str], None],
    *,
    alive: Callable[[str], bool] | None = None,
) -> None:
    """Wait until every instance (`id -> port`) is healthy; raise `DeployFailure` if not."""
    deadline = time.monotonic() + spec.start_timeout
    passes = dict.fromkeys(ports, 0)
    last: dict[str, str] = {}
    while True:
        pending = [i for i, n in passes.items() if n < spec.healthy_threshold]
        if not pending:
            return
        results = await asyncio.gather(*(check_once(spec, ports[i], directory) for i in pending))
        for iid, problem in zip(pending, results, strict=True):
            if problem is None:
                passes[iid] += 1
                if passes[iid] == spec.healthy_threshold:
                    progress(f"instance {iid} (port {ports[iid]}) is healthy")
            else:
                passes[iid] = 0
                last[iid] = problem
        if all(n >= spec.healthy_threshold for n in passes.values()):
            return
        if time.monotonic() >= deadline:
            failing = [i for i, n in passes.items() if n < spec.healthy_threshold]
            why = "; ".join(f"{i}: {last.get(i, 'not checked yet')}" for i in failing)
            raise DeployFailure(
                "health",
                f"{len(failing)} instance(s) not healthy within {spec.start_timeout:g}s: {why}",
            )
        await asyncio.sleep(spec.interval)
