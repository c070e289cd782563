"""One host of the `ssh` target: a verified SSH connection and the commands a rollout
runs there (see `shipline.deploy.ssh` for the rollout and the layout on the host).

The host key is always verified: against the environment file's `host_key`, its
`fingerprint`, or its `known_hosts` lines; asyncssh never reads `~/.ssh` (no config, agent
or known_hosts file of the server's user). Commands are built with `shlex.quote`; secret
values never appear in one: the secrets file travels on the channel's stdin.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import posixpath
import re
import secrets as random
import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import asyncssh

from shipline.deploy import health
from shipline.deploy.types import DeployFailure, Release
from shipline.spec.environment_models import (
    CommandCheck,
    EnvironmentSpec,
    HookScript,
    SshHost,
    SshTarget,
)

Progress = Callable[[str], None]

SECRETS_FILE = "shared/secrets.env"
MARKER = ".shipline-release"  # in a release directory once it is completely unpacked
RELEASE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
_TAIL = 20
_KILL_AFTER = 5  # seconds between `timeout`'s TERM and KILL on the host


class _FingerprintClient(asyncssh.SSHClient):
    """Accepts the host key whose SHA-256 fingerprint is the environment file's."""

    def __init__(self, fingerprint: str) -> None:
        self._fingerprint = fingerprint

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        seen = key.get_fingerprint("sha256")
        return hmac.compare_digest(seen.rstrip("="), self._fingerprint.rstrip("="))


def _trust(host: SshHost, target: SshTarget) -> dict[str, Any]:
    """asyncssh's options that verify the host key (never `known_hosts=None`)."""
    if host.host_key is not None:
        try:
            key = asyncssh.import_public_key(host.host_key)
        except (asyncssh.KeyImportError, ValueError):
            raise DeployFailure(
                "target", f"{host.name}: host_key is not an OpenSSH public key"
            ) from None
        return {"known_hosts": ([key], [], [])}
    if host.fingerprint is not None:
        fingerprint = host.fingerprint
        return {
            "known_hosts": ([], [], []),  # no key trusted outright: the callback decides
            "client_factory": lambda: _FingerprintClient(fingerprint),
            "server_host_key_algs": "default",
        }
    try:
        return {"known_hosts": asyncssh.import_known_hosts(target.known_hosts or "")}
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise DeployFailure("target", f"target.ssh.known_hosts cannot be read: {exc}") from None


async def connect(host: SshHost, target: SshTarget, key: asyncssh.SSHKey) -> HostSession:
    """A verified, authenticated connection to one host; `DeployFailure("target")` if not."""
    where = f"{host.name}"
    try:
        conn = await asyncio.wait_for(
            asyncssh.connect(
                host.host,
                host.port,
                username=target.user,
                client_keys=[key],
                agent_path=None,
                config=[],
                password=None,
                preferred_auth="publickey",
                connect_timeout=target.connect_timeout,
                login_timeout=target.connect_timeout,
                **_trust(host, target),
            ),
            target.connect_timeout + 5,
        )
    except asyncssh.HostKeyNotVerifiable:
        raise DeployFailure(
            "target",
            f"{where}: the host key does not match the environment file's host_key, "
            "fingerprint or known_hosts; refusing to connect",
        ) from None
    except asyncssh.PermissionDenied:
        raise DeployFailure(
            "target",
            f"{where}: {target.user} was refused with the key of {target.key_secret} "
            "(is its public key in the user's authorized_keys?)",
        ) from None
    except (OSError, TimeoutError, asyncssh.Error) as exc:
        raise DeployFailure("target", f"{where}: cannot connect over SSH: {exc}") from None
    return HostSession(host, target, conn)


