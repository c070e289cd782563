"""`Deployer` for jobs of the embedded runner: the deployment service in process.

Remote runners reach the same service over the API with their job token
(`runner.deploy_client.HttpDeployer`); both follow the deployment's progress until it ends.
"""

from __future__ import annotations

import asyncio

from shipline.engine.deployments import DeploymentService
from shipline.engine.errors import Forbidden
from shipline.runner.ports import DeployOutcome, LogFn


class ServerDeployer:
    """Deploys for job `job_id`, polling the deployment's progress every `poll` seconds."""

    def __init__(self, service: DeploymentService, job_id: int, poll: float = 0.2) -> None:
        self._service = service
        self._job_id = job_id
        self._poll = poll

    async def deploy(self, artifact: str, log: LogFn) -> DeployOutcome:
        try:
            deployment = await asyncio.to_thread(self._service.from_job, self._job_id, artifact)
        except Forbidden as exc:
            return DeployOutcome(None, "refused", exc.message)
        after = 0
        while True:
            state, reason, lines = await asyncio.to_thread(
                self._service.follow, deployment.id, after=after
            )
            for seq, line in lines:
                log(f"[deployment {deployment.id}] {line}")
                after = seq
            if state.final:
                return DeployOutcome(deployment.id, str(state), reason)
            await asyncio.sleep(self._poll)
