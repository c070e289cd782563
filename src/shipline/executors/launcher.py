"""The launcher inside a job's sandbox: starts the job's steps there, one by one.

This file is not imported by Shipline: the runner hands its text to the sandbox's own
`/usr/bin/python3` (the runner's interpreter may live where the sandbox cannot see it, such
as a pyenv under /root). So: the standard library only, Python 3.9 and later, and only its
C modules (`_socket`, `_signal`, `select`, `os`): importing `json`, `socket`, `signal` or
`subprocess` (with `re`, `enum` and `threading` behind them) would cost more than the rest
of the launcher's start-up, on every job.

It runs as the step user (uid 65534 when the runner is root), as the sandbox's second
process, and talks to the runner over one SOCK_SEQPACKET unix socket, whose descriptor is
its only argument. Every message is a list of fields separated by NUL bytes, the first
naming it (NUL cannot occur in an argument, an environment entry or a path):

    runner -> launcher
      start N S       with the step's output descriptor attached (SCM_RIGHTS); then S
                      bytes `cwd, argc, argv..., NAME=value...` (NUL-separated) in
                      messages of at most CHUNK bytes. The environment (secrets) travels
                      only here: never on a command line, never on disk.
      kill N GRACE
    launcher -> runner
      ready
      started N  |  failed N ERRNO MESSAGE FILENAME
      exit N CODE     CODE is 128 + the signal when a signal ended the step
      ended N         after a kill: no process of the step's group runs any more

Each step is its own session and process group (its pid); a kill sends SIGTERM (and
SIGCONT) to the group, then SIGKILL after GRACE seconds. When the runner closes the
socket (or dies), the launcher exits, and with it bwrap's init and the whole sandbox.
"""

from __future__ import annotations

import _signal as signal  # type: ignore[import-not-found]  # no stubs: signal's C part
import _socket
import os
import select
import sys
import time

CHUNK = 32768
# After SIGKILL processes vanish at once unless stuck in uninterruptible I/O.
KILLED_WAIT = 5.0
_INT_SIZE = 4
_FDS = _socket.CMSG_SPACE(4 * _INT_SIZE)
_EXEC_FAILED = 127


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


def _find(program: bytes, env: dict[bytes, bytes]) -> bytes:
    """The file to execute for `program`, searched on the step's own PATH."""
    if b"/" in program:
        return program
    # os.path, not pathlib (which would import re; see the module docstring).
    for folder in env.get(b"PATH", os.defpath.encode()).split(b":"):
        candidate = os.path.join(folder or b".", program)  # noqa: PTH118
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):  # noqa: PTH113
            return candidate
    raise FileNotFoundError(2, os.strerror(2), os.fsdecode(program))


def _spawn(argv: list[bytes], env: dict[bytes, bytes], cwd: bytes, out: int) -> int:
    """Start `argv` as the leader of a new session, output to `out`; its pid. Raises the
    OSError that kept it from starting (exec's, reported by the child over a pipe)."""
    path = _find(argv[0], env)
    report_r, report_w = os.pipe()  # close-on-exec: its end of file says exec worked
    pid = os.fork()
    if pid == 0:  # the child: only async-signal-safe work until exec
        try:
            os.close(report_r)
            os.setsid()
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(out, 1)
            os.dup2(out, 2)
            # Python ignores SIGPIPE and SIGXFSZ for itself; a step's programs expect
            # the default (as subprocess restores it).
            for signo in (signal.SIGPIPE, signal.SIGXFSZ):
                signal.signal(signo, signal.SIG_DFL)
            try:
                os.chdir(cwd)
            except OSError as exc:
                exc.filename = os.fsdecode(cwd)
                raise
            os.execve(path, argv, env)
        except OSError as exc:
            filename = os.fsdecode(exc.filename if exc.filename is not None else argv[0])
            message = f"{exc.errno or 0}\0{exc.strerror or exc}\0{filename}"
            os.write(report_w, message.encode(errors="surrogateescape"))
        finally:
            os._exit(_EXEC_FAILED)
    os.close(report_w)
    report = b""
    while chunk := os.read(report_r, 4096):
        report += chunk
    os.close(report_r)
    if report:
        os.waitpid(pid, 0)
        code, message, filename = report.decode(errors="surrogateescape").split("\0", 2)
        raise OSError(int(code), message, filename)
    return pid


