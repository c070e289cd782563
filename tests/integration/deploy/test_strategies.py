"""The example service on 4 local instances behind the router, under continuous load.

Each strategy replaces version 1.0.0 with 2.0.0 while a load generator sends requests
through the router: not one request fails, and afterwards every response reports 2.0.0.
A release that fails its health check, or its canary analysis, is rolled back
automatically while the old version keeps serving.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shipline.deploy.controller import RolloutController
from shipline.deploy.types import Outcome, Release
from shipline.domain.deployments import DeploymentKind, DeploymentState, ReleaseRecord
from shipline.engine.controller_rollouts import ControllerRollouts
from shipline.engine.rollouts import RolloutRequest
from shipline.spec.environment import load_environment
from tests.integration.deploy.helpers import (
    LoadGenerator,
    environment,
    environment_text,
    make_release,
    versions_now,
    with_controller,
)

pytestmark = pytest.mark.slow

STRATEGIES = {
    "all-at-once": "all-at-once",
    "rolling": "{rolling: {batch_size: 2, min_healthy: 3}}",
    "blue-green": "{blue-green: {keep_old: 1s}}",
    "canary": "{canary: {weights: [25, 50, 100], bake: 1s, analysis: "
    "{max_error_rate: 0.05, min_requests: 5, interval: 1s}}}",
}


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_zero_failed_requests_and_every_response_new(tmp_path: Path, strategy: str) -> None:
    env = environment(f"s-{strategy}", STRATEGIES[strategy])
    assert env.traffic is not None
    port = env.traffic.port
    v1, v2 = make_release(tmp_path, "1.0.0"), make_release(tmp_path, "2.0.0")
    log: list[str] = []

    async def body(controller: RolloutController) -> None:
        first = await controller.rollout(env, v1, log.append)
        assert first.outcome == Outcome.SUCCEEDED, first.reason
        with LoadGenerator(port) as load:
            await asyncio.sleep(0.5)
            result = await controller.rollout(env, v2, log.append)
            await asyncio.sleep(0.5)
        assert result.outcome == Outcome.SUCCEEDED, (result.reason, log)
        assert load.failures == []
        assert load.versions["1.0.0"] > 0 and load.versions["2.0.0"] > 0
        assert await asyncio.to_thread(versions_now, port) == {"2.0.0": 40}
        state = await controller.state(env)
        assert state.serving is not None and state.serving.id == v2.id
        assert sorted(i.release for i in state.instances) == [v2.id] * 4
        assert all(i.routed for i in state.instances)
        if strategy == "canary":
            assert any("traffic: 25% to 2.0.0" in m for m in log)
            assert any("analysis passed" in m for m in log)

    asyncio.run(with_controller(tmp_path / "state", env, body))


def test_release_failing_health_is_rolled_back_while_old_serves(tmp_path: Path) -> None:
    env = environment("broken", "all-at-once")
    assert env.traffic is not None
    port = env.traffic.port
    v1 = make_release(tmp_path, "1.0.0")
    broken = make_release(tmp_path, "2.0.0", broken=True)

    async def body(controller: RolloutController) -> None:
        assert (await controller.rollout(env, v1, print)).ok
        with LoadGenerator(port) as load:
            result = await controller.rollout(env, broken, print)
            await asyncio.sleep(0.3)
        assert result.outcome == Outcome.ROLLED_BACK
        assert result.cause == "health"
        assert result.reason is not None and "answered 500, expected 200" in result.reason
        assert result.rolled_back_to == v1.id and result.serving == v1.id
        assert load.failures == []
        assert set(load.versions) == {"1.0.0"}
        assert await asyncio.to_thread(versions_now, port) == {"1.0.0": 40}
        state = await controller.state(env)
        assert [i.release for i in state.instances] == [v1.id] * 4

    asyncio.run(with_controller(tmp_path / "state", env, body))


def test_canary_failing_analysis_is_rolled_back(tmp_path: Path) -> None:
    strategy = (
        "{canary: {weights: [20, 100], bake: 3s, analysis: "
        "{max_error_rate: 0.05, min_requests: 10, interval: 1s}}}"
    )
    env = environment("analysis", strategy)
    assert env.traffic is not None
    v1 = make_release(tmp_path, "1.0.0")
    # Without its appspec: its ValidateService hook would catch the failures first.
    bad = make_release(tmp_path, "2.0.0", fail_rate=0.5, appspec=False)

    async def body(controller: RolloutController) -> None:
        assert (await controller.rollout(env, v1, print)).ok
        assert env.traffic is not None
        with LoadGenerator(env.traffic.port) as load:
            result = await controller.rollout(env, bad, print)
        assert result.outcome == Outcome.ROLLED_BACK, result.reason
        assert result.cause == "analysis"
        assert result.reason is not None and "canary error rate" in result.reason
        # Only the canary's share of requests met the failing release.
        assert 0 < len(load.failures) < load.requests * 0.3
        assert await asyncio.to_thread(versions_now, env.traffic.port) == {"1.0.0": 40}

    asyncio.run(with_controller(tmp_path / "state", env, body))


def test_slower_canary_is_rolled_back_and_a_healthy_one_passes(tmp_path: Path) -> None:
    """Latency compared with the stable version over the same window: a canary 150 ms
    slower than stable is rolled back, and the control plane's report (what the deployment
    records) carries the cause, the analysis' reason and the release it went back to; a
    canary as fast as stable is promoted."""
    text = environment_text(
        "{canary: {weights: [25, 100], bake: 3s, analysis: "
        "{max_p95_ms: 50, max_error_rate: 0.05, min_requests: 10, interval: 1s}}}"
    )
    file = ".shipline/environments/slowcanary.yml"
    env, _ = load_environment(text, file)
    assert env is not None and env.traffic is not None
    v1 = make_release(tmp_path, "1.0.0")
    v1 = Release("1", v1.version, v1.directory)
    slow = make_release(tmp_path, "2.0.0", slow_ms=150, appspec=False)
    good = make_release(tmp_path, "3.0.0", appspec=False)

    async def body(controller: RolloutController) -> None:
        assert env.traffic is not None
        assert (await controller.rollout(env, v1, print)).ok
        request = RolloutRequest(
            project="app",
            environment="slowcanary",
            environment_file=file,
            environment_text=text,
            deployment_id=7,
            kind=DeploymentKind.DEPLOY,
            release=_record(2),
            directory=slow.directory,
            previous=_record(1),
        )
        with LoadGenerator(env.traffic.port) as load:
            report = await ControllerRollouts(lambda _project: controller).rollout(request, print)
        assert report.state is DeploymentState.ROLLED_BACK, report.reason
        assert (report.cause, report.rolled_back_to) == ("analysis", 1)
        assert "canary p95" in report.reason and "stable:" in report.reason, report.reason
        assert load.failures == []
        assert await asyncio.to_thread(versions_now, env.traffic.port) == {"1.0.0": 40}
        with LoadGenerator(env.traffic.port) as load:
            passed = await controller.rollout(env, good, print)
        assert passed.ok, passed.reason
        assert any(e.startswith("analysis passed") for e in passed.events)
        assert load.failures == []
        assert await asyncio.to_thread(versions_now, env.traffic.port) == {"3.0.0": 40}

    asyncio.run(with_controller(tmp_path / "state", env, body))


def test_a_canary_without_enough_requests_is_inconclusive_and_rolled_back(
    tmp_path: Path,
) -> None:
    """No traffic reaches the canary: after its bake and one more interval the analysis is
    inconclusive, which fails the step (a canary that cannot be judged is not promoted)."""
    strategy = (
        "{canary: {weights: [50, 100], bake: 1s, analysis: "
        "{max_error_rate: 0.05, min_requests: 10, interval: 1s}}}"
    )
    env = environment("quiet", strategy, instances=2)
    v1 = make_release(tmp_path, "1.0.0")
    v2 = make_release(tmp_path, "2.0.0", appspec=False)

    async def body(controller: RolloutController) -> None:
        assert (await controller.rollout(env, v1, print)).ok
        result = await controller.rollout(env, v2, print)
        assert result.outcome == Outcome.ROLLED_BACK, result.reason
        assert result.cause == "analysis"
        assert result.reason is not None
        assert result.reason.startswith("analysis inconclusive: canary: 0 request(s)")
        assert any(e.startswith("analysis failed: analysis inconclusive") for e in result.events)

    asyncio.run(with_controller(tmp_path / "state", env, body))


def _record(release_id: int) -> ReleaseRecord:
    return ReleaseRecord(
        id=release_id,
        project_id=1,
        artifact="app",
        digest="sha256:00",
        provenance="sha256:00",
        run_id=release_id,
        job_key="build",
        ref="refs/heads/main",
        sha=f"{release_id:040x}",
        builder="urn:test",
        created_by="alice",
        created_at=datetime.now(UTC),
    )


def test_first_release_failing_has_nothing_to_roll_back_to(tmp_path: Path) -> None:
    env = environment("first", "all-at-once", instances=2)
    broken = make_release(tmp_path, "1.0.0", broken=True)

    async def body(controller: RolloutController) -> None:
        result = await controller.rollout(env, broken, print)
        assert result.outcome == Outcome.FAILED
        assert result.reason is not None and "nothing to roll back to" in result.reason
        assert (await controller.state(env)).instances == ()

    asyncio.run(with_controller(tmp_path / "state", env, body))


def test_returning_to_an_earlier_release_keeps_serving(tmp_path: Path) -> None:
    """A rollback on demand is a rollout of the earlier release (the control plane picks it
    from its release history); the supervisor's state keeps only what re-adoption needs."""
    env = environment("manual", "all-at-once", instances=2)
    assert env.traffic is not None
    port = env.traffic.port
    v1, v2 = make_release(tmp_path, "1.0.0"), make_release(tmp_path, "2.0.0")

    async def body(controller: RolloutController) -> None:
        assert (await controller.rollout(env, v1, print)).ok
        assert (await controller.rollout(env, v2, print)).ok
        with LoadGenerator(port) as load:
            back = await controller.rollout(env, v1, print)
        assert back.ok and back.serving == v1.id
        assert load.failures == []
        assert await asyncio.to_thread(versions_now, port) == {"1.0.0": 40}
        state = await controller.state(env)
        assert state.serving is not None and state.serving.id == v1.id
        meta = await (await controller.fleet(env)).meta()
        assert set(meta) == {"serving"}

    asyncio.run(with_controller(tmp_path / "state", env, body))
