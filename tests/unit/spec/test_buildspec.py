"""Buildspec loading (`spec.buildspec`) and the driver script (`plan.buildspec_script`).

The driver tests run the generated script with real bash in a temporary directory: what they
check is what a user sees in a job's log and result.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from shipline.plan.buildspec_script import artifact_spec, driver_script
from shipline.spec.buildspec import BuildArtifacts, BuildPhase, BuildspecSpec, load_buildspec
from shipline.spec.diagnostics import Diagnostic, Severity


def load(text: str) -> tuple[BuildspecSpec | None, list[Diagnostic]]:
    return load_buildspec(textwrap.dedent(text).lstrip("\n"))


def errors(text: str) -> list[Diagnostic]:
    return [d for d in load(text)[1] if d.severity is Severity.ERROR]


def spec_of(text: str) -> BuildspecSpec:
    spec, diagnostics = load(text)
    assert spec is not None, [d.format() for d in diagnostics]
    return spec


# --- diagnostics: where and what ---------------------------------------------------------

BUILD = "phases: {build: {commands: [make]}}\n"
V = "version: 0.2\n"

# (buildspec, line, col, path, hint or a part of the message)
LOCATED = [
    (V + "phases:\n  biuld:\n    commands: [x]\n", 3, 3, "phases.biuld", 'did you mean "build"?'),
    (V + BUILD + "zzz: 1\n", 3, 1, "zzz", "valid: version, phases, env"),
    (V + BUILD + "artifacts:\n  files: [a]\n  discard-path: yes\n", 5, 3,
     "artifacts.discard-path", 'did you mean "discard-paths"?'),
    # A key without a value is reported at the key, where the user looks for it.
    (V + "phases:\n  build:\n    commands:\n", 4, 5, "phases.build.commands", "not null"),
    (V + "phases:\n  build:\n    commands:\n      - echo ok\n      - echo note: quoted\n", 6, 9,
     "phases.build.commands[1]", 'YAML reads ": " as a key; quote the whole entry'),
    (BUILD, 1, 1, "version", "the buildspec has no version"),
    (V + "phases:\n  build:\n    finally: [echo]\n", 3, 3, "phases.build", "add `commands:`"),
    (V.replace("2", "1") + BUILD, 1, 10, "version", "use `version: 0.2`"),
    (V + "phases: {build: {on-failure: abort, commands: [x]}}\n", 2, 30,
     "phases.build.on-failure", "use ABORT or CONTINUE"),
    (V + "phases: {build: {on-failure: ABORT | CONTINUE, commands: [x]}}\n", 2, 30,
     "phases.build.on-failure", "use ABORT or CONTINUE"),
    (V + "phases: {build: {runtime-versions: {java: 17}, commands: [x]}}\n", 2, 18,
     "phases.build.runtime-versions", "belongs in the install phase"),
    (V + 'phases: {build: {commands: ["a\\0b"]}}\n', 2, 29, "phases.build.commands[0]", "NUL"),
    (V + "env:\n  parameter-store: {TOKEN: yes, FLAG: true}\n" + BUILD, 3, 39,
     "env.parameter-store.FLAG", 'quote it if "true" is meant'),
    (V + "env:\n  variables: {MY-VAR: x}\n" + BUILD, 3, 15, "env.variables.MY-VAR",
     "use letters, digits and _"),
    (V + "env: {shell: powershell.exe}\n" + BUILD, 2, 14, "env.shell", "Shipline runs Linux"),
    ("", 1, 1, "", "the buildspec is empty"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "line", "col", "path", "words"), LOCATED)
def test_a_mistake_is_located_and_explained(
    text: str, line: int, col: int, path: str, words: str
) -> None:
    found = errors(text)
    assert len(found) == 1, [d.format() for d in found]
    d = found[0]
    assert (d.code, d.line, d.col, d.path) == ("buildspec", line, col, path)
    assert words in d.hint + d.message


def test_a_yaml_syntax_error_is_the_only_error() -> None:
    assert [d.code for d in errors("version: 0.2\n  phases: [\n")] == ["syntax-check"]


def test_aws_references_warn_that_the_runner_must_provide_them() -> None:
    spec, diagnostics = load("version: 0.2\nenv:\n  secrets-manager: {TOKEN: 'gh:token'}\n" + BUILD)
    assert spec is not None and spec.secrets_manager == (("TOKEN", "gh:token"),)
    assert [(d.severity, d.line, d.col) for d in diagnostics] == [(Severity.WARNING, 3, 3)]
    assert "TOKEN" in diagnostics[0].message


# --- what a valid file becomes -------------------------------------------------------------


def test_scalars_are_read_as_written_and_booleans_accept_yes_no() -> None:
    spec = spec_of("""
        version: 0.2
        env:
          variables: {DEBUG: true, ZERO_PADDED: 010, FRAMEWORK: 4.10}
        phases:
          install:
            runtime-versions: {golang: 1.10, android: 29}
          build:
            commands:
              - true
              - 0
        artifacts:
          files: ['**/*']
          discard-paths: yes
          enable-symlinks: No
    """)
    assert spec.variables == (("DEBUG", "true"), ("ZERO_PADDED", "010"), ("FRAMEWORK", "4.10"))
    install, build = spec.phases
    assert install.runtime_versions == (("golang", "1.10"), ("android", "29"))
    assert install.commands == ()
    assert build.commands == ("true", "0")
    assert spec.artifacts == BuildArtifacts(("**/*",), discard_paths=True)


def test_phases_come_in_codebuild_order_with_their_settings() -> None:
    spec = spec_of("""
        version: 0.2
        phases:
          post_build:
            commands: [c]
          build:
            on-failure: CONTINUE
            commands: [b]
            finally: [f]
          install:
            commands: [a]
    """)
    assert spec.phases == (
        BuildPhase("install", ("a",)),
        BuildPhase("build", ("b",), ("f",), "CONTINUE"),
        BuildPhase("post_build", ("c",)),
    )
    assert spec.phase("pre_build") is None


def test_secondary_artifacts_cache_and_unused_sections() -> None:
    spec, diagnostics = load("""
        version: 0.2
        phases: {build: {commands: [x]}}
        proxy: {upload-artifacts: yes, logs: no}
        batch: {fast-fail: false}
        reports:
          unit: {files: ['**/*.xml'], file-format: JUNITXML}
        eb_codebuild_settings: {Timeout: 60}
        artifacts:
          secondary-artifacts:
            one: {files: [a], base-directory: out, exclude-paths: '*.tmp'}
        cache:
          paths: [node_modules/**/*]
    """)
    assert spec is not None and spec.artifacts is not None
    assert spec.artifacts.files == ()
    assert spec.artifacts.secondary == (
        ("one", BuildArtifacts(("a",), base_directory="out", exclude_paths=("*.tmp",))),
    )
    assert spec.cache_paths == ("node_modules/**/*",)
    assert artifact_spec(spec) is spec.artifacts
    assert [d.severity for d in diagnostics] == [Severity.WARNING]  # no files: secondary only


# --- the driver script, run with bash --------------------------------------------------------

needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def run(
    tmp_path: Path, text: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "driver.sh"
    script.write_text(driver_script(spec_of(text)), encoding="utf-8")
    base = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    return subprocess.run(
        ["bash", str(script)], check=False, cwd=tmp_path, env=base | (env or {}),
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def output(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The commands' own output, without the driver's `[Container]` lines."""
    return [line for line in result.stdout.splitlines() if not line.startswith("[Container]")]


