"""`Rollouts` (the control plane's port) over `shipline.deploy`'s `RolloutController` (the
data plane): the environment file as read from the default branch becomes an
`EnvironmentSpec`, the verified release a `Release`, and the controller's result a report.

Environments are named per project (two projects may each have a `staging`), while a
controller knows environments by name only: each project gets a controller of its own
(`controller_for(project)`), with its own directory of supervisors."""

from __future__ import annotations

from collections.abc import Callable

from shipline.deploy.controller import RolloutController
from shipline.deploy.types import DeployFailure, Outcome, Release
from shipline.domain.deployments import DeploymentState
from shipline.domain.errors import ShiplineError
from shipline.engine.rollouts import InstanceStatus, Progress, RolloutReport, RolloutRequest
from shipline.spec.diagnostics import Severity
from shipline.spec.environment import load_environment

_STATES = {
    Outcome.SUCCEEDED: DeploymentState.SUCCESS,
    Outcome.ROLLED_BACK: DeploymentState.ROLLED_BACK,
}


class ControllerRollouts:
    """Rolls releases out with the deployment controllers of this server: the one of each
    request's project (`controller_for`, which returns the same controller for a project
    every time)."""

    def __init__(self, controller_for: Callable[[str], RolloutController]) -> None:
        self._controller_for = controller_for

    async def rollout(self, request: RolloutRequest, progress: Progress) -> RolloutReport:
        spec, diagnostics = load_environment(
            request.environment_text, request.environment_file, name=request.environment
        )
        if spec is None:
            errors = [d.format() for d in diagnostics if d.severity is Severity.ERROR]
            return RolloutReport(DeploymentState.REFUSED, "; ".join(errors) or "invalid file")
        release = Release(str(request.release.id), request.release.sha[:12], request.directory)
        result = await self._controller_for(request.project).rollout(
            spec,
            release,
            progress,
            deployment_id=str(request.deployment_id),
            secrets=request.secrets,
        )
        state = _STATES.get(result.outcome, DeploymentState.FAILURE)
        back = result.rolled_back_to
        return RolloutReport(
            state,
            result.reason or "",
            cause=result.cause or "",
            rolled_back_to=int(back) if back is not None and back.isdigit() else None,
        )

    async def instances(self, project: str, environment: str) -> tuple[InstanceStatus, ...] | None:
        try:
            found = await self._controller_for(project).peek(environment)
        except DeployFailure as exc:  # the supervisor broke off: a sentence, not a bug
            raise ShiplineError(str(exc)) from exc
        if found is None:
            return None
        return tuple(
            InstanceStatus(i.id, i.release, i.state, i.routed, i.weight, i.restarts, i.port)
            for i in found
        )
