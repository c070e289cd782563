"""Structure of job sections the models do not keep: runs-on, container, services, snapshot,
reusable-workflow calls, and which keys a step may have.

Split from `workflow.py`; each function only reports through the shared `Reader`.
Positions follow actionlint: a missing or conflicting key is reported at the section's
key, a wrong value at the value.
"""

from __future__ import annotations

from shipline.spec._workflow_inputs import case_insensitive_duplicates
from shipline.spec.reader import Reader
from shipline.spec.yamlpos import Mapping, Node, Scalar, Sequence

CALL_JOB_KEYS = (
    "name",
    "uses",
    "with",
    "secrets",
    "needs",
    "if",
    "permissions",
    "concurrency",
    "strategy",
)
RUN_STEP_KEYS = (
    "continue-on-error",
    "env",
    "id",
    "if",
    "name",
    "run",
    "shell",
    "timeout-minutes",
    "working-directory",
)
ACTION_STEP_KEYS = (
    "continue-on-error",
    "env",
    "id",
    "if",
    "name",
    "timeout-minutes",
    "uses",
    "with",
)
_CONTAINER_KEYS = ("credentials", "env", "image", "options", "ports", "volumes")
_SERVICE_KEYS = (
    "command",
    "credentials",
    "entrypoint",
    "env",
    "image",
    "options",
    "ports",
    "volumes",
)
_TAGS = {Mapping: "!!map", Sequence: "!!seq"}


def check_job(r: Reader, key: Scalar, job: Mapping, path: str) -> None:
    """Everything about one job that `workflow._Loader.job` does not read into the model."""
    for name in ("env", "outputs", "services", "with", "secrets"):
        section = job.get(name)
        if isinstance(section, Mapping):
            case_insensitive_duplicates(r, section, name)
    strategy = job.get("strategy")
    matrix = strategy.get("matrix") if isinstance(strategy, Mapping) else None
    if isinstance(matrix, Mapping):
        case_insensitive_duplicates(r, matrix, "matrix")
    needs = job.get("needs")
    if isinstance(needs, Sequence) and not needs.items:
        r.error(needs, '"needs" section should not be empty', path=f"{path}.needs")
    environment = job.get("environment")
    if isinstance(environment, Mapping) and "name" not in environment:
        r.error(
            environment,
            'name is missing in "environment" section',
            path=f"{path}.environment",
        )
    uses = job.get("uses")
    if uses is not None:
        if isinstance(uses, Scalar) and uses.text == "":
            r.error(uses, "string should not be empty", path=f"{path}.uses")
        for k, _ in job.pairs:
            if k.text not in CALL_JOB_KEYS:
                allowed = ", ".join(f'"{a}"' for a in CALL_JOB_KEYS)
                r.error(
                    k,
                    f'when a reusable workflow is called with "uses", "{k.text}" is not '
                    f"available. only following keys are allowed: {allowed}",
                    path=f"{path}.{k.text}",
                )
        secrets = job.get("secrets")
        if isinstance(secrets, Scalar) and secrets.text != "inherit":
            r.error(
                secrets,
                'expected mapping node for secrets or "inherit" string node but found '
                f'"{secrets.text}" node',
                path=f"{path}.secrets",
            )
    else:
        for name in ("with", "secrets"):
            call_key = job.key_node(name)
            if call_key is not None:
                r.error(
                    call_key,
                    f'"{name}" is only available for a reusable workflow call with "uses" but '
                    f'"uses" is not found in job "{key.text}"',
                    path=f"{path}.{name}",
                )
    _runs_on(r, job.get("runs-on"), f"{path}.runs-on")
    for unsupported in ("container", "services"):
        unsupported_key = job.key_node(unsupported)
        if unsupported_key is not None:
            r.warning(
                unsupported_key,
                f'Shipline does not run "{unsupported}" yet (steps would run on the host '
                "instead): this job will fail at run time",
                code="unsupported",
                path=f"{path}.{unsupported}",
            )
    if "container" in job:
        _container(r, job.key_node("container"), job.get("container"), "container", path)
    services = job.get("services")
    if isinstance(services, Mapping):
        for service, spec in services.pairs:
            _container(r, service, spec, "services", f"{path}.services")
    elif isinstance(services, Scalar) and "${{" not in services.text:
        r.error(
            services,
            '"services" section is scalar node but mapping node is expected',
            path=f"{path}.services",
        )
    _snapshot(r, job.key_node("snapshot"), job.get("snapshot"), f"{path}.snapshot")
    steps = job.get("steps")
    if isinstance(steps, Scalar) and steps.value is None:
        r.error(
            steps,
            '"steps" section must be sequence node but got scalar node with "!!null" tag',
            path=f"{path}.steps",
        )


