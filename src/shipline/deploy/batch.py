"""One rollout in progress on a `local` target: the operations strategies are made of.

`Rollout` starts batches of new instances (hooks, health), sets the router's weights,
watches the new instances (health, canary analysis) during bake and keep-warm periods, and
retires old instances (ApplicationStop hook, drain, SIGTERM). A failure raises
`DeployFailure` with its cause; the controller then rolls back.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from shipline.deploy import health
from shipline.deploy.analysis import Outcome as AnalysisOutcome
from shipline.deploy.analysis import Verdict, judge
from shipline.deploy.appspec import AppSpec
from shipline.deploy.hooks import run_event
from shipline.deploy.local import InstanceInfo, LocalFleet
from shipline.deploy.metrics import Window
from shipline.deploy.types import DeployFailure, Release
from shipline.spec.environment_models import CanaryAnalysis, EnvironmentSpec, LocalTarget


@dataclass
class Rollout:
    """The state of one rollout: which instances are old, which are new."""

    environment: EnvironmentSpec
    target: LocalTarget
    release: Release
    fleet: LocalFleet
    appspec: AppSpec | None
    old_appspec: AppSpec | None
    deployment_id: str
    progress: Callable[[str], None]
    old: list[InstanceInfo] = field(default_factory=list)
    new: dict[str, int] = field(default_factory=dict)  # id -> port
    serial: int = 0
    secrets: dict[str, str] = field(default_factory=dict, repr=False)  # for instances' env

    # -- instances ----------------------------------------------------------------------

    def free_ports(self, count: int, used: set[int]) -> list[int]:
        ports: list[int] = []
        for port in range(self.target.ports.first, self.target.ports.last + 1):
            if port in used or not _port_free(port):
                continue
            ports.append(port)
            if len(ports) == count:
                return ports
        raise DeployFailure(
            "target",
            f"no {count} free port(s) left in {self.target.ports.first}-{self.target.ports.last}",
        )

    async def start_batch(self, count: int) -> list[str]:
        """Start `count` new instances, wait until healthy, run ApplicationStart and
        ValidateService. Returns their ids."""
        used = {i.port for i in await self.fleet.instances()}
        ports = self.free_ports(count, used)
        ids: list[str] = []
        for port in ports:
            self.serial += 1
            iid = f"{self.release.id}-{self.serial}"
            await self.fleet.start(
                iid,
                release=self.release.id,
                version=self.release.version,
                directory=self.release.directory,
                command=self.target.start,
                env=dict(self.target.env) | self.secrets,
                port=port,
            )
            self.new[iid] = port
            ids.append(iid)
        self.progress(f"started {count} instance(s) of {self.release.version} on ports {ports}")
        await self.event("ApplicationStart", ids)
        await health.wait_healthy(
            self.environment.health,
            {i: self.new[i] for i in ids},
            self.release.directory,
            self.progress,
        )
        await self.event("ValidateService", ids)
        return ids

    async def event(self, name: str, ids: list[str]) -> None:
        await run_event(
            self.appspec,
            name,
            self.release,
            deployment_id=self.deployment_id,
            environment=self.environment.name,
            ports=[self.new[i] for i in ids],
            instances=ids,
            progress=self.progress,
        )

    async def route(self, weights: dict[str, float]) -> None:
        await self.fleet.route(weights)

    async def route_split(self, new_percent: float) -> None:
        """`new_percent` % of requests to the new instances, the rest to the old ones."""
        weights: dict[str, float] = {}
        if self.old and new_percent < 100:
            for inst in self.old:
                weights[inst.id] = (100 - new_percent) / len(self.old)
        for iid in self.new:
            weights[iid] = new_percent / len(self.new)
        await self.route(weights)
        self.progress(f"traffic: {new_percent:g}% to {self.release.version}")

    async def retire(self, instances: list[InstanceInfo]) -> None:
        """ApplicationStop (of the old release), then drain and stop."""
        if not instances:
            return
        if self.old_appspec is not None:
            old_release = Release(
                instances[0].release, instances[0].version, Path(instances[0].directory)
            )
            await run_event(
                self.old_appspec,
                "ApplicationStop",
                old_release,
                deployment_id=self.deployment_id,
                environment=self.environment.name,
                ports=[i.port for i in instances],
                instances=[i.id for i in instances],
                progress=self.progress,
            )
        drain = self.environment.traffic.drain if self.environment.traffic else 5.0
        await asyncio.gather(*(self.fleet.stop(i.id, self.target.grace, drain) for i in instances))
        gone = {i.id for i in instances}
        self.old = [i for i in self.old if i.id not in gone]
        self.progress(f"stopped {len(instances)} instance(s) of the previous release")

    # -- watching -----------------------------------------------------------------------

    async def watch(self, seconds: float, analysis: CanaryAnalysis | None = None) -> None:
        """For `seconds`: new instances must stay healthy (and pass the analysis, every
        `interval` over the last `interval`, and at the end over the whole step)."""
        spec = self.environment.health
        began = time.monotonic()
        deadline = began + seconds
        failures = dict.fromkeys(self.new, 0)
        next_analysis = began + (analysis.interval if analysis else 0)
        while time.monotonic() < deadline:
            await asyncio.sleep(min(spec.interval, max(0.0, deadline - time.monotonic())))
            await self.check_alive()
            results = await asyncio.gather(
                *(health.check_once(spec, p, self.release.directory) for p in self.new.values())
            )
            for iid, problem in zip(list(self.new), results, strict=True):
                failures[iid] = failures.get(iid, 0) + 1 if problem else 0
                if failures[iid] >= spec.unhealthy_threshold:
                    raise DeployFailure("health", f"instance {iid} became unhealthy: {problem}")
            if analysis is not None and time.monotonic() >= next_analysis:
                await self.analyse(analysis, analysis.interval)
                next_analysis = time.monotonic() + analysis.interval
        if analysis is not None:
            await self.conclude(analysis, began)

    async def conclude(self, analysis: CanaryAnalysis, began: float) -> None:
        """The step's verdict over the whole step; waits up to one more `interval` for the
        canary to reach `min_requests`, then an inconclusive analysis fails the step."""
        give_up = time.monotonic() + analysis.interval
        first = True
        while True:
            verdict = await self.analyse(analysis, time.monotonic() - began, report=first)
            first = False
            if verdict.outcome is not AnalysisOutcome.INCONCLUSIVE:
                return
            if time.monotonic() >= give_up:
                raise DeployFailure("analysis", f"analysis inconclusive: {verdict.reason}")
            await asyncio.sleep(min(0.5, analysis.interval))
            await self.check_alive()

    async def check_alive(self) -> None:
        for inst in await self.fleet.instances():
            if inst.id in self.new and inst.state != "running":
                raise DeployFailure(
                    "health", f"instance {inst.id} exited (restarts: {inst.restarts})"
                )

    async def analyse(
        self, analysis: CanaryAnalysis, seconds: float, *, report: bool = True
    ) -> Verdict:
        """Judge the canary against the stable instances over the last `seconds`
        (`deploy.analysis`); raises `DeployFailure` when it failed. `report=False` logs
        only a verdict that is not inconclusive (while waiting for `min_requests`)."""
        canary = _merge(await self.fleet.window(list(self.new), seconds))
        stable = _merge(await self.fleet.window([i.id for i in self.old], seconds))
        verdict = judge(analysis, canary, stable if self.old else None)
        if verdict.failed:
            raise DeployFailure("analysis", verdict.reason)
        if report or verdict.outcome is not AnalysisOutcome.INCONCLUSIVE:
            self.progress(f"analysis {verdict.outcome}: {verdict.reason}")
        return verdict


def _merge(rows: list[dict[str, object]]) -> Window:
    requests = sum(int(str(r["requests"])) for r in rows)
    errors = sum(int(str(r["errors"])) for r in rows)
    p95s = [float(str(r["p95_ms"])) for r in rows if r["p95_ms"] is not None]
    return Window(requests, errors, max(p95s) if p95s else None)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