class HostSession:
    """The commands a rollout runs on one host, over one SSH connection."""

    def __init__(
        self, host: SshHost, target: SshTarget, conn: asyncssh.SSHClientConnection
    ) -> None:
        self.host = host
        self.target = target
        self.conn = conn
        self.base = host.path or target.path
        self.service_port = host.service_port or target.service_port
        self.masked: tuple[str, ...] = ()
        self._forward: asyncssh.SSHListener | None = None

    @property
    def name(self) -> str:
        return self.host.name

    async def close(self) -> None:
        if self._forward is not None:
            self._forward.close()
        self.conn.close()
        with contextlib.suppress(Exception):
            await self.conn.wait_closed()

    async def run(
        self, command: str, *, timeout: float, stdin: bytes | None = None
    ) -> tuple[int, str]:
        """(exit status, output with the secrets masked); `DeployFailure` when the
        connection breaks or the command outlives `timeout`."""
        try:
            result = await asyncio.wait_for(
                self.conn.run(command, input=stdin, stderr=asyncssh.STDOUT, encoding=None),
                timeout,
            )
        except TimeoutError:
            raise DeployFailure(
                "target", f"{self.name}: a command did not finish within {timeout:g}s"
            ) from None
        except (OSError, asyncssh.Error) as exc:
            raise DeployFailure(
                "target", f"{self.name}: the SSH connection failed: {exc}"
            ) from None
        output = result.stdout if isinstance(result.stdout, bytes) else b""
        status = result.exit_status if result.exit_status is not None else 255
        return status, self.mask(output.decode(errors="replace"))

    def mask(self, text: str) -> str:
        for value in self.masked:
            text = text.replace(value, "***")
        return text

    async def check(self, command: str, what: str, timeout: float = 60.0) -> str:
        status, output = await self.run(command, timeout=timeout)
        if status != 0:
            tail = output.strip().splitlines()[-1:] if output.strip() else []
            detail = f": {tail[0][:300]}" if tail else ""
            raise DeployFailure("target", f"{self.name}: {what} failed (exit {status}){detail}")
        return output

    # -- layout -------------------------------------------------------------------------

    def release_dir(self, release_id: str) -> str:
        return f"{self.base}/releases/{release_id}"

    async def inspect(self, release_id: str) -> tuple[str | None, bool]:
        """(the release id `current` points at or None, whether `releases/<id>` is
        complete), in one round trip."""
        q = shlex.quote
        marker = q(f"{self.release_dir(release_id)}/{MARKER}")
        out = await self.check(
            f"readlink {q(self.base + '/current')} || true; "
            f"if [ -f {marker} ]; then echo present; else echo absent; fi",
            "reading the current link",
        )
        lines = out.strip().splitlines()
        present = bool(lines) and lines[-1] == "present"
        link = lines[0].strip() if len(lines) > 1 else ""
        name = posixpath.basename(link.rstrip("/")) if link else ""
        return (name if RELEASE_ID.match(name) else None), present

    async def read(self, path: str) -> str | None:
        """A small text file of the host (None when it is missing or unreadable)."""
        status, output = await self.run(f"cat {shlex.quote(path)} 2>/dev/null", timeout=30)
        return output if status == 0 else None

    async def upload(self, release: Release, bundle: bytes) -> None:
        """Unpack the bundle (stdin) into `releases/<id>` via a partial directory."""
        q = shlex.quote
        releases = f"{self.base}/releases"
        partial = f"{releases}/.{release.id}.partial"
        final = self.release_dir(release.id)
        script = (
            "set -e; umask 022; "
            f"mkdir -p {q(releases)} {q(self.base + '/shared')}; "
            f"rm -rf {q(partial)} {q(final)}; mkdir {q(partial)}; "
            f"tar -xzf - -C {q(partial)} --no-same-owner; "
            f"printf '%s\\n' {q(release.id)} > {q(partial + '/' + MARKER)}; "
            f"mv -T {q(partial)} {q(final)}"
        )
        status, output = await self.run(script, timeout=600, stdin=bundle)
        if status != 0:
            raise DeployFailure(
                "target", f"{self.name}: unpacking the release failed: {output.strip()[-300:]}"
            )

    async def write_secrets(self, values: Mapping[str, str]) -> None:
        """`shared/secrets.env` (0600): sent on stdin, written through a temporary file."""
        q = shlex.quote
        path = f"{self.base}/{SECRETS_FILE}"
        tmp = f"{path}.{random.token_hex(4)}.tmp"
        # Never empty: asyncssh sends no end-of-file after an empty input.
        text = "# the environment's secrets, written by Shipline\n" + "".join(
            f"{name}={_sh_quote(value)}\n" for name, value in sorted(values.items())
        )
        status, output = await self.run(
            f"set -e; umask 077; mkdir -p {q(posixpath.dirname(path))}; cat > {q(tmp)}; "
            f"chmod 600 {q(tmp)}; mv -f {q(tmp)} {q(path)}",
            timeout=60,
            stdin=text.encode(),
        )
        if status != 0:
            raise DeployFailure(
                "target", f"{self.name}: writing the secrets file failed: {output.strip()[-300:]}"
            )

    async def prune(self, keep: list[str]) -> list[str]:
        """Remove the release directories (those with Shipline's marker) not in `keep`;
        returns their names."""
        q = shlex.quote
        kept = " ".join(keep)
        script = (
            f"cd {q(self.base + '/releases')} || exit 0; "
            "for d in *; do "
            f'case " {kept} " in *" $d "*) continue ;; esac; '
            f'if [ -f "$d/{MARKER}" ]; then rm -rf -- "$d" && echo "$d"; fi; '
            "done"
        )
        output = await self.check(script, "removing old releases", timeout=300)
        return [line for line in output.split() if RELEASE_ID.match(line)]

    async def switch(self, release_id: str) -> None:
        """Point `current` at `releases/<id>` atomically (a rename over the old link)."""
        q = shlex.quote
        tmp = f".current.{random.token_hex(6)}"
        await self.check(
            f"cd {q(self.base)} && ln -sfn {q('releases/' + release_id)} {q(tmp)} && "
            f"mv -T {q(tmp)} current",
            f"switching current to {release_id}",
        )

    # -- commands of the release ----------------------------------------------------------

    def _env(self, release: Release, extra: Mapping[str, str]) -> str:
        values = {
            **dict(self.target.env),
            "SHIPLINE_BASE": self.base,
            "SHIPLINE_HOST": self.name,
            "SHIPLINE_RELEASE": release.id,
            "SHIPLINE_RELEASE_VERSION": release.version,
            "SHIPLINE_SECRETS_FILE": f"{self.base}/{SECRETS_FILE}",
            "PORT": str(self.service_port),
            **extra,
        }
        return " ".join(shlex.quote(f"{k}={v}") for k, v in values.items())

    async def restart(self, release: Release, environment: str) -> None:
        """The target's `restart` command in `current`, with the secrets file sourced."""
        q = shlex.quote
        secrets_file = f"{self.base}/{SECRETS_FILE}"
        wrapper = (
            f"if [ -f {q(secrets_file)} ]; then set -a; . {q(secrets_file)}; set +a; fi\n"
            + self.target.restart
        )
        timeout = self.target.restart_timeout
        command = (
            f"cd {q(self.base + '/current')} && exec env "
            f"{self._env(release, {'SHIPLINE_ENVIRONMENT': environment})} "
            f"timeout -k {_KILL_AFTER} {timeout:g} sh -c {q(wrapper)} < /dev/null"
        )
        status, output = await self.run(command, timeout=timeout + _KILL_AFTER + 10)
        if status != 0:
            why = "timed out" if status in (124, 137) else f"exited with {status}"
            tail = output.strip().splitlines()[-1:] if output.strip() else []
            raise DeployFailure(
                "health",
                f"{self.name}: the restart command {why}" + (f": {tail[0][:300]}" if tail else ""),
            )

    async def hook(
        self,
        script: HookScript,
        event: str,
        release: Release,
        env: Mapping[str, str],
        progress: Progress,
    ) -> None:
        """One appspec script, in `releases/<id>`, as `runas`, killed after `timeout`."""
        location = posixpath.normpath(script.location)
        if location.startswith(("/", "..")):
            raise DeployFailure(
                "hooks", f"{event}: script {script.location} is outside the release directory"
            )
        q = shlex.quote
        switch_user = ""
        if script.runas is not None and script.runas != self.target.user:
            tool = "runuser -u" if self.target.user == "root" else "sudo -n -u"
            switch_user = f"{tool} {q(script.runas)} -- "
        command = (
            f"cd {q(self.release_dir(release.id))} || exit 201; "
            f"if [ ! -f {q(location)} ]; then exit 202; fi; "
            f"if [ ! -x {q(location)} ]; then exit 203; fi; "
            f"exec timeout -k {_KILL_AFTER} {script.timeout:g} {switch_user}"
            f"env {self._env(release, env)} ./{q(location)} < /dev/null"
        )
        progress(f"{self.name} {event}: running {script.location} (timeout {script.timeout:g}s)")
        try:
            status, output = await self.run(command, timeout=script.timeout + _KILL_AFTER + 10)
        except DeployFailure as exc:
            raise DeployFailure("hooks", f"{event}: {exc.message}") from None
        for line in output.splitlines()[-_TAIL:]:
            progress(f"{self.name} {event}: {line}")
        problems = {
            201: f"the release directory {self.release_dir(release.id)} is missing",
            202: f"script does not exist at specified location: {script.location}",
            203: f"script at {script.location} is not executable",
            124: f"script {script.location} timed out after {script.timeout:g}s",
            137: f"script {script.location} timed out after {script.timeout:g}s",
        }
        if status != 0:
            why = problems.get(status, f"script {script.location} exited with {status}")
            raise DeployFailure("hooks", f"{self.name} {event}: {why}")

    # -- health ---------------------------------------------------------------------------

    async def probe(self, environment: EnvironmentSpec, directory: Path) -> str | None:
        """One health check of the service on this host: None when healthy."""
        spec = environment.health
        if isinstance(spec.check, CommandCheck):
            q = shlex.quote
            command = (
                f"cd {q(self.base + '/current')} && exec env PORT={self.service_port} "
                f"timeout -k 1 {spec.timeout:g} sh -c {q(spec.check.run)} < /dev/null"
            )
            try:
                status, output = await self.run(command, timeout=spec.timeout + 10)
            except DeployFailure as exc:
                return exc.message
            if status == 0:
                return None
            tail = output.strip().splitlines()[-1:] if output.strip() else []
            return f"command {spec.check.run!r} exited with {status}" + (
                f": {tail[0][:200]}" if tail else ""
            )
        if self._forward is None:
            try:
                self._forward = await self.conn.forward_local_port(
                    "127.0.0.1", 0, "127.0.0.1", self.service_port
                )
            except (OSError, asyncssh.Error) as exc:
                return f"cannot forward to port {self.service_port} on the host: {exc}"
        problem = await health.check_once(spec, self._forward.get_port(), directory)
        return (
            problem.replace(f"port {self._forward.get_port()}", "the service port")
            if (problem)
            else None
        )


def _sh_quote(value: str) -> str:
    """A value for a POSIX shell's `NAME=...` line: single quotes keep it literal."""
    return "'" + value.replace("'", "'\\''") + "'"
