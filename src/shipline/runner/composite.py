"""Local composite actions (`uses: ./path`): their steps run inside the calling step."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from shipline.domain.status import Conclusion
from shipline.runner.ports import ActionFailed
from shipline.spec.action import load_action

if TYPE_CHECKING:
    from shipline.runner.job import _JobRun
    from shipline.runner.model import StepResult
    from shipline.spec.models import StepSpec


def find_action_file(folder: Path) -> Path | None:
    for name in ("action.yml", "action.yaml"):
        if (folder / name).is_file():
            return folder / name
    return None


async def run_composite(
    run: _JobRun,
    step: StepSpec,
    result: StepResult,
    inputs: dict[str, str],
    step_env: dict[str, str],
) -> Conclusion:
    """Run the steps of the composite action at `step.uses` with its own `inputs` and
    `steps` contexts; the action's outputs become the calling step's outputs."""
    uses = step.uses or ""
    workspace = run.env.workspace.resolve()
    folder = (workspace / uses).resolve()
    if not folder.is_relative_to(workspace):
        raise ActionFailed(f"local action {uses!r} is outside the workspace")
    file = find_action_file(folder)
    if file is None:
        raise ActionFailed(
            f"local action {uses!r}: no action.yml or action.yaml in {folder} "
            "(did a checkout step run first?)"
        )
    spec, diagnostics = load_action(file.read_text(encoding="utf-8"), uses + "/" + file.name)
    if spec is None:
        details = "; ".join(d.format() for d in diagnostics if d.severity == "error")
        raise ActionFailed(f"local action {uses!r} is invalid: {details}")
    if spec.using != "composite":
        raise ActionFailed(
            f"local action {uses!r} uses {spec.using!r}; Shipline runs composite local actions only"
        )
    merged: dict[str, object] = {}
    for item in spec.inputs:
        if item.name in inputs:
            merged[item.name] = inputs[item.name]
        elif item.default is not None:
            merged[item.name] = run.evaluator.string(
                item.default, f"inputs.{item.name}", step.pos.line
            )
        elif item.required:
            raise ActionFailed(f"local action {uses!r}: input {item.name!r} is required")
        else:
            merged[item.name] = ""
    saved = (run.contexts["inputs"], run.contexts["steps"], run.steps_ctx, run.base_env)
    inner_steps: dict[str, object] = {}
    run.contexts["inputs"] = merged
    run.contexts["steps"] = inner_steps
    run.steps_ctx = inner_steps
    run.base_env = {**run.base_env, **step_env, "GITHUB_ACTION_PATH": str(folder)}
    failed = False
    try:
        for inner in spec.steps:
            inner_result = await run._step(inner)
            if inner_result.conclusion is Conclusion.FAILURE:
                failed = True
                run.state.failed = True
        for name, text in spec.outputs:
            result.outputs[name] = run.evaluator.string(text, f"outputs.{name}", step.pos.line)
    finally:
        run.contexts["inputs"], run.contexts["steps"], run.steps_ctx, run.base_env = saved
        run.contexts["steps"] = run.steps_ctx
        if not failed:
            run.state.failed = any(s.conclusion is Conclusion.FAILURE for s in run.result.steps)
    return Conclusion.FAILURE if failed else Conclusion.SUCCESS
