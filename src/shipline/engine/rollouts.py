"""The port between the control plane and the deployment controller (data plane).

The control plane decides *whether* and *when* a release goes to an environment (gates,
verification, the queue, history, audit); a `Rollouts` implementation decides *how*
(targets, strategy, health checks, hooks, automatic rollback). `wiring` adapts the
controller of `shipline.deploy` to this port; tests use `shipline.testing.FakeRollouts`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from shipline.domain.deployments import DeploymentKind, DeploymentState, ReleaseRecord


@dataclass(frozen=True, slots=True)
class RolloutRequest:
    """One release to roll out: the environment file (as read from the default branch),
    the release and the directory its verified files were unpacked to; `previous` is what
    the environment ran before (the target of an automatic rollback). `secrets` are the
    environment's secrets for its instances (never in the repr, a log or a record)."""

    project: str
    environment: str
    environment_file: str
    environment_text: str
    deployment_id: int
    kind: DeploymentKind
    release: ReleaseRecord
    directory: Path
    previous: ReleaseRecord | None = None
    secrets: dict[str, str] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class RolloutReport:
    """How a rollout ended: `success`, `rolled_back` (back on the previous release) or
    `failure`; `reason` says why when it did not succeed, `cause` which check failed
    (`hooks`, `health`, `analysis`, `target`) and `rolled_back_to` the release the
    environment went back to."""

    state: DeploymentState
    reason: str = ""
    cause: str = ""
    rolled_back_to: int | None = None


Progress = Callable[[str], None]


class Rollouts(Protocol):
    """Rolls releases out to environments' targets."""

    async def rollout(self, request: RolloutRequest, progress: Progress) -> RolloutReport:
        """Roll `request.release` out, reporting progress lines; never raises for a failed
        rollout (that is a report), only for a bug."""
        ...


@dataclass(frozen=True, slots=True)
class InstanceStatus:
    """One instance of an environment as its target reports it now: `state` is the
    target's word (`starting`, `running`, `backoff`, `stopping`); `routed` whether the
    router sends it traffic, `weight` its share."""

    id: str
    release: str
    state: str
    routed: bool
    weight: float
    restarts: int
    port: int


@runtime_checkable
class InstanceProbe(Protocol):
    """Asks an environment's targets what runs there now (for the dashboard)."""

    async def instances(self, project: str, environment: str) -> tuple[InstanceStatus, ...] | None:
        """The environment's instances, without starting anything: None when nothing
        runs there that could be asked (no supervisor yet)."""
        ...
