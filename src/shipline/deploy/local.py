"""The `local` target: a client of the environment's supervisor process.

`LocalFleet.open` connects to the supervisor of an environment under the state directory,
starting one (in its own session, so it outlives this process) when none answers; a server
that restarts gets the running instances back this way. Every call is one JSON request on
the control socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipline.deploy.supervisor import socket_path
from shipline.deploy.types import DeployFailure


@dataclass(frozen=True, slots=True)
class InstanceInfo:
    """An instance as the supervisor reports it."""

    id: str
    release: str
    version: str
    directory: str
    port: int
    pid: int | None
    state: str
    restarts: int
    weight: float
    routed: bool


class LocalFleet:
    """The instances and router of one environment, through its supervisor."""

    def __init__(
        self, state_dir: Path, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.state_dir = state_dir
        self._reader = reader
        self._writer = writer
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, state_dir: Path, environment: str, timeout: float = 15.0) -> LocalFleet:
        """Connect to the environment's supervisor, starting it when none runs."""
        state_dir.mkdir(parents=True, exist_ok=True)
        sock = socket_path(state_dir)
        conn = await _try_connect(sock)
        if conn is None:
            process = _spawn_supervisor(state_dir, environment)
            deadline = time.monotonic() + timeout
            while conn is None:
                if time.monotonic() > deadline or process.poll() not in (None, 0):
                    log = state_dir / "supervisor.log"
                    tail = log.read_text(errors="replace")[-500:] if log.is_file() else ""
                    raise DeployFailure(
                        "target", f"the supervisor of {environment} did not start: {tail}"
                    )
                await asyncio.sleep(0.05)
                conn = await _try_connect(sock)
        return cls(state_dir, *conn)

    @classmethod
    async def attach(cls, state_dir: Path) -> LocalFleet | None:
        """Connect to the environment's supervisor if one runs; never start one."""
        conn = await _try_connect(socket_path(state_dir))
        return cls(state_dir, *conn) if conn is not None else None

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()

    async def call(self, op: str, **fields: Any) -> dict[str, Any]:
        async with self._lock:
            self._writer.write(json.dumps({"op": op, **fields}).encode() + b"\n")
            await self._writer.drain()
            line = await self._reader.readline()
        if not line:
            raise DeployFailure("target", "the environment's supervisor closed the connection")
        response: dict[str, Any] = json.loads(line)
        if "error" in response:
            raise DeployFailure("target", str(response["error"]))
        return response

    # -- typed operations ---------------------------------------------------------------

    async def pid(self) -> int:
        return int((await self.call("hello"))["pid"])

    async def configure_router(self, host: str, port: int) -> int:
        return int((await self.call("router", host=host, port=port))["port"])

    async def start(
        self,
        instance_id: str,
        *,
        release: str,
        version: str,
        directory: Path,
        command: str,
        env: dict[str, str],
        port: int,
    ) -> None:
        await self.call(
            "start",
            id=instance_id,
            release=release,
            version=version,
            directory=str(directory),
            command=command,
            env=env,
            port=port,
        )

    async def route(self, weights: dict[str, float]) -> None:
        await self.call(
            "route", upstreams=[{"id": i, "weight": w} for i, w in sorted(weights.items())]
        )

    async def stop(self, instance_id: str, grace: float, drain: float) -> None:
        await self.call("stop", id=instance_id, grace=grace, drain=drain)

    async def instances(self) -> list[InstanceInfo]:
        status = await self.call("status")
        return [InstanceInfo(**row) for row in status["instances"]]

    async def status(self) -> dict[str, Any]:
        return await self.call("status")

    async def window(self, ids: list[str], seconds: float) -> list[dict[str, Any]]:
        return list((await self.call("window", ids=ids, seconds=seconds))["windows"])

    async def metrics_text(self) -> str:
        return str((await self.call("metrics"))["text"])

    async def meta(self) -> dict[str, Any]:
        return dict((await self.call("status"))["meta"])

    async def set_meta(self, key: str, value: object) -> None:
        await self.call("meta", key=key, value=value)

    async def shutdown(self, grace: float = 5.0) -> None:
        with contextlib.suppress(DeployFailure, ConnectionError):
            await self.call("shutdown", grace=grace)
        await self.close()


async def _try_connect(
    sock: Path,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    if not sock.exists():
        return None
    try:
        return await asyncio.open_unix_connection(str(sock), limit=1 << 22)
    except OSError:
        return None


def _spawn_supervisor(state_dir: Path, environment: str) -> subprocess.Popen[bytes]:
    log = open(state_dir / "supervisor.log", "ab")  # noqa: SIM115
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "shipline.deploy.supervisor", str(state_dir), environment],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # outlives the server: it must not share its fate
            close_fds=True,
            env={k: v for k, v in os.environ.items() if not k.startswith("SHIPLINE_SECRET")},
        )
    finally:
        log.close()
