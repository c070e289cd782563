"""`uses:` of a step: is the reference well formed, can Shipline run it, are its inputs right.

Shipline runs only its built-in actions (implemented in Python, no network) and local
actions (`uses: ./path`). Any other action is a WARNING: the file is valid GitHub Actions,
but Shipline fails that step when it runs. Inputs are checked for the built-ins (whose
inputs Shipline defines) and for local actions whose action.yml lint was given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shipline.spec.builtin_actions import unknown_action_message
from shipline.spec.lint._context import LintContext, is_expression
from shipline.spec.yamlpos import Mapping, Node, Scalar, parse_yaml


@dataclass(frozen=True, slots=True)
class ActionInputs:
    """The inputs an action declares: all names, and those required without a default."""

    name: str
    inputs: frozenset[str]
    required: frozenset[str] = frozenset()
    outputs: frozenset[str] | None = None


def _spec(name: str, inputs: str, required: str = "", outputs: str = "") -> ActionInputs:
    return ActionInputs(
        name, frozenset(inputs.split()), frozenset(required.split()), frozenset(outputs.split())
    )


_CHECKOUT = (
    "repository ref token ssh-key ssh-known-hosts ssh-strict ssh-user persist-credentials "
    "path clean filter sparse-checkout sparse-checkout-cone-mode fetch-depth fetch-tags "
    "show-progress lfs submodules set-safe-directory github-server-url"
)
_SETUP_PYTHON = (
    "python-version python-version-file cache architecture check-latest token "
    "cache-dependency-path update-environment allow-prereleases freethreaded pip-version "
    "pip-install"
)
_CACHE = "path key restore-keys upload-chunk-size enableCrossOsArchive fail-on-cache-miss"
BUILTIN_ACTIONS: dict[str, ActionInputs] = {
    "actions/checkout": _spec("actions/checkout", _CHECKOUT, "", "ref commit"),
    "actions/setup-python": _spec(
        "actions/setup-python", _SETUP_PYTHON, "", "python-version cache-hit python-path"
    ),
    "actions/cache": _spec(
        "actions/cache", f"{_CACHE} lookup-only save-always", "path key", "cache-hit"
    ),
    "actions/cache/restore": _spec(
        "actions/cache/restore",
        f"{_CACHE} lookup-only",
        "path key",
        "cache-hit cache-primary-key cache-matched-key",
    ),
    "actions/cache/save": _spec("actions/cache/save", _CACHE, "path key"),
    "actions/upload-artifact": _spec(
        "actions/upload-artifact",
        "name path if-no-files-found retention-days compression-level overwrite "
        "include-hidden-files",
        "path",
        "artifact-id artifact-url artifact-digest",
    ),
    "actions/download-artifact": _spec(
        "actions/download-artifact",
        "name path pattern merge-multiple github-token repository run-id artifact-ids",
        "",
        "download-path",
    ),
    "shipline/deploy": _spec("shipline/deploy", "artifact", "artifact", "deployment state"),
}
_REMOTE = re.compile(r"^(?P<repo>[^@]+)@(?P<ref>.*)$")
_RUNNERS = ("node12", "node16", "node20", "node24", "composite", "docker")
_DOCKER_ONLY = ("entrypoint", "pre-entrypoint", "post-entrypoint", "args", "env", "image")


def check_uses(ctx: LintContext, uses: Scalar, step: Mapping, path: str) -> None:
    """Check one step's `uses:` reference and the `with:` inputs given to it."""
    ref = uses.text.strip()
    if is_expression(ref):
        return
    if ref.startswith("./"):
        text = ctx.local_actions.get(ref.rstrip("/"))
        if text is not None:
            _check_local(ctx, uses, step, text)
        return
    if ref.startswith("docker://"):
        if ref.endswith(":"):
            ctx.error(uses, "action", f'tag of Docker action should not be empty: "{ref[:-1]}"')
            return
        _unknown(ctx, uses, ref, path)
        return
    match = _REMOTE.match(ref)
    formats = 'available formats are "{owner}/{repo}@{ref}" or "{owner}/{repo}/{path}@{ref}"'
    if match is None or not match.group("ref"):
        ctx.error(
            uses,
            "action",
            f'specifying action "{ref}" in invalid format because ref is missing. {formats}',
            path=path,
        )
        return
    repo = match.group("repo")
    parts = repo.split("/")
    if len(parts) < 2 or not all(parts[:2]):
        ctx.error(
            uses,
            "action",
            f'specifying action "{ref}" in invalid format because owner is missing. {formats}',
            path=path,
        )
        return
    builtin = BUILTIN_ACTIONS.get(repo.lower())
    if builtin is None:
        _unknown(ctx, uses, ref, path)
        return
    _check_inputs(ctx, uses, step, builtin, f'action "{ref}"')