def entered(result: subprocess.CompletedProcess[str]) -> list[str]:
    prefix = "[Container] Entering phase "
    return [line[len(prefix) :] for line in result.stdout.splitlines() if line.startswith(prefix)]


TRICKY = [
    r"""echo 'single "double" $HOME \ back'""",
    r"""echo "it's \"quoted\" \$HOME \\ done" """,
    r"""X='it'"'"'s'; echo "$X" """,
    "printf '%s|%s\\n' 'tab\there' \"$((6 * 7))\"",
    "echo 'héllo ✓ `not run`'",
    "echo first\necho 'second line'\n",
]
TRICKY_OUTPUT = [
    r'single "double" $HOME \ back',
    r"""it's "quoted" $HOME \ done""",
    "it's",
    "tab\there|42",
    "héllo ✓ `not run`",
    "first",
    "second line",
]


@needs_bash
def test_commands_run_exactly_as_written(tmp_path: Path) -> None:
    spec = BuildspecSpec("buildspec.yml", "0.2", (BuildPhase("build", tuple(TRICKY)),))
    (tmp_path / "driver.sh").write_text(driver_script(spec), encoding="utf-8")
    result = subprocess.run(
        ["bash", "driver.sh"], check=False, cwd=tmp_path, capture_output=True, text=True
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert output(result) == TRICKY_OUTPUT
    assert f"[Container] Running command {TRICKY[0]}" in result.stdout.splitlines()


@needs_bash
def test_a_yaml_block_command_is_one_command(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        """
        version: 0.2
        phases:
          build:
            commands:
              - |
                for i in 1 2; do
                  echo "n=$i"
                done
    """,
    )
    assert output(result) == ["n=1", "n=2"]


@needs_bash
def test_variables_are_literal_and_state_carries_over(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        """
        version: 0.2
        env:
          variables: {LITERAL: '$PATH:/x', SPACED: "a  b"}
        phases:
          install:
            commands:
              - mkdir sub && cd sub
              - declare -a ARR=(x y); f() { echo "f sees $1"; }; PLAIN=1
          build:
            commands:
              - echo "$LITERAL|$SPACED|$(basename "$PWD")|${ARR[1]}|$PLAIN"
              - f arg
    """,
    )
    assert output(result) == ["$PATH:/x|a  b|sub|y|1", "f sees arg"]


@needs_bash
def test_exit_ends_only_its_command(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        """
        version: 0.2
        phases:
          build:
            commands:
              - echo one; exit 0; echo never
              - echo two
              - (exit 3); echo "subshell said $?"
              - exit 4
              - echo skipped
    """,
    )
    assert output(result) == ["one", "two", "subshell said 3"]
    assert "[Container] Command did not exit successfully exit 4 exit status 4" in result.stdout
    assert result.returncode == 1


@needs_bash
def test_set_e_stops_its_command_not_the_build(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        """
        version: 0.2
        phases:
          build:
            on-failure: CONTINUE
            commands:
              - |
                set -e
                f() { false; echo "never in f"; }
                echo start
                f
                echo never
          post_build:
            commands:
              - case $- in *e*) echo errexit still on;; esac
              - false; echo not reached, errexit stops the command
    """,
    )
    assert output(result) == ["start", "errexit still on"]
    assert entered(result) == ["BUILD", "POST_BUILD"]
    assert result.returncode == 1


@needs_bash
def test_finally_runs_after_a_failure_and_can_fail_the_phase(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        """
        version: 0.2
        phases:
          install:
            commands: [echo a]
            finally: [false, echo not after a failing finally]
          build:
            commands: [echo b]
    """,
    )
    assert output(result) == ["a"]
    assert "[Container] Phase complete: INSTALL State: FAILED" in result.stdout
    assert entered(result) == ["INSTALL"]
    assert result.returncode == 1


@pytest.mark.parametrize(
    ("failing", "on_failure", "phases", "lines"),
    [
        # CodeBuild's transitions: a failed build still runs post_build ...
        ("build", "", ["INSTALL", "BUILD", "POST_BUILD"], ["fin install", "fin build", "post 0"]),
        # ... but an explicit ABORT ends the build there.
        ("build", "on-failure: ABORT", ["INSTALL", "BUILD"], ["fin install", "fin build"]),
        ("install", "", ["INSTALL"], ["fin install"]),
        ("install", "on-failure: CONTINUE", ["INSTALL", "BUILD", "POST_BUILD"],
         ["fin install", "fin build", "post 0"]),
    ],
)  # fmt: skip
@needs_bash
def test_phase_transitions_after_a_failure(
    tmp_path: Path, failing: str, on_failure: str, phases: list[str], lines: list[str]
) -> None:
    def phase(name: str) -> str:
        command = "false" if name == failing else "true"
        return f"  {name}:\n    {on_failure if name == failing else ''}\n" \
               f"    commands: [{command}]\n    finally: [echo fin {name}]\n"  # fmt: skip

    text = "version: 0.2\nphases:\n" + phase("install") + phase("build")
    text += "  post_build:\n    commands: [echo post $CODEBUILD_BUILD_SUCCEEDING]\n"
    result = run(tmp_path, text)
    assert (entered(result), output(result), result.returncode) == (phases, lines, 1)


@needs_bash
def test_aws_values_come_from_the_environment(tmp_path: Path) -> None:
    text = """
        version: 0.2
        env:
          parameter-store: {TOKEN: /ci/token}
        phases:
          build:
            commands: [echo "token=$TOKEN"]
    """
    assert output(run(tmp_path, text, {"TOKEN": "s3cr3t"})) == ["token=s3cr3t"]
    missing = run(tmp_path, text)
    assert (entered(missing), missing.returncode) == ([], 1)
    assert "TOKEN (parameter-store /ci/token) was not provided" in missing.stdout
    assert "s3cr3t" not in driver_script(spec_of(text))


@needs_bash
def test_commands_do_not_read_the_jobs_stdin(tmp_path: Path) -> None:
    result = run(tmp_path, "version: 0.2\nphases: {build: {commands: ['read x; echo \"[$x]\"']}}\n")
    assert output(result) == ["[]"]


@pytest.mark.parametrize(
    "spec",
    [
        BuildspecSpec("b.yml", "0.2", (), variables=(("X; rm -rf /", "v"),)),
        BuildspecSpec("b.yml", "0.2", (BuildPhase("deploy", ("x",)),)),
        BuildspecSpec("b.yml", "0.2", (BuildPhase("build", ("a\0b",)),)),
    ],
)
def test_a_spec_the_loader_would_refuse_is_a_bug(spec: BuildspecSpec) -> None:
    with pytest.raises(ValueError):
        driver_script(spec)


def test_the_file_name_cannot_escape_its_comment() -> None:
    spec = BuildspecSpec("b.yml\necho injected", "0.2", (BuildPhase("build", ("true",)),))
    assert "\necho injected" not in driver_script(spec)
