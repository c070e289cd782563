"""Local action metadata (`action.yml`) for `uses: ./path` composite actions."""

from __future__ import annotations

from dataclasses import dataclass

from shipline.spec.diagnostics import Diagnostic, Severity, has_errors
from shipline.spec.models import StepSpec
from shipline.spec.reader import Reader
from shipline.spec.workflow import _Loader as StepLoader
from shipline.spec.yamlpos import Sequence, parse_yaml


@dataclass(frozen=True, slots=True)
class ActionInput:
    name: str
    default: str | None = None
    required: bool = False


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """An action's metadata: its inputs, outputs and (for composite actions) steps."""

    file: str
    name: str
    using: str
    inputs: tuple[ActionInput, ...] = ()
    outputs: tuple[tuple[str, str], ...] = ()
    steps: tuple[StepSpec, ...] = ()


def load_action(text: str, file: str) -> tuple[ActionSpec | None, list[Diagnostic]]:
    """Read an action.yml; composite steps are read with the workflow step rules."""
    root, diagnostics = parse_yaml(text, file)
    r = Reader(file)
    r.diagnostics.extend(diagnostics)
    top = r.mapping(root, "", "action") if root is not None else None
    if top is None:
        if root is None and not diagnostics:
            r.diagnostics.append(
                Diagnostic("action", Severity.ERROR, file, 1, 1, "the action file is empty")
            )
        return None, r.diagnostics
    r.check_keys(
        top,
        ("name", "author", "description", "inputs", "outputs", "runs", "branding"),
        "",
        "action",
        required=("runs",),
    )
    inputs: list[ActionInput] = []
    inputs_node = r.mapping(top.get("inputs"), "inputs", "inputs")
    for key, value in inputs_node.pairs if inputs_node else []:
        spec = r.mapping(value, f"inputs.{key.text}", "input")
        if spec is None:
            continue
        default = spec.get("default")
        required = spec.get("required")
        inputs.append(
            ActionInput(
                key.text,
                r.string(default, f"inputs.{key.text}.default", allow_null=True),
                bool(getattr(required, "value", False) is True),
            )
        )
    outputs: list[tuple[str, str]] = []
    outputs_node = r.mapping(top.get("outputs"), "outputs", "outputs")
    for key, value in outputs_node.pairs if outputs_node else []:
        spec = r.mapping(value, f"outputs.{key.text}", "output")
        if spec is not None:
            outputs.append(
                (
                    key.text,
                    r.string(spec.get("value"), f"outputs.{key.text}.value", allow_null=True) or "",
                )
            )
    runs = r.mapping(top.get("runs"), "runs", "runs")
    using = ""
    steps: list[StepSpec] = []
    if runs is not None:
        using = r.string(runs.get("using"), "runs.using") or ""
        steps_node = runs.get("steps")
        if isinstance(steps_node, Sequence):
            loader = StepLoader(r)
            for i, item in enumerate(steps_node.items):
                step = loader.step(i, item, f"runs.steps[{i}]")
                if step is not None:
                    if step.run is not None and not step.shell:
                        r.error(
                            item,
                            '"shell" is required for "run" steps of a composite action',
                            code="action",
                            path=f"runs.steps[{i}].shell",
                        )
                    steps.append(step)
    name = r.string(top.get("name"), "name", allow_null=True) or file
    spec_out = ActionSpec(file, name, using, tuple(inputs), tuple(outputs), tuple(steps))
    return (None if has_errors(r.diagnostics) else spec_out), r.diagnostics
