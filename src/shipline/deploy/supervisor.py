"""The per-environment supervisor: instances of a `local` target and their router.

One process per environment (`python -m shipline.deploy.supervisor STATE_DIR NAME`), started
in its own session by `local.LocalFleet`, so that the instances and the router keep serving
when the Shipline server stops or crashes; a restarted server connects to the same control
socket and re-adopts them. It holds a lock file for its lifetime (a second one exits), and
answers one JSON request per line on `STATE_DIR/control.sock` (see `Supervisor.handle`).

Instances are restarted when they exit unexpectedly, with exponential backoff (0.5 s
doubling to 30 s, reset after 10 s of uptime), and stopped gracefully: removed from the
router, drained, SIGTERM to the process group, SIGKILL after the grace period.
Environment values (which may hold secrets) are kept in memory only, never in the state
file or on a command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipline.deploy.router import Router, UpstreamConfig

SOCKET = "control.sock"
STATE = "state.json"
LOCK = "supervisor.lock"

_MAX_SOCKET_PATH = 100  # AF_UNIX paths are limited to 107 bytes


def socket_path(state_dir: Path) -> Path:
    """The control socket: in the state directory, or when that path is too long for a
    Unix socket, in a private (0700) directory under the temporary directory."""
    path = state_dir.resolve() / SOCKET
    if len(str(path).encode()) <= _MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:20]
    private = Path(tempfile.gettempdir()) / f"shipline-{os.getuid()}"
    private.mkdir(mode=0o700, exist_ok=True)
    if private.stat().st_uid != os.getuid() or private.stat().st_mode & 0o077:
        raise OSError(f"{private} must be a private directory of this user")
    return private / f"{digest}.sock"


_BACKOFF_START = 0.5
_BACKOFF_MAX = 30.0
_STABLE_AFTER = 10.0


@dataclass(eq=False)
class Instance:
    """One supervised process of a release."""

    id: str
    release: str
    version: str
    directory: str
    command: str
    env: dict[str, str] = field(repr=False)  # may hold secrets
    port: int
    process: asyncio.subprocess.Process | None = None
    state: str = "starting"  # starting | running | backoff | stopping | stopped
    restarts: int = 0
    started_at: float = 0.0
    watcher: asyncio.Task[None] | None = field(default=None, repr=False)

    def public(self) -> dict[str, object]:
        return {
            "id": self.id,
            "release": self.release,
            "version": self.version,
            "directory": self.directory,
            "port": self.port,
            "pid": self.process.pid if self.process else None,
            "state": self.state,
            "restarts": self.restarts,
        }


class Supervisor:
    """Owns the instances and the router of one environment."""

    def __init__(self, state_dir: Path, environment: str) -> None:
        self.state_dir = state_dir
        self.environment = environment
        self.instances: dict[str, Instance] = {}
        self.router: Router | None = None
        self.meta: dict[str, object] = {}
        self.stopped = asyncio.Event()
        (state_dir / "logs").mkdir(parents=True, exist_ok=True)
        state = state_dir / STATE
        if state.is_file():
            with contextlib.suppress(ValueError, OSError):
                self.meta = dict(json.loads(state.read_text()).get("meta", {}))

    # -- requests -----------------------------------------------------------------------

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "hello":
            return {"pid": os.getpid(), "environment": self.environment}
        if op == "router":
            return await self.configure_router(str(request["host"]), int(request["port"]))
        if op == "start":
            return await self.start(request)
        if op == "route":
            return self.route(request["upstreams"])
        if op == "stop":
            return await self.stop(str(request["id"]), float(request["grace"]), request)
        if op == "status":
            return self.status()
        if op == "window":
            return self.window(list(request["ids"]), float(request["seconds"]))
        if op == "metrics":
            return {"text": self.router.metrics_text() if self.router else ""}
        if op == "meta":
            self.meta[str(request["key"])] = request["value"]
            self.save()
            return {}
        if op == "shutdown":
            for inst in list(self.instances.values()):
                await self.stop(inst.id, float(request.get("grace", 5)), {})
            self.stopped.set()
            return {}
        return {"error": f"unknown op {op!r}"}

    async def configure_router(self, host: str, port: int) -> dict[str, Any]:
        if self.router is not None and (self.router.host, self.router.port) != (host, port):
            upstreams = self.router.upstreams()
            await self.router.close()
            self.router = None
        else:
            upstreams = []
        if self.router is None:
            router = Router(self.environment, host, port)
            try:
                await router.start()
            except OSError as exc:
                return {"error": f"the router cannot listen on {host}:{port}: {exc.strerror}"}
            router.set_upstreams(upstreams)
            self.router = router
        self.save()
        return {"port": self.router.port}

    async def start(self, request: dict[str, Any]) -> dict[str, Any]:
        iid = str(request["id"])
        if iid in self.instances:
            return {"error": f"instance {iid} exists"}
        inst = Instance(
            id=iid,
            release=str(request["release"]),
            version=str(request["version"]),
            directory=str(request["directory"]),
            command=str(request["command"]),
            env={str(k): str(v) for k, v in dict(request.get("env", {})).items()},
            port=int(request["port"]),
        )
        self.instances[iid] = inst
        try:
            await self._spawn(inst)
        except OSError as exc:
            del self.instances[iid]
            return {"error": f"cannot start {inst.command!r}: {exc}"}
        inst.watcher = asyncio.create_task(self._watch(inst))
        self.save()
        return inst.public()

    def route(self, upstreams: list[dict[str, Any]]) -> dict[str, Any]:
        if self.router is None:
            return {"error": "the router is not configured"}
        configs = []
        for u in upstreams:
            inst = self.instances.get(str(u["id"]))
            if inst is None:
                return {"error": f"no instance {u['id']}"}
            configs.append(UpstreamConfig(inst.id, inst.port, float(u["weight"]), inst.release))
        self.router.set_upstreams(configs)
        self.save()
        return {}

    async def stop(self, iid: str, grace: float, request: dict[str, Any]) -> dict[str, Any]:
        inst = self.instances.get(iid)
        if inst is None:
            return {}
        if self.router is not None:
            remaining = [u for u in self.router.upstreams() if u.id != iid]
            if len(remaining) != len(self.router.upstreams()):
                self.router.set_upstreams(remaining)
            await self.router.drain(iid, float(request.get("drain", grace)))
        inst.state = "stopping"
        if inst.watcher is not None:
            inst.watcher.cancel()
        proc = inst.process
        if proc is not None:
            await _terminate_group(proc, grace)
        inst.state = "stopped"
        del self.instances[iid]
        self.save()
        return {"id": iid, "exit": proc.returncode if proc else None}

    def status(self) -> dict[str, Any]:
        routed = self.router.upstreams() if self.router else []
        weights = {u.id: u.weight for u in routed}
        instances = []
        for inst in self.instances.values():
            row = inst.public()
            row["weight"] = weights.get(inst.id, 0.0)
            row["routed"] = inst.id in weights
            instances.append(row)
        return {
            "pid": os.getpid(),
            "router": {"host": self.router.host, "port": self.router.port} if self.router else None,
            "instances": instances,
            "meta": self.meta,
        }

    def window(self, ids: list[str], seconds: float) -> dict[str, Any]:
        windows = self.router.window(ids, seconds) if self.router else []
        return {
            "windows": [
                {"requests": w.requests, "errors": w.errors, "p95_ms": w.p95_ms} for w in windows
            ]
        }

    # -- processes ----------------------------------------------------------------------

    async def _spawn(self, inst: Instance) -> None:
        env = dict(os.environ)
        env.update(inst.env)
        env.update(
            {
                "PORT": str(inst.port),
                "SHIPLINE_INSTANCE": inst.id,
                "SHIPLINE_RELEASE": inst.release,
                "SHIPLINE_RELEASE_VERSION": inst.version,
                "SHIPLINE_ENVIRONMENT": self.environment,
            }
        )
        log = open(self.state_dir / "logs" / f"{inst.id}.log", "ab")  # noqa: SIM115
        try:
            inst.process = await asyncio.create_subprocess_shell(
                inst.command,
                cwd=inst.directory,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        finally:
            log.close()
        inst.started_at = time.monotonic()
        inst.state = "running"

    async def _watch(self, inst: Instance) -> None:
        backoff = _BACKOFF_START
        while True:
            assert inst.process is not None
            code = await inst.process.wait()
            if inst.state in ("stopping", "stopped"):
                return
            # What the instance's shell started may outlive it (the shell was killed, its
            # service was not): untracked, it would keep the port and run on. Nothing of
            # the old group survives into the restart.
            _signal_group(inst.process.pid, signal.SIGKILL)
            if time.monotonic() - inst.started_at > _STABLE_AFTER:
                backoff = _BACKOFF_START
            inst.state = "backoff"
            _log(f"instance {inst.id} exited with {code}; restarting in {backoff:.1f}s")
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _BACKOFF_MAX)
            if inst.state != "backoff":
                return
            try:
                await self._spawn(inst)
            except OSError as exc:
                _log(f"instance {inst.id} cannot restart: {exc}")
                continue
            inst.restarts += 1
            self.save()

    def save(self) -> None:
        """The state file: what runs where (no environment values), for operators."""
        data = self.status()
        tmp = self.state_dir / (STATE + ".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
        tmp.replace(self.state_dir / STATE)


async def _terminate_group(proc: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM to the instance's process group; SIGKILL to whatever of it is left after
    `grace` seconds (a shell's children included, not only the process we started)."""
    _signal_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if proc.returncode is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 0.05)
        elif not group_alive(proc.pid):
            return
        else:
            await asyncio.sleep(0.05)
    _signal_group(proc.pid, signal.SIGKILL)
    await proc.wait()


