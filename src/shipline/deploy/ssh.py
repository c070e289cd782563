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
each host of the batch: ApplicationStop (of the release the host runs, its AppSpec read
from the host), BeforeInstall,
the atomic switch of `current` (`ln -sfn` to a temporary name, `mv -T` over the link),
AfterInstall, the `restart` command, ApplicationStart, the health check (through the SSH
connection to the service's port on the host's loopback), ValidateService. When a batch
fails and the rollback policy covers the cause, every host already switched gets its
previous `current` back and is restarted and checked again (so is a host whose
ApplicationStop ran). The secrets file is environment-wide, not per release: a rolled back
release restarts with the secrets of the latest deployment.

Secrets reach the service only through the secrets file, sent over the SSH channel's stdin
(never on a command line) and sourced by the shell that runs `restart`; hooks do not get
them. Remote output is masked with the secrets' values before it reaches a progress line.
"""

from __future__ import annotations

import asyncio
import functools
import io
import json
import tarfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from shipline.deploy.appspec import AppSpec, AppSpecError, parse_appspec
from shipline.deploy.hooks import load_hooks
from shipline.deploy.ssh_host import RELEASE_ID, SECRETS_FILE, HostSession, connect
from shipline.deploy.types import DeployFailure, Outcome, Release
from shipline.spec.environment_models import EnvironmentSpec, SshTarget

Progress = Callable[[str], None]

STATE = "ssh-state.json"


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
        """Roll the release out; never raises for a failed deployment."""
        try:
            return await self._run()
        finally:
            await self._close()

    async def _run(self) -> SshOutcome:
        serving, history = load_state(self.state_dir)
        try:
            appspec = self._hooks()
            await self._prepare()
        except DeployFailure as exc:
            self.progress(f"failed before anything changed: {exc.message}")
            return SshOutcome(
                Outcome.FAILED,
                cause=exc.cause,
                reason=exc.message,
                serving=serving.id if serving else None,
            )
        try:
            await self._strategy(appspec, serving)
        except DeployFailure as exc:
            self.progress(f"{exc.cause} failed: {exc.message}")
            return await self._recover(exc, serving)
        _save_state(self.state_dir, self.release, history)
        self.progress(f"{self.release.version} is live on {len(self.sessions)} host(s)")
        await self._prune(history)
        return SshOutcome(Outcome.SUCCEEDED, serving=self.release.id)

    def _hooks(self) -> AppSpec | None:
        if not RELEASE_ID.match(self.release.id):
            raise DeployFailure(
                "target", f"release id {self.release.id!r} cannot name a directory on the hosts"
            )
        return load_hooks(self.environment, self.release)

    async def _old_hooks(self, session: HostSession, release_id: str) -> AppSpec | None:
        """The hooks of the release a host runs now, read from the host (CodeDeploy runs
        ApplicationStop from the last revision deployed to the instance)."""
        spec = self.environment.hooks
        if spec.inline:
            return AppSpec(version="0.0", os="linux", hooks=dict(spec.inline))
        for name in [spec.appspec] if spec.appspec else ["appspec.yml", "appspec.yaml"]:
            text = await session.read(f"{session.release_dir(release_id)}/{name}")
            if text is None:
                continue
            try:
                appspec = parse_appspec(text, name)
            except AppSpecError as exc:
                self.progress(f"{session.name}: {release_id}'s {name} is unusable: {exc}")
                return None
            return appspec if appspec.platform == "server" and appspec.os == "linux" else None
        return None

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

    async def _strategy(self, appspec: AppSpec | None, serving: Release | None) -> None:
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
                *(self._host(s, appspec, serving) for s in batch),
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
        serving: Release | None,
    ) -> None:
        before = self.previous.get(session.name)
        old_appspec = await self._old_hooks(session, before) if before else None
        if before is not None and old_appspec is not None:
            old = serving if serving is not None and serving.id == before else None
            self.stopped.append(session)
            await self._event(
                session, old_appspec, "ApplicationStop", old or Release(before, before, Path())
            )
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
