"""The bash driver script that runs a buildspec's phases the way AWS CodeBuild does.

The runner writes `driver_script(spec)` to a file and runs it with bash in the job's
workspace; its exit status is the job's result (0 or 1) and its output is the job's log.
The semantics are those of buildspec version 0.2, from CodeBuild's "Build specification
reference" and "Build phase transitions" pages:

- All commands of all phases run in one shell, so `cd`, variables (exported or not) and
  functions carry over from one command to the next and across phases.
- A command fails when its exit status is not 0. The rest of its phase's `commands` is
  skipped, the phase's `finally` commands run anyway, and the phase fails; `finally` stops
  at its own first failure and fails the phase too.
- After a failed phase, `on-failure: CONTINUE` goes on to the next phase and `ABORT` ends
  the build. Without `on-failure`, CodeBuild's transitions apply: a failed install or
  pre_build ends the build, a failed build still runs post_build.
- `exit N` inside a command ends that command with status N, not the build (CodeBuild runs
  the next command after `exit 0`). `set -e` inside a command stops that command at its
  first failing line; the build goes on with the phase rules above.
- `env.variables` are exported before install with their values taken literally (AWS: a
  value of `$PATH:/x` is the text `$PATH:/x`). parameter-store and secrets-manager values
  are not in the script: the runner resolves them and passes them in the environment, so
  secret values never reach the script; a missing one fails the build before install.
- The log looks like CodeBuild's: `[Container] Entering phase BUILD`, `[Container] Running
  command ...`, `[Container] Phase complete: BUILD State: FAILED`, on standard output.

Commands are embedded with POSIX single quoting (`shlex.quote`), so quotes, `$`, backslashes
and newlines reach the shell exactly as written. Shipline always uses bash, also for
`shell: /bin/sh` (the loader warns about it); `run-as` and `runtime-versions` are not
applied (the image provides the runtimes, as on CodeBuild's own custom images).
"""

from __future__ import annotations

import re
import shlex

from shipline.spec.buildspec import PHASE_NAMES, BuildArtifacts, BuildPhase, BuildspecSpec

# Phases whose failure ends the build when `on-failure` is not given ("Build phase
# transitions"): a failed build still runs post_build, and nothing follows post_build.
_ENDS_BUILD_BY_DEFAULT = frozenset({"install", "pre_build"})
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

_PRELUDE = r"""
# Commands run through eval in this one shell, so cd and variables carry over.
shopt -s expand_aliases
# `exit N` in a command ends that command with status N, as on CodeBuild, not the build.
alias exit=return
# Commands run inside a function; a top-level `declare` in one must still be global.
alias declare='declare -g' typeset='typeset -g'
__sl_failed=0 __sl_stop=0 __sl_rc=0 __sl_phase_rc=0 __sl_phase_cmd=
export CODEBUILD_BUILD_SUCCEEDING=1
: "${CODEBUILD_SRC_DIR:=$PWD}"
export CODEBUILD_SRC_DIR

__sl_eval() {
  eval "$__sl_cmd"
}

# Runs one command and leaves its status in __sl_rc. With `set -e` on, the ERR trap stops
# the command at its first failing line (what errexit does to a script) but returns here
# instead of letting errexit end the whole build; the trap walks up through any shell
# functions the command called.
__sl_run() {
  __sl_cmd=$1 __sl_rc=0
  set -E
  trap '__sl_s=$?; case $- in *e*) [ "$__sl_rc" -ne 0 ] || __sl_rc=$__sl_s
    [ "${FUNCNAME[0]}" = __sl_eval ] && return 0; return 1 ;; esac' ERR
  __sl_eval </dev/null
  __sl_s=$?
  trap - ERR
  if [ "$__sl_rc" -eq 0 ]; then __sl_rc=$__sl_s; fi
}

# Prints $1 as the driver's log lines, each marked like CodeBuild's own, so that a
# multi-line command cannot be mistaken for the commands' output.
__sl_log() {
  __sl_text=${1%$'\n'}
  printf '[Container] %s\n' "${__sl_text//$'\n'/$'\n[Container] '}"
}

# $1: the phase as CodeBuild names it in logs.
__sl_enter() {
  __sl_phase_rc=0 __sl_phase_cmd=
  __sl_log "Entering phase $1"
}

# Runs the commands in order; the first failure fails the phase and skips the rest.
__sl_commands() {
  for __sl_c in "$@"; do
    __sl_log "Running command $__sl_c"
    __sl_run "$__sl_c"
    if [ "$__sl_rc" -ne 0 ]; then
      __sl_log "Command did not exit successfully $__sl_c exit status $__sl_rc"
      if [ "$__sl_phase_rc" -eq 0 ]; then __sl_phase_rc=$__sl_rc __sl_phase_cmd=$__sl_c; fi
      return 0
    fi
  done
}

# $1: the phase; $2: "stop" when its failure ends the build, "continue" otherwise.
__sl_complete() {
  if [ "$__sl_phase_rc" -eq 0 ]; then
    __sl_log "Phase complete: $1 State: SUCCEEDED"
    return 0
  fi
  __sl_failed=1 CODEBUILD_BUILD_SUCCEEDING=0
  __sl_log "Phase complete: $1 State: FAILED"
  __sl_log "Phase context status code: COMMAND_EXECUTION_ERROR Message: Error while executing \
command: $__sl_phase_cmd. Reason: exit status $__sl_phase_rc"
  if [ "$2" = stop ]; then __sl_stop=1; fi
}

# $1: a variable the runner must provide; $2: where its value comes from.
__sl_need() {
  if [ -z "${!1+set}" ]; then
    __sl_log "Phase context status code: Decrypted Variables Error Message: $1 ($2) was not \
provided to the build"
    __sl_failed=1 __sl_stop=1
  fi
}
""".lstrip("\n")