def group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs (zombies, which an init that does not
    reap may leave behind, do not count)."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after ")".
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _log(message: str) -> None:
    sys.stderr.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}\n")
    sys.stderr.flush()


async def serve(state_dir: Path, environment: str) -> None:
    """Run the supervisor until a `shutdown` request or SIGTERM."""
    supervisor = Supervisor(state_dir, environment)

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    request = json.loads(line)
                    response = await supervisor.handle(request)
                except (ValueError, KeyError, TypeError) as exc:
                    response = {"error": f"bad request: {exc}"}
                writer.write(json.dumps(response).encode() + b"\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    sock = socket_path(state_dir)
    with contextlib.suppress(FileNotFoundError):
        sock.unlink()
    server = await asyncio.start_unix_server(client, path=str(sock), limit=1 << 20)
    sock.chmod(0o600)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, supervisor.stopped.set)
    _log(f"supervising environment {environment} (pid {os.getpid()})")
    await supervisor.stopped.wait()
    server.close()
    for inst in list(supervisor.instances.values()):
        await supervisor.stop(inst.id, 5.0, {"drain": 1.0})
    if supervisor.router is not None:
        await supervisor.router.close()
    with contextlib.suppress(FileNotFoundError):
        sock.unlink()


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: python -m shipline.deploy.supervisor STATE_DIR ENVIRONMENT\n")
        return 2
    state_dir, environment = Path(argv[0]), argv[1]
    state_dir.mkdir(parents=True, exist_ok=True)
    lock = open(state_dir / LOCK, "a+")  # noqa: SIM115 - held for the process's lifetime
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        sys.stderr.write(f"a supervisor already runs for {state_dir}\n")
        return 0
    try:
        import uvloop  # the router's per-request cost: about half of asyncio's own loop
    except ImportError:
        asyncio.run(serve(state_dir, environment))
    else:
        uvloop.run(serve(state_dir, environment))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
