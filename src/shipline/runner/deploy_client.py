"""`Deployer` over the API, for runners on other machines: the job's own token asks the
server (`POST /api/v1/jobs/{job}/deployments`), then follows the deployment's progress
(`GET /api/v1/deployments/{id}/progress`) until it ends. The server does every check; this
only carries the request and the answer."""

from __future__ import annotations

import asyncio

import httpx

from shipline.runner.ports import DeployOutcome, LogFn

_FINAL = ("success", "failure", "rolled_back", "skipped", "refused")


class HttpDeployer:
    """Deploys for job `job_id` through the server at `url` with the job's `token`."""

    def __init__(self, url: str, job_id: int, token: str, poll: float = 0.5) -> None:
        self._url = url.rstrip("/") + "/api/v1"
        self._job_id = job_id
        self._token = token
        self._poll = poll

    async def deploy(self, artifact: str, log: LogFn) -> DeployOutcome:
        headers = {"Authorization": f"Bearer {self._token}"}
        async with httpx.AsyncClient(base_url=self._url, headers=headers, timeout=30) as api:
            made = await api.post(f"/jobs/{self._job_id}/deployments", json={"artifact": artifact})
            if made.status_code in (403, 404, 409, 422):
                return DeployOutcome(None, "refused", _message(made))
            if made.status_code != 201:
                return DeployOutcome(None, "failure", f"the server answered {made.status_code}")
            deployment_id = int(made.json()["id"])
            seq = 0
            while True:
                answer = await api.get(
                    f"/deployments/{deployment_id}/progress", params={"after": seq}
                )
                if answer.status_code != 200:
                    return DeployOutcome(deployment_id, "failure", _message(answer))
                body = answer.json()
                for line in body["lines"]:
                    log(f"[deployment {deployment_id}] {line}")
                seq = int(body["seq"])
                state = str(body["deployment"]["state"])
                if state in _FINAL:
                    return DeployOutcome(deployment_id, state, str(body["deployment"]["reason"]))
                await asyncio.sleep(self._poll)


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"the server answered {response.status_code}"
