"""Steps and what they run: actions, shells, workflow commands, env names, credentials.

- `uses:`: the format of the reference; an action that is not one of Shipline's built-ins
  is a warning (Shipline fails that step at run time); local actions given to lint are
  checked for required and unknown inputs (`actions.py`);
- `shell:`: a name the runner's OS knows (or a custom `command {0}` template);
- `run:`: the removed `::set-output`, `::save-state`, `::set-env` and `::add-path` commands;
- `env:`: variable names without `=`, `&` or spaces;
- container and service `credentials.password` written in clear text.
"""

from __future__ import annotations

import re

from shipline.spec.lint._context import LintContext, is_expression, string_value
from shipline.spec.lint.actions import check_uses
from shipline.spec.yamlpos import Mapping, Node, Scalar, Sequence

_COMMANDS = {
    "set-output": 'use `echo "{name}={value}" >> $GITHUB_OUTPUT` instead',
    "save-state": 'use `echo "{name}={value}" >> $GITHUB_STATE` instead',
    "set-env": 'use `echo "{name}={value}" >> $GITHUB_ENV` instead',
    "add-path": 'use `echo "{path}" >> $GITHUB_PATH` instead',
}
_COMMAND = re.compile(r"::(set-output|save-state|set-env|add-path)\s*(?:\s[^:]*)?::")
UNIX_SHELLS = ("bash", "pwsh", "python", "sh")
WINDOWS_SHELLS = ("bash", "cmd", "powershell", "pwsh", "python")


def check(ctx: LintContext) -> None:
    """Check every step of every job, and the workflow- and job-level envs and shells."""
    _check_env(ctx, ctx.root.get("env"), "env")
    _check_defaults_shell(ctx, ctx.root, None, "defaults")
    for key, job in ctx.jobs():
        path = f"jobs.{key.text}"
        os_name = _runner_os(job)
        _check_env(ctx, job.get("env"), f"{path}.env")
        _check_defaults_shell(ctx, job, os_name, f"{path}.defaults")
        _check_credentials(ctx, job)
        for i, step in ctx.steps(job):
            spath = f"{path}.steps[{i}]"
            _check_env(ctx, step.get("env"), f"{spath}.env")
            shell = step.get("shell")
            if isinstance(shell, Scalar):
                _check_shell(ctx, shell, os_name, f"{spath}.shell")
            run = step.get("run")
            if isinstance(run, Scalar) and isinstance(run.value, str):
                _check_commands(ctx, run, f"{spath}.run")
            uses = step.get("uses")
            if isinstance(uses, Scalar) and uses.value is not None:
                check_uses(ctx, uses, step, f"{spath}.uses")


def _runner_os(job: Mapping) -> str | None:
    """ "windows", "macos", "linux" when `runs-on` says so literally, else None."""
    runs_on = job.get("runs-on")
    labels: list[str] = []
    if isinstance(runs_on, Scalar):
        labels = [runs_on.text]
    elif isinstance(runs_on, Mapping):
        inner = runs_on.get("labels")
        if isinstance(inner, Scalar):
            labels = [inner.text]
        elif isinstance(inner, Sequence):
            labels = [i.text for i in inner.items if isinstance(i, Scalar)]
    elif isinstance(runs_on, Sequence):
        labels = [i.text for i in runs_on.items if isinstance(i, Scalar)]
    for label in labels:
        low = label.lower()
        if is_expression(low):
            return None
        if low.startswith("windows"):
            return "windows"
        if low.startswith("macos"):
            return "macos"
        if low.startswith("ubuntu") or low == "linux":
            return "linux"
    return None


def _check_defaults_shell(ctx: LintContext, owner: Mapping, os_name: str | None, path: str) -> None:
    defaults = owner.get("defaults")
    if isinstance(defaults, Mapping):
        run = defaults.get("run")
        if isinstance(run, Mapping):
            shell = run.get("shell")
            if isinstance(shell, Scalar):
                _check_shell(ctx, shell, os_name, f"{path}.run.shell")


def _check_shell(ctx: LintContext, node: Scalar, os_name: str | None, path: str) -> None:
    name = string_value(node)
    if not name or is_expression(name) or " " in name.strip():
        return  # a custom shell: `command [options] {0}`
    if os_name == "windows":
        allowed: tuple[str, ...] = WINDOWS_SHELLS
        where = " on Windows"
    elif os_name in ("linux", "macos"):
        allowed = UNIX_SHELLS
        where = " on macOS or Linux"
    else:
        allowed = tuple(sorted({*UNIX_SHELLS, *WINDOWS_SHELLS}))
        where = ""
    if name.lower() not in allowed:
        names = ", ".join(f'"{s}"' for s in allowed)
        known = name.lower() in UNIX_SHELLS or name.lower() in WINDOWS_SHELLS
        ctx.error(
            node,
            "shell-name",
            f'shell name "{name}" is invalid{where if known else ""}. available names are {names}',
            path=path,
        )


def _check_commands(ctx: LintContext, run: Scalar, path: str) -> None:
    for match in _COMMAND.finditer(run.text):
        command = match.group(1)
        ctx.error(
            run,
            "deprecated-commands",
            f'workflow command "{command}" was deprecated. {_COMMANDS[command]}: '
            "https://docs.github.com/en/actions/using-workflows/workflow-commands-for-github-actions",
            path=path,
        )


def _check_env(ctx: LintContext, env: Node | None, path: str) -> None:
    if not isinstance(env, Mapping):
        return
    for key, _ in env.pairs:
        name = key.text
        if is_expression(name):
            continue
        if any(c in name for c in "&= \t"):
            ctx.error(
                key,
                "env-var",
                f'environment variable name "{name}" is invalid. '
                "'&', '=' and spaces should not be contained",
                path=f"{path}.{name}",
            )


def _check_credentials(ctx: LintContext, job: Mapping) -> None:
    places: list[tuple[Node | None, str]] = [(job.get("container"), '"container" section')]
    services = job.get("services")
    if isinstance(services, Mapping):
        places += [(v, f'"{k.text}" service') for k, v in services.pairs]
    for place, what in places:
        if not isinstance(place, Mapping):
            continue
        credentials = place.get("credentials")
        if not isinstance(credentials, Mapping):
            continue
        password = credentials.get("password")
        text = string_value(password)
        if password is not None and text and not is_expression(text):
            ctx.error(
                password,
                "credentials",
                f'"password" section in {what} should be specified via secrets. '
                "do not put password value directly",
            )
