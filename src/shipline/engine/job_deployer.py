"""`Deployer` for jobs of the embedded runner: the deployment service in process.

Remote runners reach the same service over the API with their job token
(`runner.deploy_client.HttpDeployer`); both follow the deployment's progress until it ends.
Both present the job's token first: it must still be valid and its `permissions:` must
give `deployments: write` (`AccessService.require_job`, audited when refused).
"""

from __future__ import annotations

import asyncio

from shipline.domain.records import TokenKind
from shipline.engine.access import AccessService
from shipline.engine.deployments import DeploymentService
from shipline.engine.errors import Forbidden, Unauthenticated
from shipline.runner.ports import DeployOutcome, LogFn

JOB_TOKENS = frozenset({TokenKind.JOB})


class ServerDeployer:
    """Deploys for job `job_id` with the job's `token`, polling the deployment's progress
    every `poll` seconds."""

    def __init__(
        self,
        service: DeploymentService,
        access: AccessService,
        job_id: int,
        token: str,
        poll: float = 0.2,
    ) -> None:
        self._service = service
        self._access = access
        self._job_id = job_id
        self._token = token
        self._poll = poll

    def _request(self, artifact: str) -> int:
        """The new deployment's id, once the token may ask for it (as the API checks a
        remote runner's request)."""
        target = f"job:{self._job_id} deployment.request"
        caller = self._access.authenticate(self._token, allowed=JOB_TOKENS, target=target)
        self._access.require_job(caller, self._job_id, action="deployment.request")
        return self._service.from_job(self._job_id, artifact).id

    async def deploy(self, artifact: str, log: LogFn) -> DeployOutcome:
        try:
            deployment_id = await asyncio.to_thread(self._request, artifact)
        except (Forbidden, Unauthenticated) as exc:
            return DeployOutcome(None, "refused", exc.message)
        after = 0
        while True:
            state, reason, lines = await asyncio.to_thread(
                self._service.follow, deployment_id, after=after
            )
            for seq, line in lines:
                log(f"[deployment {deployment_id}] {line}")
                after = seq
            if state.final:
                return DeployOutcome(deployment_id, str(state), reason)
            await asyncio.sleep(self._poll)