def check_step_keys(r: Reader, step: Mapping, path: str) -> None:
    """A `run` step and a `uses` step accept different keys; report the ones that do not fit."""
    allowed: tuple[str, ...]
    # With both, the key written last decides what the step is taken to be (as actionlint).
    kinds = [k.text for k, _ in step.pairs if k.text in ("run", "uses")]
    kind = kinds[-1] if kinds else None
    if kind == "run":
        allowed, what = RUN_STEP_KEYS, "step to run shell command"
    elif kind == "uses":
        allowed, what = ACTION_STEP_KEYS, "step to execute action"
    else:
        return
    for k, _ in step.pairs:
        if k.text not in allowed and k.text in (*RUN_STEP_KEYS, *ACTION_STEP_KEYS):
            names = ", ".join(f'"{a}"' for a in allowed)
            r.error(
                k,
                f'unexpected key "{k.text}" for {what}. expected one of {names}',
                path=f"{path}.{k.text}",
            )
    for name in ("env", "with"):
        section = step.get(name)
        if isinstance(section, Mapping):
            case_insensitive_duplicates(r, section, name)
            if not section.pairs:
                _empty_mapping(r, section, name, f"{path}.{name}")


def _runs_on(r: Reader, node: Node | None, path: str) -> None:
    if node is None:
        return
    if isinstance(node, Mapping):
        r.check_keys(node, ("group", "labels"), path, "runs-on")
        group = node.get("group")
        if isinstance(group, Scalar):
            _non_empty(r, group, f"{path}.group")
            _group_prefix(r, group, f"{path}.group")
        elif group is not None:
            r.error(
                group,
                f"expected scalar node for string value but found {_kind(group)} node with "
                f'"{_TAGS.get(type(group), "")}" tag',
                path=f"{path}.group",
            )
        labels = node.get("labels")
        if isinstance(labels, Mapping):
            r.error(
                labels,
                '"labels" section must be sequence node but got mapping node with "!!map" tag',
                path=f"{path}.labels",
            )
        elif labels is not None:
            _labels(r, labels, f"{path}.labels", "labels")
        return
    _labels(r, node, path, "runs-on")


def _labels(r: Reader, node: Node, path: str, section: str) -> None:
    if isinstance(node, Sequence):
        if not node.items:
            r.error(node, f'"{section}" section should not be empty', path=path)
        for item in node.items:
            if isinstance(item, Scalar) and item.text == "":
                r.error(item, "runner label should not be empty", path=path)
    elif isinstance(node, Scalar) and node.text == "":
        r.error(node, "runner label should not be empty", path=path)


def _group_prefix(r: Reader, group: Scalar, path: str) -> None:
    text = group.text
    if "/" not in text or "${{" in text:
        return
    prefix, _, rest = text.partition("/")
    if prefix not in ("organization", "enterprise", "org", "ent") or not rest or "/" in rest:
        r.error(
            group,
            f"invalid runs-on group name '{text}'. please use 'organization/' or "
            "'enterprise/' prefix to target a single runner group",
            path=path,
        )


