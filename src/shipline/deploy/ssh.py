"""The `ssh` target: releases on plain hosts reached over SSH (asyncssh), as Kamal or
Capistrano lay them out.

On each host, under the target's `path` (the base directory):

    releases/<id>/        one directory per release (the verified bundle, unpacked)
    current -> releases/<id>
    shared/secrets.env    the environment's secrets for the service (mode 0600)

A rollout connects to every host first (the private key comes from the environment secret
`key_secret` and stays in memory; the host key must match the environment file's
`host_key`, `fingerprint` or `known_hosts`: an unknown key is refused, never accepted),
uploads and unpacks the release where it is missing and writes the secrets file, all
before anything changes. Then, per batch of hosts (`all-at-once`: every host; `rolling`:
`batch_size`/`batch_percent` hosts at a time, `min_healthy` checked after each batch), on
each host of the batch: ApplicationStop (the previous release's scripts), BeforeInstall,
the atomic switch of `current` (`ln -sfn` to a temporary name, `mv -T` over the link),
AfterInstall, the `restart` command, ApplicationStart, the health check (through the SSH
connection to the service's port on the host's loopback), ValidateService. When a batch
fails and the rollback policy covers the cause, every host already switched gets its
previous `current` back and is restarted and checked again.

Secrets reach the service only through the secrets file, sent over the SSH channel's stdin
(never on a command line) and sourced by the shell that runs `restart`; hooks do not get
them. Remote output is masked with the secrets' values before it reaches a progress line.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import io
import json
import posixpath
import re
import secrets as random
import shlex
import tarfile
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh

from shipline.deploy import health
from shipline.deploy.appspec import AppSpec
from shipline.deploy.hooks import load_hooks
from shipline.deploy.types import DeployFailure, Outcome, Release
from shipline.spec.environment_models import (
    CommandCheck,
    EnvironmentSpec,
    HookScript,
    SshHost,
    SshTarget,
)

Progress = Callable[[str], None]

STATE = "ssh-state.json"
SECRETS_FILE = "shared/secrets.env"
MARKER = ".shipline-release"
_TAIL = 20
_KILL_AFTER = 5  # seconds between `timeout`'s TERM and KILL on the host
_RELEASE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")


@dataclass(frozen=True, slots=True)
class SshOutcome:
    """How an ssh rollout ended (the controller turns it into a `RolloutResult`)."""

    outcome: str
    reason: str | None = None
    cause: str | None = None
    rolled_back_to: str | None = None
    serving: str | None = None


# -- the environment's record: which release is served, which were healthy --------------


def load_state(state_dir: Path) -> tuple[Release | None, tuple[Release, ...]]:
    """(serving, history) of an ssh environment, from its state file (no secrets in it)."""
    try:
        data = json.loads((state_dir / STATE).read_text())
    except (OSError, ValueError):
        return None, ()
    return _release(data.get("serving")), tuple(
        r for r in map(_release, data.get("history", [])) if r is not None
    )


def _save_state(state_dir: Path, serving: Release, history: tuple[Release, ...]) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    entries = [*[_json(r) for r in history if r.id != serving.id][-49:], _json(serving)]
    tmp = state_dir / (STATE + ".tmp")
    tmp.write_text(json.dumps({"serving": _json(serving), "history": entries}, indent=2))
    tmp.replace(state_dir / STATE)


def _json(release: Release) -> dict[str, str]:
    return {"id": release.id, "version": release.version, "directory": str(release.directory)}


def _release(data: object) -> Release | None:
    if not isinstance(data, dict):
        return None
    return Release(str(data["id"]), str(data["version"]), Path(str(data["directory"])))


# -- one host -------------------------------------------------------------------------


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
        return (name if _RELEASE_ID.match(name) else None), present

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
        return [line for line in output.split() if _RELEASE_ID.match(line)]

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


async def wait_healthy(
    probe: Callable[[], Awaitable[str | None]],
    environment: EnvironmentSpec,
    name: str,
    progress: Progress,
) -> None:
    """Until `healthy_threshold` probes in a row pass; `DeployFailure("health")` after
    `start_timeout`."""
    spec = environment.health
    deadline = time.monotonic() + spec.start_timeout
    passes = 0
    last = "not checked yet"
    while True:
        problem = await probe()
        if problem is None:
            passes += 1
            if passes >= spec.healthy_threshold:
                progress(f"{name} is healthy")
                return
        else:
            passes, last = 0, problem
        if time.monotonic() >= deadline:
            raise DeployFailure(
                "health", f"{name} not healthy within {spec.start_timeout:g}s: {last}"
            )
        await asyncio.sleep(spec.interval)


# -- the rollout ----------------------------------------------------------------------


@dataclass
class SshRollout:
    """One release onto the hosts of an ssh target (see the module's docstring)."""

    state_dir: Path
    environment: EnvironmentSpec
    target: SshTarget
    release: Release
    progress: Progress
    deployment_id: str
    secrets: dict[str, str] = field(default_factory=dict, repr=False)
    sessions: list[HostSession] = field(default_factory=list)
    previous: dict[str, str | None] = field(default_factory=dict)  # host -> release id
    switched: list[HostSession] = field(default_factory=list)
    stopped: list[HostSession] = field(default_factory=list)  # ApplicationStop ran

    async def run(self) -> SshOutcome:
        serving, history = load_state(self.state_dir)
        try:
            appspec, old_appspec = self._hooks(serving)
            await self._prepare()
        except DeployFailure as exc:
            self.progress(f"failed before anything changed: {exc.message}")
            await self._close()
            return SshOutcome(
                Outcome.FAILED,
                cause=exc.cause,
                reason=exc.message,
                serving=serving.id if serving else None,
            )
        try:
            try:
                await self._strategy(appspec, old_appspec, serving)
            except DeployFailure as exc:
                self.progress(f"{exc.cause} failed: {exc.message}")
                return await self._recover(exc, serving)
            _save_state(self.state_dir, self.release, history)
            self.progress(f"{self.release.version} is live on {len(self.sessions)} host(s)")
            await self._prune(history)
            return SshOutcome(Outcome.SUCCEEDED, serving=self.release.id)
        finally:
            await self._close()

    def _hooks(self, serving: Release | None) -> tuple[AppSpec | None, AppSpec | None]:
        if not _RELEASE_ID.match(self.release.id):
            raise DeployFailure(
                "target", f"release id {self.release.id!r} cannot name a directory on the hosts"
            )
        appspec = load_hooks(self.environment, self.release)
        old = None
        if serving is not None and serving.directory.is_dir():
            try:
                old = load_hooks(self.environment, serving)
            except DeployFailure as exc:
                self.progress(f"the previous release's hooks are unusable: {exc.message}")
        return appspec, old

    async def _prepare(self) -> None:
        """Connect to every host, upload where missing, write the secrets: nothing changes
        on a host yet."""
        text = self.secrets.get(self.target.key_secret)
        if text is None:
            raise DeployFailure(
                "target",
                f"the environment secret {self.target.key_secret} (target.ssh.key_secret) is "
                f"not set: shipline secrets set PROJECT {self.target.key_secret} --env "
                f"{self.environment.name} < KEY_FILE",
            )
        try:
            key = asyncssh.import_private_key(text)
        except (asyncssh.KeyImportError, ValueError):
            raise DeployFailure(
                "target",
                f"the environment secret {self.target.key_secret} is not an unencrypted "
                "OpenSSH or PEM private key",
            ) from None
        for_service = {k: v for k, v in self.secrets.items() if k != self.target.key_secret}
        # Whole values, and each line of a multi-line one (a key), longest first.
        forms = {v for v in self.secrets.values() if len(v) >= 4}
        forms |= {
            line.strip()
            for v in self.secrets.values()
            for line in v.splitlines()
            if len(line.strip()) >= 8
        }
        masked = tuple(sorted(forms, key=len, reverse=True))
        results = await asyncio.gather(
            *(connect(h, self.target, key) for h in self.target.hosts), return_exceptions=True
        )
        for result in results:
            if isinstance(result, HostSession):
                result.masked = masked
                self.sessions.append(result)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        self.progress(
            f"connected to {len(self.sessions)} host(s) as {self.target.user}: "
            + ", ".join(s.name for s in self.sessions)
        )
        found = await asyncio.gather(*(s.inspect(self.release.id) for s in self.sessions))
        bundle = b""
        if not all(present for _, present in found):
            bundle = await asyncio.to_thread(_bundle, self.release.directory)

        async def prepare(session: HostSession, current: str | None, present: bool) -> None:
            self.previous[session.name] = current
            if present:
                self.progress(f"{session.name}: {self.release.id} is unpacked already")
            else:
                await session.upload(self.release, bundle)
                self.progress(
                    f"{session.name}: uploaded {len(bundle)} bytes to "
                    f"{session.release_dir(self.release.id)}"
                )
            await session.write_secrets(for_service)

        prepared = await asyncio.gather(
            *(prepare(s, *f) for s, f in zip(self.sessions, found, strict=True)),
            return_exceptions=True,
        )
        for problem in prepared:
            if isinstance(problem, BaseException):
                raise problem
        if for_service:
            self.progress(
                f"wrote {len(for_service)} secret(s) for the service to {SECRETS_FILE} (0600)"
            )

    async def _strategy(
        self, appspec: AppSpec | None, old_appspec: AppSpec | None, serving: Release | None
    ) -> None:
        strategy = self.environment.strategy
        total = len(self.sessions)
        if strategy.kind == "rolling":
            if strategy.batch_percent is not None:
                size = max(1, total * strategy.batch_percent // 100)
            else:
                size = max(1, strategy.batch_size or 1)
        elif strategy.kind == "all-at-once":
            size = total
        else:
            raise DeployFailure(
                "target",
                f'the "{strategy.kind}" strategy is not available for an ssh target '
                '(use "all-at-once" or "rolling")',
            )
        min_healthy = strategy.min_healthy if strategy.min_healthy is not None else total - size
        self.progress(
            f"deploying {self.release.version} ({self.release.id}) to {total} host(s) with "
            f"{strategy.kind}" + (f", replacing {serving.version}" if serving else "")
        )
        for number, first in enumerate(range(0, total, size), start=1):
            batch = self.sessions[first : first + size]
            self.progress(f"batch {number}: " + ", ".join(s.name for s in batch))
            results = await asyncio.gather(
                *(self._host(s, appspec, old_appspec, serving) for s in batch),
                return_exceptions=True,
            )
            for result in results:
                if isinstance(result, BaseException):
                    raise result
            if strategy.kind == "rolling":
                await self._min_healthy(min_healthy)

    async def _host(
        self,
        session: HostSession,
        appspec: AppSpec | None,
        old_appspec: AppSpec | None,
        serving: Release | None,
    ) -> None:
        before = self.previous.get(session.name)
        if old_appspec is not None and serving is not None and before == serving.id:
            self.stopped.append(session)
            await self._event(session, old_appspec, "ApplicationStop", serving)
        await self._event(session, appspec, "BeforeInstall", self.release)
        await session.switch(self.release.id)
        self.switched.append(session)
        self.progress(f"{session.name}: current -> releases/{self.release.id}")
        await self._event(session, appspec, "AfterInstall", self.release)
        await session.restart(self.release, self.environment.name)
        self.progress(f"{session.name}: restarted")
        await self._event(session, appspec, "ApplicationStart", self.release)
        await wait_healthy(
            lambda: session.probe(self.environment, self.release.directory),
            self.environment,
            session.name,
            self.progress,
        )
        await self._event(session, appspec, "ValidateService", self.release)

    async def _event(
        self, session: HostSession, appspec: AppSpec | None, event: str, release: Release
    ) -> None:
        if appspec is None:
            return
        env = {
            "LIFECYCLE_EVENT": event,
            "DEPLOYMENT_ID": self.deployment_id,
            "APPLICATION_NAME": self.environment.name,
            "DEPLOYMENT_GROUP_NAME": self.environment.name,
            "DEPLOYMENT_GROUP_ID": self.environment.name,
            "SHIPLINE_PORTS": str(session.service_port),
            "SHIPLINE_INSTANCES": session.name,
        }
        for script in appspec.hooks.get(event, ()):
            await session.hook(script, event, release, env, self.progress)

    async def _min_healthy(self, required: int) -> None:
        results = await asyncio.gather(
            *(s.probe(self.environment, self.release.directory) for s in self.sessions)
        )
        healthy = sum(1 for r in results if r is None)
        required = min(required, len(self.sessions))
        if healthy < required:
            raise DeployFailure(
                "health",
                f"only {healthy} healthy host(s) after the batch; min_healthy is {required}",
            )

    async def _recover(self, failure: DeployFailure, serving: Release | None) -> SshOutcome:
        policy = self.environment.rollback
        serving_id = serving.id if serving else None
        touched = self.switched + [s for s in self.stopped if s not in self.switched]
        if not touched:
            return SshOutcome(
                Outcome.FAILED, cause=failure.cause, reason=failure.message, serving=serving_id
            )
        if not (policy.automatic and failure.cause in policy.on):
            self.progress(
                "automatic rollback is off for this cause: the hosts are left as they are"
            )
            return SshOutcome(Outcome.FAILED, cause=failure.cause, reason=failure.message)
        problems: list[str] = []
        restored: set[str] = set()
        for session in touched:
            before = self.previous.get(session.name)
            if before is None:
                problems.append(f"{session.name} had no earlier release")
                continue
            try:
                if session in self.switched:
                    await session.switch(before)
                    self.progress(f"{session.name}: current -> releases/{before} (rollback)")
                previous = Release(before, before, Path())
                if serving is not None and serving.id == before:
                    previous = serving
                await session.restart(previous, self.environment.name)
                await wait_healthy(
                    functools.partial(session.probe, self.environment, previous.directory),
                    self.environment,
                    session.name,
                    self.progress,
                )
            except DeployFailure as exc:
                problems.append(exc.message)
                continue
            restored.add(before)
        if problems:
            return SshOutcome(
                Outcome.FAILED,
                cause=failure.cause,
                reason=f"{failure.message}; rollback incomplete: " + "; ".join(problems),
            )
        back = serving.id if serving is not None and restored <= {serving.id} else None
        back = back or (sorted(restored)[0] if len(restored) == 1 else None)
        self.progress(f"rolled back to {back or ', '.join(sorted(restored))}")
        return SshOutcome(
            Outcome.ROLLED_BACK,
            cause=failure.cause,
            reason=failure.message,
            rolled_back_to=back,
            serving=back,
        )

    async def _prune(self, history: tuple[Release, ...]) -> None:
        """Keep the current release and the most recent healthy ones before it; a host
        that cannot prune is only reported (the deployment succeeded)."""
        earlier = [r.id for r in reversed(history) if r.id != self.release.id]
        keep = [self.release.id, *dict.fromkeys(earlier)][: self.target.keep_releases]
        for session in self.sessions:
            try:
                removed = await session.prune(keep)
            except DeployFailure as exc:
                self.progress(f"{session.name}: old releases not removed: {exc.message}")
                continue
            if removed:
                self.progress(f"{session.name}: removed old release(s) {', '.join(removed)}")

    async def _close(self) -> None:
        await asyncio.gather(*(s.close() for s in self.sessions), return_exceptions=True)


def _bundle(directory: Path) -> bytes:
    """The release directory as a gzipped tar, in memory (no copy of it on disk)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6) as tar:
        tar.add(directory, arcname=".")
    return buffer.getvalue()
