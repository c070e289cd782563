"""The launcher inside a job's sandbox: starts the job's steps there, one by one.

This file is not imported by Shipline: the runner hands its text to the sandbox's own
`/usr/bin/python3` (the runner's interpreter may live where the sandbox cannot see it, such
as a pyenv under /root). So: the standard library only, Python 3.8 and later.

It runs as the step user (uid 65534 when the runner is root), as the sandbox's second
process, and talks to the runner over one SOCK_SEQPACKET unix socket, whose descriptor is
its only argument. Every message is one JSON object with an "op":

    runner -> launcher
      {"op": "start", "id": N, "size": S}, with the step's output descriptor attached
          (SCM_RIGHTS), then S bytes of JSON {"argv": [...], "env": {...}, "cwd": "..."}
          in messages of at most CHUNK bytes. The environment (secrets) travels only here:
          never on a command line, never on disk.
      {"op": "kill", "id": N, "grace": seconds}
    launcher -> runner
      {"op": "ready"}
      {"op": "started", "id": N}  or  {"op": "failed", "id": N, "error": ..., "filename": ...}
      {"op": "exit", "id": N, "code": C}         C is 128 + signal when a signal ended it
      {"op": "ended", "id": N}   after a kill: no process of the step's group runs any more

Each step is its own session and process group (its pid); a kill sends SIGTERM (and
SIGCONT) to the group, then SIGKILL after `grace` seconds. When the runner closes the
socket (or dies), the launcher exits, and with it, bwrap's init and the whole sandbox.
"""

from __future__ import annotations

import array
import contextlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time

CHUNK = 32768
# After SIGKILL processes vanish at once unless stuck in uninterruptible I/O.
KILLED_WAIT = 5.0
_FDS = socket.CMSG_SPACE(4 * array.array("i").itemsize)


def _no_dumping() -> None:
    """Make this process non-dumpable: the steps run as the same uid, and must not read
    the environments of later steps from this process's memory (ptrace, /proc/N/mem)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0
    except (ImportError, OSError, AttributeError):
        pass


def _group_running(pgid: int) -> bool:
    """Whether a process of group `pgid` still runs (zombies do not count)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split(b" ", 3)
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


def _signal(pgid: int, signo: int) -> bool:
    try:
        os.killpg(pgid, signo)
    except ProcessLookupError:
        return False
    return True


class _Pending:
    """A start whose request is still arriving."""

    def __init__(self, step_id: int, size: int, out: int) -> None:
        self.step_id = step_id
        self.size = size
        self.out = out
        self.body = bytearray()


class Launcher:
    """Serves the runner's messages until it closes the socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.running: dict[int, subprocess.Popen[bytes]] = {}
        self.groups: dict[int, int] = {}
        # Kills in progress: step id -> [deadline, SIGKILL sent].
        self.kills: dict[int, list[float]] = {}
        self.pending: _Pending | None = None

    def send(self, **message: object) -> None:
        self.sock.send(json.dumps(message).encode())

    def serve(self) -> None:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda _signo, _frame: None)
        selector = selectors.DefaultSelector()
        selector.register(self.sock, selectors.EVENT_READ)
        selector.register(wake_r, selectors.EVENT_READ)
        self.send(op="ready")
        while True:
            for key, _ in selector.select(0.01 if self.kills else None):
                if key.fileobj is self.sock:
                    if not self.receive():
                        return
                else:
                    with contextlib.suppress(BlockingIOError):
                        os.read(wake_r, 4096)
            self.reap()
            self.progress()

    def receive(self) -> bool:
        data, ancillary, _flags, _addr = self.sock.recvmsg(CHUNK + 4096, _FDS)
        if not data:
            return False
        fds: list[int] = []
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                received = array.array("i")
                received.frombytes(payload[: len(payload) - len(payload) % received.itemsize])
                fds.extend(received)
        if self.pending is not None:
            for fd in fds:  # only a start's first message carries one
                os.close(fd)
            pending = self.pending
            pending.body.extend(data)
            if len(pending.body) >= pending.size:
                self.pending = None
                self.start(pending.step_id, pending.out, bytes(pending.body))
            return True
        message = json.loads(data)
        if message["op"] == "start":
            if not fds:
                self.send(op="failed", id=message["id"], error="no output descriptor")
                return True
            for extra in fds[1:]:
                os.close(extra)
            self.pending = _Pending(int(message["id"]), int(message["size"]), fds[0])
        elif message["op"] == "kill":
            self.kill(int(message["id"]), float(message["grace"]))
        return True

    def start(self, step_id: int, out: int, body: bytes) -> None:
        request = json.loads(body)
        try:
            proc = subprocess.Popen(
                request["argv"],
                env=request["env"],
                cwd=request["cwd"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        except OSError as exc:
            filename = os.fsdecode(exc.filename) if exc.filename is not None else None
            error = exc.strerror or type(exc).__name__
            self.send(op="failed", id=step_id, errno=exc.errno, error=error, filename=filename)
        else:
            self.running[step_id] = proc
            self.groups[step_id] = proc.pid
            self.send(op="started", id=step_id)
        finally:
            os.close(out)

    def reap(self) -> None:
        for step_id, proc in list(self.running.items()):
            code = proc.poll()
            if code is not None:
                del self.running[step_id]
                self.send(op="exit", id=step_id, code=128 - code if code < 0 else code)

    def kill(self, step_id: int, grace: float) -> None:
        pgid = self.groups.get(step_id)
        if step_id in self.kills:
            return
        if pgid is None or not _signal(pgid, signal.SIGTERM):
            self.send(op="ended", id=step_id)
            return
        # A stopped process would only see SIGTERM once continued.
        _signal(pgid, signal.SIGCONT)
        self.kills[step_id] = [time.monotonic() + grace, 0.0]

    def progress(self) -> None:
        now = time.monotonic()
        for step_id, state in list(self.kills.items()):
            pgid = self.groups[step_id]
            deadline, killed = state
            if not _group_running(pgid):
                done = True
            elif now < deadline:
                done = False
            elif not killed:
                _signal(pgid, signal.SIGKILL)
                state[:] = [now + KILLED_WAIT, 1.0]
                done = False
            else:
                done = True  # stuck in uninterruptible I/O: do not wait forever
            if done:
                del self.kills[step_id]
                self.send(op="ended", id=step_id)


def main() -> int:
    _no_dumping()
    sock = socket.socket(fileno=int(sys.argv[1]))
    sock.setblocking(True)
    Launcher(sock).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
