"""Inputs of `workflow_dispatch` and the `workflow_call` interface (inputs, outputs, secrets).

Split from `workflow.py`: each input's keys, type, options and default are checked the way
GitHub checks them when the workflow is dispatched or called, so mistakes show at lint
time. Names are case insensitive, as GitHub compares them.
"""

from __future__ import annotations

from shipline.spec.models import DispatchInput
from shipline.spec.reader import Reader
from shipline.spec.yamlpos import Mapping, Node, Scalar, Sequence, to_python

DISPATCH_TYPES = ("string", "number", "boolean", "choice", "environment")
CALL_TYPES = ("boolean", "number", "string")
MAX_DISPATCH_INPUTS = 25
_DISPATCH_KEYS = ("description", "required", "default", "type", "options", "deprecationMessage")


def dispatch_inputs(r: Reader, key: Scalar, node: Node, path: str) -> tuple[DispatchInput, ...]:
    """`on.workflow_dispatch`: its typed inputs (unknown keys are ignored by GitHub)."""
    mapping = r.mapping(node, path, "workflow_dispatch")
    if mapping is None:
        return ()
    r.check_keys(mapping, ("inputs",), path, "workflow_dispatch", lenient=True)
    inputs = r.mapping(mapping.get("inputs"), f"{path}.inputs", "inputs")
    if inputs is None:
        return ()
    case_insensitive_duplicates(r, inputs, "inputs")
    if len(inputs.pairs) > MAX_DISPATCH_INPUTS:
        r.error(
            key,
            f'maximum number of inputs for "workflow_dispatch" event is {MAX_DISPATCH_INPUTS} '
            f"but {len(inputs.pairs)} inputs are provided",
            code="events",
            path=f"{path}.inputs",
        )
    return tuple(
        item
        for name, value in inputs.pairs
        if (item := _dispatch_input(r, name, value, f"{path}.inputs.{name.text}")) is not None
    )


def _dispatch_input(r: Reader, key: Scalar, value: Node, path: str) -> DispatchInput | None:
    spec = r.mapping(value, path, "inputs")
    if spec is None:
        return None
    name = key.text
    r.check_keys(spec, _DISPATCH_KEYS, path, "inputs")
    typ = r.string(spec.get("type"), f"{path}.type") or "string"
    if typ not in DISPATCH_TYPES:
        names = ", ".join(f'"{t}"' for t in DISPATCH_TYPES)
        r.error(
            spec.get("type") or spec,
            f'input type of workflow_dispatch event must be one of {names} but got "{typ}"',
            path=f"{path}.type",
        )
    options_node = spec.get("options")
    if isinstance(options_node, Sequence) and not options_node.items:
        r.error(options_node, '"options" section should not be empty', path=f"{path}.options")
    options = r.strings(options_node, f"{path}.options") or ()
    seen: set[str] = set()
    for item in options_node.items if isinstance(options_node, Sequence) else []:
        if isinstance(item, Scalar):
            if item.text == "":
                r.error(item, "string should not be empty", path=f"{path}.options")
            elif item.text in seen:
                r.error(
                    item,
                    f'option "{item.text}" is duplicated in options of "{name}" input',
                    code="events",
                    path=f"{path}.options",
                )
            seen.add(item.text)
    default_node = spec.get("default")
    default = to_python(default_node)
    if typ == "choice":
        if not options:
            r.error(
                key,
                f'input type of "{name}" is "choice" but "options" is not set',
                code="events",
                path=path,
            )
        elif default is not None and _text(default) not in options:
            r.error(
                default_node or spec,
                f'default value "{_text(default)}" of "{name}" input is not included in '
                f"its options {list(options)}",
                code="events",
                path=f"{path}.default",
            )
    elif options_node is not None:
        r.error(
            key,
            f'"options" can not be set to "{name}" input because its input type is not "choice"',
            code="events",
            path=path,
        )
    _check_default(r, default_node, typ, f'type of "{name}" input is "{typ}"', path)
    required = spec.get("required")
    _check_bool(r, required, f"{path}.required")
    return DispatchInput(
        name=name,
        type=typ,
        description=r.string(spec.get("description"), f"{path}.description", allow_null=True) or "",
        required=bool(isinstance(required, Scalar) and required.value is True),
        default=default,
        options=options,
    )


