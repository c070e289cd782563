"""Environments belong to their project: two projects that both have a `staging` each get
their own supervisor, instances and router through the server's deployment controllers
(`wiring.deployment_controller`), so deploying one never replaces the other's."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shipline.deploy.controller import RolloutController
from shipline.domain.deployments import DeploymentKind, DeploymentState, ReleaseRecord
from shipline.engine.controller_rollouts import ControllerRollouts
from shipline.engine.rollouts import RolloutRequest
from shipline.settings import Settings
from shipline.spec.environment import load_environment
from shipline.wiring import deployment_controller, project_deploy_dir
from tests.integration.deploy.helpers import environment_text, make_release, versions_now

pytestmark = pytest.mark.slow

FILE = ".shipline/environments/staging.yml"


def record(number: int) -> ReleaseRecord:
    return ReleaseRecord(
        id=number,
        project_id=number,
        artifact="app",
        digest="sha256:00",
        provenance="sha256:00",
        run_id=number,
        job_key="build",
        ref="refs/heads/main",
        sha=f"{number:040x}",
        builder="urn:test",
        created_by="alice",
        created_at=datetime.now(UTC),
    )


def test_two_projects_each_keep_their_own_staging(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path / "state")
    rollouts = deployment_controller(settings)
    assert isinstance(rollouts, ControllerRollouts)
    texts = {"alpha": environment_text("all-at-once", instances=1)}
    texts["beta"] = environment_text("all-at-once", instances=1)
    releases = {"alpha": make_release(tmp_path / "a", "1.0.0", appspec=False)}
    releases["beta"] = make_release(tmp_path / "b", "2.0.0", appspec=False)
    ports = {}
    for project, text in texts.items():
        spec, _ = load_environment(text, FILE, name="staging")
        assert spec is not None and spec.traffic is not None
        ports[project] = spec.traffic.port

    async def scenario() -> None:
        try:
            for number, project in enumerate(texts, start=1):
                made = releases[project]
                request = RolloutRequest(
                    project=project,
                    environment="staging",
                    environment_file=FILE,
                    environment_text=texts[project],
                    deployment_id=number,
                    kind=DeploymentKind.DEPLOY,
                    release=record(number),
                    directory=made.directory,
                )
                report = await rollouts.rollout(request, print)
                assert report.state is DeploymentState.SUCCESS, report.reason
            # Both still serve, each its own release: the second did not replace the first.
            assert await asyncio.to_thread(versions_now, ports["alpha"], 10) == {"1.0.0": 10}
            assert await asyncio.to_thread(versions_now, ports["beta"], 10) == {"2.0.0": 10}
            for project in texts:
                found = await rollouts.instances(project, "staging")
                assert found is not None and len(found) == 1
            assert await rollouts.instances("gamma", "staging") is None
        finally:
            for project, text in texts.items():
                spec, _ = load_environment(text, FILE, name="staging")
                assert spec is not None
                await RolloutController(project_deploy_dir(settings, project)).shutdown(spec)

    asyncio.run(scenario())
    for project in texts:
        assert (project_deploy_dir(settings, project) / "environments" / "staging").is_dir()
