"""`Rollouts` (the control plane's port) over `shipline.deploy`'s `RolloutController` (the
data plane): the environment file as read from the default branch becomes an
`EnvironmentSpec`, the verified release a `Release`, and the controller's result a report."""

from __future__ import annotations

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
    """Rolls releases out with the deployment controller of this server."""

    def __init__(self, controller: RolloutController) -> None:
        self._controller = controller

    async def rollout(self, request: RolloutRequest, progress: Progress) -> RolloutReport:
        spec, diagnostics = load_environment(
            request.environment_text, request.environment_file, name=request.environment
        )
        if spec is None:
            errors = [d.format() for d in diagnostics if d.severity is Severity.ERROR]
            return RolloutReport(DeploymentState.REFUSED, "; ".join(errors) or "invalid file")
        release = Release(str(request.release.id), request.release.sha[:12], request.directory)
        result = await self._controller.rollout(
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
            found = await self._controller.peek(environment)
        except DeployFailure as exc:  # the supervisor broke off: a sentence, not a bug
            raise ShiplineError(str(exc)) from exc
        if found is None:
            return None
        return tuple(
            InstanceStatus(i.id, i.release, i.state, i.routed, i.weight, i.restarts, i.port)
            for i in found
        )