def _unknown(ctx: LintContext, uses: Scalar, ref: str, path: str) -> None:
    ctx.warning(uses, "action", unknown_action_message(ref), path=path)


def _check_inputs(
    ctx: LintContext, uses: Scalar, step: Mapping, action: ActionInputs, what: str
) -> None:
    with_ = step.get("with")
    given: dict[str, Node] = {}
    if isinstance(with_, Mapping):
        given = {k.text: k for k, _ in with_.pairs}
    elif with_ is not None:
        return  # `with: ${{ ... }}`: only known at run time
    missing = sorted(n for n in action.required if n not in given)
    if missing:
        names = ", ".join(f'"{n}"' for n in sorted(action.required))
        ctx.error(
            uses,
            "action",
            f'missing input "{missing[0]}" which is required by {what}. '
            f"all required inputs are {names}",
        )
    available = ", ".join(f'"{n}"' for n in sorted(action.inputs))
    for name, key in given.items():
        if name not in action.inputs and not is_expression(name):
            ctx.error(
                key,
                "action",
                f'input "{name}" is not defined in {what}. available inputs are {available}',
            )


def _check_local(ctx: LintContext, uses: Scalar, step: Mapping, text: str) -> None:
    ref = uses.text.strip()
    root, problems = parse_yaml(text, ref)
    if problems or not isinstance(root, Mapping):
        ctx.error(uses, "action", f'could not read the metadata of local action "{ref}"')
        return
    name_node = root.get("name")
    name = name_node.text if isinstance(name_node, Scalar) else ref
    where = f'"{name}" action defined at "{ref}"'
    if root.get("description") is None:
        ctx.error(uses, "action", f"description is required in metadata of {where}")
    runs = root.get("runs")
    using = ""
    if isinstance(runs, Mapping):
        using_node = runs.get("using")
        using = using_node.text if isinstance(using_node, Scalar) else ""
        if using not in _RUNNERS or using in ("node12", "node16"):
            ctx.error(
                uses,
                "action",
                f'invalid runner name "{using}" at runs.using in {where}. valid runners are '
                '"composite", "docker", "node20", and "node24"',
            )
        if using != "docker":
            for key in _DOCKER_ONLY:
                if key in runs:
                    ctx.error(
                        uses,
                        "action",
                        f'"{key}" is not allowed in "runs" section because "{name}" is not '
                        "a Docker action",
                    )
    inputs: set[str] = set()
    required: set[str] = set()
    declared = root.get("inputs")
    if isinstance(declared, Mapping):
        for input_key, input_spec in declared.pairs:
            inputs.add(input_key.text)
            if isinstance(input_spec, Mapping):
                req = input_spec.get("required")
                no_default = input_spec.get("default") is None
                if isinstance(req, Scalar) and req.value is True and no_default:
                    required.add(input_key.text)
    _check_inputs(
        ctx, uses, step, ActionInputs(name, frozenset(inputs), frozenset(required)), where
    )