class _Pending:
    """A start whose request is still arriving."""

    def __init__(self, step_id: int, size: int, out: int) -> None:
        self.step_id = step_id
        self.size = size
        self.out = out
        self.body = bytearray()


class Launcher:
    """Serves the runner's messages until it closes the socket."""

    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock
        self.running: set[int] = set()
        self.groups: dict[int, int] = {}
        # Kills in progress: step id -> [deadline, SIGKILL sent].
        self.kills: dict[int, list[float]] = {}
        self.pending: _Pending | None = None

    def send(self, *fields: object) -> None:
        self.sock.send("\0".join(str(f) for f in fields).encode(errors="surrogateescape"))

    def serve(self) -> None:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda _signo, _frame: None)
        poll = select.poll()
        poll.register(self.sock.fileno(), select.POLLIN)
        poll.register(wake_r, select.POLLIN)
        self.send("ready")
        while True:
            for fd, _ in poll.poll(10 if self.kills else None):
                if fd == wake_r:
                    try:  # noqa: SIM105 (contextlib would import more modules)
                        os.read(wake_r, 4096)
                    except BlockingIOError:
                        pass
                elif not self.receive():
                    return
            self.reap()
            self.progress()

    def receive(self) -> bool:
        data, ancillary, _flags, _addr = self.sock.recvmsg(CHUNK + 4096, _FDS)
        if not data:
            return False
        fds: list[int] = []
        for level, kind, payload in ancillary:
            if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                usable = len(payload) - len(payload) % _INT_SIZE
                for at in range(0, usable, _INT_SIZE):
                    fd = int.from_bytes(payload[at : at + _INT_SIZE], sys.byteorder)
                    os.set_inheritable(fd, False)
                    fds.append(fd)
        if self.pending is not None:
            for fd in fds:  # only a start's first message carries one
                os.close(fd)
            pending = self.pending
            pending.body.extend(data)
            if len(pending.body) >= pending.size:
                self.pending = None
                self.start(pending.step_id, pending.out, bytes(pending.body))
            return True
        op, *fields = data.split(b"\0")
        if op == b"start":
            for extra in fds[1:]:
                os.close(extra)
            if not fds:
                self.send("failed", int(fields[0]), 0, "no output descriptor", "")
                return True
            self.pending = _Pending(int(fields[0]), int(fields[1]), fds[0])
        elif op == b"kill":
            self.kill(int(fields[0]), float(fields[1]))
        return True

    def start(self, step_id: int, out: int, body: bytes) -> None:
        cwd, argc, *rest = body.split(b"\0")
        count = int(argc)
        argv, entries = rest[:count], rest[count:]
        env = dict(entry.split(b"=", 1) for entry in entries if b"=" in entry)
        try:
            pid = _spawn(argv, env, cwd, out)
        except OSError as exc:
            filename = os.fsdecode(exc.filename if exc.filename is not None else argv[0])
            self.send("failed", step_id, exc.errno or 0, exc.strerror or exc, filename)
        else:
            self.running.add(pid)
            self.groups[step_id] = pid
            self.send("started", step_id)
        finally:
            os.close(out)

    def reap(self) -> None:
        for step_id, pid in list(self.groups.items()):
            if pid not in self.running:
                continue
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 0
            if done:
                self.running.discard(pid)
                code = os.waitstatus_to_exitcode(status)
                self.send("exit", step_id, 128 - code if code < 0 else code)

    def kill(self, step_id: int, grace: float) -> None:
        pgid = self.groups.get(step_id)
        if step_id in self.kills:
            return
        if pgid is None or not _signal(pgid, signal.SIGTERM):
            self.send("ended", step_id)
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
                self.send("ended", step_id)


def main() -> int:
    fd = int(sys.argv[1])
    os.set_inheritable(fd, False)
    sock = _socket.socket(fileno=fd)
    sock.setblocking(True)
    Launcher(sock).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