_EPILOGUE = """
if [ "$__sl_failed" -ne 0 ]; then builtin exit 1; fi
builtin exit 0
"""


def driver_script(spec: BuildspecSpec) -> str:
    """The bash script that runs `spec`'s phases; see the module docstring for semantics.

    Raises ValueError for a spec the loader would have refused (a variable name that is not
    a shell name, an unknown phase, a NUL character): a caller's bug, not a user's mistake.
    """
    _check(spec)
    file = " ".join(spec.file.splitlines())  # a newline would end the comment
    lines = [
        "#!/usr/bin/env bash",
        f"# Runs the phases of {file} as AWS CodeBuild does (buildspec version 0.2).",
        "# Generated by Shipline; do not edit.",
        _PRELUDE,
    ]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in spec.variables]
    for source, pairs in (("parameter-store", spec.parameter_store),
                          ("secrets-manager", spec.secrets_manager)):  # fmt: skip
        lines += [f"__sl_need {name} {shlex.quote(f'{source} {ref}')}" for name, ref in pairs]
    for phase in spec.phases:
        lines += ["", *_phase_lines(phase)]
    lines.append(_EPILOGUE)
    return "\n".join(lines)


def artifact_spec(spec: BuildspecSpec) -> BuildArtifacts | None:
    """What the runner collects after the driver has run (None: nothing)."""
    return spec.artifacts


def _check(spec: BuildspecSpec) -> None:
    """Names are written into the script unquoted and NUL cannot be passed to bash at all."""
    pairs = (*spec.variables, *spec.parameter_store, *spec.secrets_manager)
    if bad := [name for name, _ in pairs if not _NAME.match(name)]:
        raise ValueError(f"not shell variable names: {bad}")
    if bad := [p.name for p in spec.phases if p.name not in PHASE_NAMES]:
        raise ValueError(f"not CodeBuild phases: {bad}")
    texts = [t for p in spec.phases for t in (*p.commands, *p.finally_)]
    if any("\0" in t for t in (*texts, *(v for _, v in pairs))):
        raise ValueError("a command or variable value contains a NUL character")


def _phase_lines(phase: BuildPhase) -> list[str]:
    label = phase.name.upper()
    ends_build = phase.on_failure == "ABORT" or (
        phase.on_failure is None and phase.name in _ENDS_BUILD_BY_DEFAULT
    )
    lines = ['if [ "$__sl_stop" -eq 0 ]; then', f"  __sl_enter {label}"]
    if phase.runtime_versions:
        # CodeBuild's own words when an image cannot switch runtimes.
        lines.append(
            "  __sl_log 'Skipping install of runtimes. "
            "Runtime version selection is not supported by this build image.'"
        )
    for block in (phase.commands, phase.finally_):
        if block:
            lines += ["  __sl_commands \\", *_arguments(block)]
    lines += [f"  __sl_complete {label} {'stop' if ends_build else 'continue'}", "fi"]
    return lines


def _arguments(commands: tuple[str, ...]) -> list[str]:
    """One quoted command per line, continued with backslashes."""
    quoted = [f"    {shlex.quote(command)}" for command in commands]
    return [line + " \\" for line in quoted[:-1]] + quoted[-1:]
