"""Shells for `run` steps: GitHub's templates (`bash --noprofile --norc -eo pipefail {0}`)."""

from __future__ import annotations

import functools
import shlex
import shutil

# name -> (command template, script file extension)
SHELLS: dict[str, tuple[str, str]] = {
    "bash": ("bash --noprofile --norc -eo pipefail {0}", ".sh"),
    "sh": ("sh -e {0}", ".sh"),
    "python": ("python {0}", ".py"),
    "pwsh": ("pwsh -command \". '{0}'\"", ".ps1"),
    "powershell": ("pwsh -command \". '{0}'\"", ".ps1"),
}
DEFAULT_SHELL = "bash"


class ShellError(ValueError):
    """A shell that cannot be used; the message is for the user."""


def resolve_shell(shell: str | None, path_env: str | None) -> tuple[list[str], str]:
    """argv with `{0}` where the script path goes, and the extension the script file wants.

    A custom shell is a command with `{0}`, e.g. `perl {0}`. Cached: every step of a job
    asks again with the same PATH.
    """
    argv, ext = _resolve_shell(shell, path_env)
    return list(argv), ext


@functools.lru_cache(maxsize=64)
def _resolve_shell(shell: str | None, path_env: str | None) -> tuple[tuple[str, ...], str]:
    name = (shell or DEFAULT_SHELL).strip()
    if name in SHELLS:
        template, ext = SHELLS[name]
        if name == "bash" and shell is None and not shutil.which("bash", path=path_env):
            template, ext = SHELLS["sh"]  # GitHub falls back to sh when bash is missing
    else:
        if "{0}" not in name:
            raise ShellError(
                f'unknown shell "{name}": use bash, sh, python, pwsh, or a command with {{0}} '
                "where the script path goes"
            )
        template, ext = name, ""
    argv = shlex.split(template)
    program = shutil.which(argv[0], path=path_env)
    if program is not None:
        argv[0] = program
    return tuple(argv), ext


def render(argv: list[str], script: str) -> tuple[str, ...]:
    return tuple(part.replace("{0}", script) for part in argv)
