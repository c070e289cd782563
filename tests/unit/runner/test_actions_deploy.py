"""`shipline/deploy`: inputs, no server, and how the deployment's outcome ends the step."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from shipline.runner.actions import builtin_action
from shipline.runner.ports import ActionFailed, DeployOutcome, LogFn
from tests.unit.runner.action_calls import Run


class Answer:
    """A `Deployer` that answers with a given outcome after two progress lines."""

    def __init__(self, outcome: DeployOutcome) -> None:
        self.outcome = outcome
        self.asked: list[str] = []

    async def deploy(self, artifact: str, log: LogFn) -> DeployOutcome:
        self.asked.append(artifact)
        log("verified")
        log("rolling out")
        return self.outcome


def _run(tmp_path: Path, inputs: dict[str, str], deployer: Answer | None) -> list[str]:
    job = Run(tmp_path).job()
    call = replace(job.call("shipline/deploy@v1", inputs), deployer=deployer)
    action = builtin_action("shipline/deploy@v1")
    assert action is not None
    asyncio.run(action.run(call))
    assert call.outputs.get("state") == (deployer.outcome.state if deployer else None)
    return job.logs


def test_without_a_server_the_step_fails_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(ActionFailed, match="needs a Shipline server"):
        _run(tmp_path, {"artifact": "app"}, None)
    with pytest.raises(ActionFailed, match="input 'artifact' is required"):
        _run(tmp_path, {}, Answer(DeployOutcome(1, "success")))


def test_success_and_skipped_pass_anything_else_fails(tmp_path: Path) -> None:
    done = Answer(DeployOutcome(7, "success"))
    logs = _run(tmp_path / "a", {"artifact": "app"}, done)
    assert done.asked == ["app"]
    assert logs[-3:] == ["verified", "rolling out", "Deployment 7 succeeded"]
    skipped = _run(tmp_path / "b", {"artifact": "app"}, Answer(DeployOutcome(8, "skipped", "x")))
    assert skipped[-1] == "Warning: deployment 8 was skipped: x"
    with pytest.raises(ActionFailed, match="deployment 9 rolled back: health check failed"):
        _run(
            tmp_path / "c",
            {"artifact": "app"},
            Answer(DeployOutcome(9, "rolled_back", "health check failed")),
        )
    with pytest.raises(ActionFailed, match=r"^deployment refused: no signed provenance"):
        _run(
            tmp_path / "d",
            {"artifact": "app"},
            Answer(DeployOutcome(None, "refused", "no signed provenance")),
        )