def _container(r: Reader, key: Scalar | None, node: Node | None, section: str, path: str) -> None:
    where = key if key is not None else node
    if node is None or where is None:
        return
    cpath = (
        f"{path}.{key.text}" if key is not None and section == "services" else f"{path}.container"
    )
    if isinstance(node, Scalar):
        if node.text == "" and (node.value is not None or node.style == ""):
            r.error(node, "string should not be empty", path=cpath)
        return
    if not isinstance(node, Mapping):
        return
    if not node.pairs:
        _empty_mapping(
            r, node, section if section == "container" else key.text if key else "", cpath
        )
    r.check_keys(node, _CONTAINER_KEYS if section == "container" else _SERVICE_KEYS, cpath, section)
    image = node.get("image")
    if image is None:
        r.error(where, f'"image" is missing in "{section}" section', path=f"{cpath}.image")
    elif isinstance(image, Scalar) and image.text == "":
        r.error(image, "string should not be empty", path=f"{cpath}.image")
    for name in ("ports", "volumes"):
        value = node.get(name)
        for item in value.items if isinstance(value, Sequence) else []:
            if isinstance(item, Scalar) and item.text == "":
                r.error(item, "string should not be empty", path=f"{cpath}.{name}")
        if isinstance(value, Scalar) and "${{" not in value.text:
            tag = {bool: "!!bool", int: "!!int", float: "!!float"}.get(type(value.value), "!!str")
            r.error(
                value,
                f'"{name}" section must be sequence node but got scalar node with "{tag}" tag',
                path=f"{cpath}.{name}",
            )
    env = node.get("env")
    if isinstance(env, Scalar) and "${{" not in env.text:
        r.error(
            env,
            'expecting a single ${{...}} expression or mapping value for "env" section, but '
            "found plain text node",
            path=f"{cpath}.env",
        )
    _credentials(r, node, cpath)


def _credentials(r: Reader, container: Mapping, path: str) -> None:
    key = container.key_node("credentials")
    creds = container.get("credentials")
    if key is None or creds is None:
        return
    if isinstance(creds, Scalar) and "${{" in creds.text:
        return
    if isinstance(creds, Scalar) and creds.value is not None:
        r.error(
            creds,
            '"credentials" section is scalar node but mapping node is expected',
            path=f"{path}.credentials",
        )
    elif isinstance(creds, Mapping):
        if not creds.pairs:
            _empty_mapping(r, creds, "credentials", f"{path}.credentials")
        r.check_keys(creds, ("password", "username"), f"{path}.credentials", "credentials")
    elif isinstance(creds, Scalar):
        _empty_mapping(r, creds, "credentials", f"{path}.credentials")
    if not (isinstance(creds, Mapping) and "username" in creds and "password" in creds):
        r.error(
            key,
            'both "username" and "password" must be specified in "credentials" section',
            path=f"{path}.credentials",
        )


def _snapshot(r: Reader, key: Scalar | None, node: Node | None, path: str) -> None:
    if key is None or node is None:
        return
    if isinstance(node, Sequence):
        r.error(
            node,
            '"snapshot" section value must be string or mapping but found sequence node',
            path=path,
        )
    elif isinstance(node, Mapping):
        r.check_keys(node, ("if", "image-name", "version"), path, "snapshot")
        if "image-name" not in node:
            r.error(key, '"snapshot" section must have "image-name" configuration', path=path)
        for name in ("image-name", "version"):
            value = node.get(name)
            if isinstance(value, Scalar):
                _non_empty(r, value, f"{path}.{name}")
    elif isinstance(node, Scalar):
        _non_empty(r, node, path)


def _non_empty(r: Reader, node: Scalar, path: str) -> None:
    if node.text == "":
        r.error(node, "string should not be empty", path=path)


def _empty_mapping(r: Reader, node: Node, section: str, path: str) -> None:
    r.error(
        node,
        f'"{section}" section should not be empty. please remove this section if it\'s unnecessary',
        path=path,
    )


def _kind(node: Node) -> str:
    return (
        "mapping"
        if isinstance(node, Mapping)
        else "sequence"
        if isinstance(node, Sequence)
        else "scalar"
    )
