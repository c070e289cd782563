"""`shipline/deploy`: roll an artifact of this run out to the job's environment.

Inputs: `artifact` (required: the name an `actions/upload-artifact` step of this run gave).
The server's deployment controller does the work: it verifies the artifact's digest and
signed provenance against the environment's policy, queues the deployment behind others of
the environment, and reports the rollout's progress, which this step writes to its log.
Outputs: `deployment` (the deployment's id), `state`. The step fails unless the deployment
succeeded (a deployment skipped because a newer commit superseded it is a success, with a
warning).
"""

from __future__ import annotations

from shipline.runner.actions._common import text
from shipline.runner.ports import ActionCall, ActionFailed


class DeployAction:
    """`shipline/deploy@*`."""

    name = "shipline/deploy"

    async def run(self, call: ActionCall) -> None:
        artifact = text(call, "artifact")
        if not artifact:
            raise ActionFailed("input 'artifact' is required: the name of an artifact of this run")
        if call.deployer is None:
            raise ActionFailed(
                "shipline/deploy needs a Shipline server: jobs run by `shipline run` cannot "
                "deploy (run the workflow on a server, whose deployment controller verifies "
                "and rolls out the artifact)"
            )
        call.log(f"Deploying artifact {artifact!r}")
        outcome = await call.deployer.deploy(artifact, call.log)
        if outcome.deployment_id is not None:
            call.outputs["deployment"] = str(outcome.deployment_id)
        call.outputs["state"] = outcome.state
        if outcome.state == "success":
            call.log(f"Deployment {outcome.deployment_id} succeeded")
            return
        if outcome.state == "skipped":
            call.log(f"Warning: deployment {outcome.deployment_id} was skipped: {outcome.reason}")
            return
        what = f"deployment {outcome.deployment_id}" if outcome.deployment_id else "deployment"
        raise ActionFailed(f"{what} {outcome.state.replace('_', ' ')}: {outcome.reason}")

    async def post(self, call: ActionCall, job_succeeded: bool) -> None:
        return None
