"""`FakeRollouts`: a deployment controller for tests of the control plane.

It does what a controller reports, without targets: it reads the unpacked release (so a
test sees the verified files arrive), reports a few progress lines and succeeds — unless
the release contains a file named `BROKEN`, which it treats as a failed health check and
reports as rolled back to the previous release. Every request is kept in `requests`.
"""

from __future__ import annotations

import asyncio
import threading

from shipline.domain.deployments import DeploymentState
from shipline.engine.rollouts import InstanceStatus, Progress, RolloutReport, RolloutRequest


class FakeRollouts:
    """Records rollouts; `delay` seconds pass between progress lines; while `hold` is
    cleared, rollouts wait for it (a test decides when the environment is free again)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.hold = threading.Event()
        self.hold.set()
        self.requests: list[RolloutRequest] = []
        self.serving: dict[tuple[str, str], int] = {}

    async def rollout(self, request: RolloutRequest, progress: Progress) -> RolloutReport:
        self.requests.append(request)
        files = sorted(
            str(p.relative_to(request.directory))
            for p in request.directory.rglob("*")
            if p.is_file()
        )
        progress(f"release {request.release.id}: {len(files)} file(s) unpacked")
        await asyncio.sleep(self.delay)
        await asyncio.to_thread(self.hold.wait)
        key = (request.project, request.environment)
        if "BROKEN" in files:
            progress("health check failed on the new release")
            if request.previous is None:
                return RolloutReport(DeploymentState.FAILURE, "health check failed", cause="health")
            progress(f"rolling back to release {request.previous.id}")
            self.serving[key] = request.previous.id
            return RolloutReport(
                DeploymentState.ROLLED_BACK,
                f"health check failed; rolled back to release {request.previous.id}",
                cause="health",
                rolled_back_to=request.previous.id,
            )
        await asyncio.sleep(self.delay)
        self.serving[key] = request.release.id
        progress(f"release {request.release.id} serving")
        return RolloutReport(DeploymentState.SUCCESS)

    async def instances(self, project: str, environment: str) -> tuple[InstanceStatus, ...] | None:
        """One routed, running instance of the release it serves (None before any)."""
        release = self.serving.get((project, environment))
        if release is None:
            return None
        return (InstanceStatus(f"{environment}-1", str(release), "running", True, 1.0, 0, 0),)