def workflow_call(r: Reader, node: Node, path: str) -> None:
    """`on.workflow_call`: the interface a reusable workflow declares."""
    mapping = r.mapping(node, path, "workflow_call")
    if mapping is None:
        return
    r.check_keys(mapping, ("inputs", "outputs", "secrets"), path, "workflow_call")
    inputs = r.mapping(mapping.get("inputs"), f"{path}.inputs", "inputs")
    if inputs is not None:
        case_insensitive_duplicates(r, inputs, "inputs")
        for key, value in inputs.pairs:
            _call_input(r, key, value, f"{path}.inputs.{key.text}")
    outputs = r.mapping(mapping.get("outputs"), f"{path}.outputs", "outputs")
    if outputs is not None:
        case_insensitive_duplicates(r, outputs, "outputs")
        for key, value in outputs.pairs:
            opath = f"{path}.outputs.{key.text}"
            spec = _spec_mapping(r, value, opath)
            _check_keys(r, spec, ("description", "value"), "outputs at workflow_call event")
            if spec is None or "value" not in spec:
                r.error(
                    spec if spec is not None else key,
                    f'"value" is missing at "{key.text}" output of workflow_call event',
                    path=opath,
                )
            elif isinstance(v := spec.get("value"), Scalar) and v.text == "":
                r.error(v, "string should not be empty", path=f"{opath}.value")
    secrets = r.mapping(mapping.get("secrets"), f"{path}.secrets", "secrets")
    if secrets is not None:
        case_insensitive_duplicates(r, secrets, "secrets")
        for key, value in secrets.pairs:
            spec = _spec_mapping(r, value, f"{path}.secrets.{key.text}")
            _check_keys(r, spec, ("description", "required"), '"secrets" section')
            if spec is not None:
                _check_bool(r, spec.get("required"), f"{path}.secrets.{key.text}.required")


def _call_input(r: Reader, key: Scalar, value: Node, path: str) -> None:
    spec = _spec_mapping(r, value, path)
    _check_keys(
        r, spec, ("default", "description", "required", "type"), "inputs at workflow_call event"
    )
    type_node = spec.get("type") if spec is not None else None
    if spec is not None:
        _check_bool(r, spec.get("required"), f"{path}.required")
    if type_node is None:
        r.error(
            spec if spec is not None else key,
            f'"type" is missing at "{key.text}" input of workflow_call event',
            path=path,
        )
        return
    typ = r.string(type_node, f"{path}.type")
    if typ is None:
        return
    if typ not in CALL_TYPES:
        r.error(
            type_node,
            f'invalid value "{typ}" for input type of workflow_call event. it must be one of '
            '"boolean", "number", or "string"',
            path=f"{path}.type",
        )
        return
    assert spec is not None
    required = spec.get("required")
    default_node = spec.get("default")
    what = f'input of workflow_call event "{key.text}" is typed as {typ}'
    _check_default(r, default_node, typ, what, path)
    if isinstance(required, Scalar) and required.value is True and default_node is not None:
        r.warning(
            default_node,
            f'input "{key.text}" of workflow_call event has the default value '
            f'"{_text(to_python(default_node))}", but it is also required. if an input is '
            "marked as required, its default value will never be used",
            code="events",
            path=f"{path}.default",
        )


def _spec_mapping(r: Reader, value: Node, path: str) -> Mapping | None:
    if isinstance(value, Scalar) and value.value is None:
        return None
    return r.mapping(value, path, path.rsplit(".", 1)[-1])


def _check_keys(r: Reader, spec: Mapping | None, allowed: tuple[str, ...], what: str) -> None:
    if spec is None:
        return
    for key, _ in spec.pairs:
        if key.text not in allowed:
            names = ", ".join(f'"{k}"' for k in allowed)
            r.error(key, f'unexpected key "{key.text}" for {what}. expected one of {names}')


def _check_bool(r: Reader, node: Node | None, path: str) -> None:
    if isinstance(node, Scalar) and not isinstance(node.value, bool) and "${{" not in node.text:
        r.error(
            node,
            'expecting a single ${{...}} expression or boolean literal "true" or "false", '
            "but found plain text node",
            path=path,
        )


def _check_default(r: Reader, node: Node | None, typ: str, what: str, path: str) -> None:
    if not isinstance(node, Scalar) or node.value is None or "${{" in node.text:
        return
    if typ == "number":
        try:
            float(node.text)
        except ValueError:
            r.error(
                node,
                f'{what} but its default value "{node.text}" cannot be parsed as a float number',
                code="events",
                path=f"{path}.default",
            )
    elif typ == "boolean" and node.text.lower() not in ("true", "false"):
        r.error(
            node,
            f'{what}. its default value must be true or false but got "{node.text}"',
            code="events",
            path=f"{path}.default",
        )


def case_insensitive_duplicates(r: Reader, mapping: Mapping, section: str) -> None:
    """Keys that differ only in case name the same thing on GitHub: report the later one."""
    seen: dict[str, Scalar] = {}
    for key, _ in mapping.pairs:
        low = key.text.lower()
        if low in seen and seen[low].text != key.text:
            first = seen[low]
            r.error(
                key,
                f'key "{key.text}" is duplicated in "{section}" section. previously defined at '
                f"line:{first.line},col:{first.col}. note that this key is case insensitive",
            )
        seen.setdefault(low, key)


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)
