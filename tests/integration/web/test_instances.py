"""What the environments page asks the real deployment controller: the instances an
environment runs now, over a connection of its own to the environment's supervisor, and
nothing at all (no supervisor started) for an environment that never ran."""

from __future__ import annotations

import asyncio
from pathlib import Path

from shipline.deploy.controller import RolloutController
from shipline.engine.controller_rollouts import ControllerRollouts
from shipline.engine.rollouts import InstanceProbe
from tests.integration.deploy.helpers import environment, make_release, with_controller


def test_the_probe_reports_running_instances_and_starts_nothing(tmp_path: Path) -> None:
    env = environment("probed", "all-at-once", instances=2)
    release = make_release(tmp_path, "1.0.0")
    state = tmp_path / "state"

    async def body(controller: RolloutController) -> None:
        probe = ControllerRollouts(lambda _project: controller)
        assert isinstance(probe, InstanceProbe)
        assert await probe.instances("app", "probed") is None
        assert not (state / "environments" / "probed").exists()  # nothing was started
        assert (await controller.rollout(env, release, print)).ok
        found = await probe.instances("app", "probed")
        assert found is not None and len(found) == 2
        assert {(i.release, i.state, i.routed) for i in found} == {(release.id, "running", True)}
        assert len({i.port for i in found}) == 2
        assert await probe.instances("app", "never-deployed") is None

    asyncio.run(with_controller(state, env, body))
