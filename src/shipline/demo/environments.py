"""Stopping what the demo's deployments left running.

The `local` target's supervisors run in sessions of their own so that services survive a
server restart; the demo started them (through its server), so it stops them: each
environment's instances, router and supervisor, through the supervisor's control socket.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from shipline.deploy.local import LocalFleet
from shipline.deploy.supervisor import socket_path
from shipline.deploy.types import DeployFailure

__all__ = ["stop_environments"]


def stop_environments(server_state: Path, grace: float = 2.0) -> list[str]:
    """Shut down every environment supervisor under the server's state directory; the
    names of those that were running."""
    # One deployment controller per project: deploy/projects/<project>/environments/<name>.
    found = sorted(p for p in server_state.glob("deploy/projects/*/environments/*") if p.is_dir())
    if not found:
        return []
    return asyncio.run(_stop_all(found, grace))


async def _stop_all(directories: list[Path], grace: float) -> list[str]:
    stopped: list[str] = []
    for directory in directories:
        if not socket_path(directory).exists():
            continue  # never started, or gone already: opening would start one
        try:
            fleet = await LocalFleet.open(directory, directory.name, timeout=10)
            pid = await fleet.pid()
            await fleet.shutdown(grace)
        except (DeployFailure, OSError):
            continue
        await _gone(pid, timeout=10 + grace)
        stopped.append(directory.name)
    return stopped


async def _gone(pid: int, timeout: float) -> None:
    """Wait until the supervisor has exited (its router closes last); SIGKILL after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            return
        await asyncio.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is gone for our purposes (its parent reaps it).
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"
