"""`RolloutController`: the data plane's entry point, called by the control plane.

`rollout(environment, release, progress)` puts a release on the environment's target with
its strategy and returns a `RolloutResult`; it never raises for a failed deployment. When a
batch fails its hooks, health checks or analysis and the environment's rollback policy
covers that cause, the environment goes back to the last healthy release (which kept
serving throughout) and the result says why. A rollback on demand is a rollout of the
earlier release (the control plane picks it from the release history in its store).

Per environment the controller keeps, in the supervisor (so it survives server restarts),
only what re-adopting the environment needs: its instances and the release it serves.
Release history is the control plane's (`store.ports.ReleaseHistoryStore`).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipline.deploy import health, ssh, strategies
from shipline.deploy.batch import Rollout
from shipline.deploy.hooks import install_files, load_hooks, run_event
from shipline.deploy.local import InstanceInfo, LocalFleet
from shipline.deploy.types import DeployFailure, Outcome, Release, RolloutResult
from shipline.spec.environment_models import EnvironmentSpec, LocalTarget, SshTarget

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class EnvironmentState:
    """What an environment runs now, as its supervisor reports it."""

    serving: Release | None
    instances: tuple[InstanceInfo, ...]
    router_port: int | None


class RolloutController:
    """Rolls releases out to environments; one rollout at a time per environment.

    `state_dir` holds one directory per environment (its supervisor's socket, state file
    and instance logs). The control plane serialises deployments per environment; the
    controller also holds a lock per environment so two calls never interleave.
    """

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self._fleets: dict[str, LocalFleet] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def fleet(self, environment: EnvironmentSpec) -> LocalFleet:
        """The environment's supervisor connection (started or re-adopted on first use)."""
        fleet = self._fleets.get(environment.name)
        if fleet is None:
            fleet = await LocalFleet.open(self._dir(environment.name), environment.name)
            self._fleets[environment.name] = fleet
        return fleet

    def _dir(self, name: str) -> Path:
        return self.state_dir / "environments" / name

    async def close(self) -> None:
        """Close the connections; the supervisors and their instances keep running."""
        for fleet in self._fleets.values():
            await fleet.close()
        self._fleets.clear()

    async def shutdown(self, environment: EnvironmentSpec) -> None:
        """Stop an environment's instances, router and supervisor."""
        fleet = await self.fleet(environment)
        del self._fleets[environment.name]
        await fleet.shutdown()

    async def state(self, environment: EnvironmentSpec) -> EnvironmentState:
        fleet = await self.fleet(environment)
        status = await fleet.status()
        meta = status["meta"]
        return EnvironmentState(
            serving=_release(meta.get("serving")),
            instances=tuple(await fleet.instances()),
            router_port=status["router"]["port"] if status["router"] else None,
        )

    async def peek(self, name: str) -> list[InstanceInfo] | None:
        """The instances of environment `name` now, over a connection of its own to its
        supervisor; None when no supervisor runs (nothing is started to ask)."""
        fleet = await LocalFleet.attach(self._dir(name))
        if fleet is None:
            return None
        try:
            return await fleet.instances()
        finally:
            await fleet.close()

    async def metrics_text(self, environment: EnvironmentSpec) -> str:
        """The router's per-upstream metrics in Prometheus' text format."""
        return await (await self.fleet(environment)).metrics_text()

    # -- rollout ------------------------------------------------------------------------

    async def rollout(
        self,
        environment: EnvironmentSpec,
        release: Release,
        progress: Progress,
        *,
        deployment_id: str | None = None,
        secrets: Mapping[str, str] | None = None,
    ) -> RolloutResult:
        """Deploy `release` to `environment`; never raises for a failed deployment.

        `deployment_id` (the control plane's) is what hooks see as `DEPLOYMENT_ID`;
        `secrets` (environment-scoped values, delivered after approval) are added to the
        instances' environment, in memory only: never logged, stored or on a command line.
        """
        lock = self._locks.setdefault(environment.name, asyncio.Lock())
        async with lock:
            return await self._rollout(
                environment,
                release,
                progress,
                deployment_id or f"d-{uuid.uuid4().hex[:12]}",
                dict(secrets or {}),
            )

    async def _rollout(
        self,
        environment: EnvironmentSpec,
        release: Release,
        progress: Progress,
        deployment_id: str,
        secrets: dict[str, str],
    ) -> RolloutResult:
        started = time.monotonic()
        events: list[str] = []

        def say(message: str) -> None:
            events.append(message)
            progress(message)

        def result(outcome: str, **fields: Any) -> RolloutResult:
            return RolloutResult(
                environment=environment.name,
                release_id=release.id,
                outcome=outcome,
                duration=time.monotonic() - started,
                events=tuple(events),
                **fields,
            )

        target = environment.target
        if not release.directory.is_dir():
            return result(
                Outcome.FAILED,
                cause="target",
                reason=f"the release directory {release.directory} does not exist",
            )
        if isinstance(target, SshTarget):
            done = await ssh.SshRollout(
                self._dir(environment.name),
                environment,
                target,
                release,
                say,
                deployment_id,
                secrets,
            ).run()
            return result(
                done.outcome,
                reason=done.reason,
                cause=done.cause,
                rolled_back_to=done.rolled_back_to,
                serving=done.serving,
            )
        try:
            fleet = await self.fleet(environment)
            state = await self.state(environment)
            previous = state.serving
            rollout = await self._prepare(
                environment, target, release, fleet, previous, say, deployment_id, secrets
            )
        except DeployFailure as exc:
            say(f"failed before anything changed: {exc.message}")
            serving = None
            connected = self._fleets.get(environment.name)
            if connected is not None:
                serving = _release((await connected.meta()).get("serving"))
            return result(
                Outcome.FAILED,
                cause=exc.cause,
                reason=exc.message,
                serving=serving.id if serving else None,
            )
        say(
            f"deploying {release.version} ({release.id}) to {environment.name} with "
            f"{environment.strategy.kind}" + (f", replacing {previous.version}" if previous else "")
        )
        try:
            await strategies.run(rollout)
        except DeployFailure as exc:
            say(f"{exc.cause} failed: {exc.message}")
            return await self._recover(environment, release, rollout, previous, exc, say, result)
        await fleet.set_meta("serving", _release_json(release))
        say(f"{release.version} is live on {target.instances} instance(s)")
        return result(Outcome.SUCCEEDED, serving=release.id)

    async def _prepare(
        self,
        environment: EnvironmentSpec,
        target: LocalTarget,
        release: Release,
        fleet: LocalFleet,
        previous: Release | None,
        say: Progress,
        deployment_id: str,
        secrets: dict[str, str],
    ) -> Rollout:
        traffic = environment.traffic
        if traffic is None:
            raise DeployFailure("target", 'the environment has no "traffic" (router port)')
        await fleet.configure_router(traffic.host, traffic.port)
        appspec = load_hooks(environment, release)
        old_appspec = None
        if previous is not None and previous.directory.is_dir():
            try:
                old_appspec = load_hooks(environment, previous)
            except DeployFailure as exc:
                say(f"the previous release's hooks are unusable, ApplicationStop skipped: {exc}")
        instances = await fleet.instances()
        # Leftovers of an interrupted rollout: instances nobody routes to. Stop them first.
        stray = [i for i in instances if not i.routed]
        for inst in stray:
            await fleet.stop(inst.id, target.grace, 0.0)
        if stray:
            say(f"stopped {len(stray)} instance(s) left over by an interrupted rollout")
        rollout = Rollout(
            environment=environment,
            target=target,
            release=release,
            fleet=fleet,
            appspec=appspec,
            old_appspec=old_appspec,
            deployment_id=deployment_id,
            progress=say,
            old=[i for i in instances if i.routed],
            secrets=secrets,
        )
        await run_event(
            appspec,
            "BeforeInstall",
            release,
            deployment_id=rollout.deployment_id,
            environment=environment.name,
            ports=[],
            instances=[],
            progress=say,
        )
        try:
            install_files(appspec, release, say)
        except OSError as exc:
            raise DeployFailure("hooks", f"Install: {exc}") from exc
        await run_event(
            appspec,
            "AfterInstall",
            release,
            deployment_id=rollout.deployment_id,
            environment=environment.name,
            ports=[],
            instances=[],
            progress=say,
        )
        return rollout

    async def _recover(
        self,
        environment: EnvironmentSpec,
        release: Release,
        rollout: Rollout,
        previous: Release | None,
        failure: DeployFailure,
        say: Progress,
        result: Callable[..., RolloutResult],
    ) -> RolloutResult:
        policy = environment.rollback
        reason = failure.message
        if not (policy.automatic and failure.cause in policy.on):
            say("automatic rollback is off for this cause: the environment is left as it is")
            await self._stop_unrouted(rollout)
            return result(Outcome.FAILED, cause=failure.cause, reason=reason)
        if previous is None:
            say("no earlier healthy release to return to: stopping the new instances")
            await rollout.fleet.route({})
            await self._stop_all(rollout, set(rollout.new))
            return result(
                Outcome.FAILED, cause=failure.cause, reason=f"{reason}; nothing to roll back to"
            )
        try:
            await self._restore(environment, rollout.fleet, previous, say, rollout.secrets)
        except DeployFailure as exc:
            say(f"rollback to {previous.version} failed: {exc.message}")
            return result(
                Outcome.FAILED,
                cause=failure.cause,
                reason=f"{reason}; rollback to {previous.id} failed: {exc.message}",
            )
        say(f"rolled back to {previous.version} ({previous.id})")
        return result(
            Outcome.ROLLED_BACK,
            cause=failure.cause,
            reason=reason,
            rolled_back_to=previous.id,
            serving=previous.id,
        )

    async def _stop_unrouted(self, rollout: Rollout) -> None:
        routed = {i.id for i in await rollout.fleet.instances() if i.routed}
        await self._stop_all(rollout, {i for i in rollout.new if i not in routed})

    async def _stop_all(self, rollout: Rollout, ids: set[str]) -> None:
        await asyncio.gather(
            *(rollout.fleet.stop(i, rollout.target.grace, 1.0) for i in sorted(ids))
        )

    async def _restore(
        self,
        environment: EnvironmentSpec,
        fleet: LocalFleet,
        release: Release,
        say: Progress,
        secrets: dict[str, str],
    ) -> None:
        """Serve `release` on every instance again: keep its running instances, start the
        missing ones, route to them alone, stop the rest."""
        target = environment.target
        assert isinstance(target, LocalTarget)
        instances = await fleet.instances()
        keep = [i for i in instances if i.release == release.id and i.state == "running"]
        keep = keep[: target.instances]
        helper = Rollout(
            environment=environment,
            target=target,
            release=release,
            fleet=fleet,
            appspec=None,
            old_appspec=None,
            deployment_id=f"r-{uuid.uuid4().hex[:12]}",
            progress=say,
            serial=len(instances) + 1000,
            secrets=secrets,
        )
        missing = target.instances - len(keep)
        if missing > 0:
            if not release.directory.is_dir():
                raise DeployFailure("target", f"{release.directory} is gone")
            say(f"starting {missing} instance(s) of {release.version} again")
            await helper.start_batch(missing)
        ports = {i.id: i.port for i in keep} | helper.new
        await health.wait_healthy(environment.health, ports, release.directory, say)
        await fleet.route(dict.fromkeys(ports, 1.0))
        others = [i for i in await fleet.instances() if i.id not in ports]
        drain = environment.traffic.drain if environment.traffic else 5.0
        await asyncio.gather(*(fleet.stop(i.id, target.grace, drain) for i in others))
        await fleet.set_meta("serving", _release_json(release))


def _release_json(release: Release) -> dict[str, str]:
    return {"id": release.id, "version": release.version, "directory": str(release.directory)}


def _release(data: object) -> Release | None:
    if not isinstance(data, dict):
        return None
    return Release(str(data["id"]), str(data["version"]), Path(str(data["directory"])))
