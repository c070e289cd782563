"""CodeBuild buildspec conformance: `buildspec_cases.json` from `../shared/conformance`.

Three kinds of cases: `buildspec_parse` (a buildspec runner's schema tests: ok or error),
`buildspec_example` (AWS documentation and sample buildspecs that must parse; one is a
fragment that must be refused) and `buildspec_run` (buildspecs run with real bash, checked
by exit status, phases entered and output). Cases that cannot pass for a stated reason are
in `known_failures/buildspec.txt`, and that list must be exact.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from shipline.plan.buildspec_script import driver_script
from shipline.spec.buildspec import BuildspecSpec, load_buildspec
from shipline.spec.diagnostics import Severity
from tests.conformance.corpus import load_corpus, load_known_failures, record_rate

CORPUS = "buildspec_cases.json"
# Every line the driver itself prints starts so; the rest of stdout is the commands' own.
MARKER = "[Container] "


def _cases(kind: str) -> list[dict[str, Any]]:
    return [c for c in load_corpus(CORPUS) if c["kind"] == kind]


def _errors(text: str) -> tuple[BuildspecSpec | None, list[str]]:
    spec, diagnostics = load_buildspec(text)
    return spec, [d.format() for d in diagnostics if d.severity is Severity.ERROR]


def _model_problem(spec: BuildspecSpec, model: dict[str, Any]) -> str | None:
    got = {
        "env": dict(spec.variables),
        "parameter_store": dict(spec.parameter_store),
        "phases": {p.name: list(p.commands) for p in spec.phases},
    }
    return None if got == model else f"model {got} != {model}"


def _parse_problem(case: dict[str, Any]) -> str | None:
    """Why a parse or example case fails, or None when it passes."""
    spec, errors = _errors(case["buildspec"])
    if case["expect"] in ("ok", "parses"):
        if spec is None:
            return "rejected: " + "; ".join(errors)
        model = case.get("expected_model")
        return _model_problem(spec, model) if model else None
    # "error", and the one "fragment (not standalone YAML)": refused, with a located error.
    if spec is not None:
        return "accepted"
    return None if errors else "refused without an error diagnostic"


def _check_suite(kind: str, suite: str) -> None:
    cases = _cases(kind)
    known = {
        case_id: reason
        for case_id, reason in load_known_failures("buildspec").items()
        if case_id in {c["id"] for c in cases}
    }
    problems = {c["id"]: p for c in cases if (p := _parse_problem(c)) is not None}
    passed = len(cases) - len(problems)
    threshold = 1 - len(known) / len(cases)
    record_rate(suite, passed, len(cases), threshold, f"{len(known)} known failures")
    unexpected = {i: p for i, p in problems.items() if i not in known}
    assert not unexpected, "\n".join(f"{i}: {p}" for i, p in unexpected.items())
    assert set(known) == set(problems), (
        f"now passing, drop from known failures: {set(known) - set(problems)}"
    )


def test_parse_cases_give_the_expected_result() -> None:
    _check_suite("buildspec_parse", "buildspec-parse")


def test_documented_examples_parse() -> None:
    _check_suite("buildspec_example", "buildspec-examples")


def test_known_failures_name_real_cases() -> None:
    ids = {c["id"] for c in load_corpus(CORPUS)}
    known = load_known_failures("buildspec")
    assert set(known) <= ids
    assert all(known.values()), "every known failure needs its reason"


def _run(case: dict[str, Any], tmp: Path) -> subprocess.CompletedProcess[str]:
    text = case["buildspec"]
    if shutil.which("ruby") is None:
        # As the cases' notes say: `false` fails the same way when ruby is absent.
        text = text.replace("ruby -e 'exit 1'", "false")
    spec, errors = _errors(text)
    assert spec is not None, errors
    workspace = tmp / "src"
    for rel, content in case.get("workspace_files", {}).items():
        (workspace / rel).parent.mkdir(parents=True, exist_ok=True)
        (workspace / rel).write_text(content, encoding="utf-8")
    workspace.mkdir(exist_ok=True)
    script = tmp / "driver.sh"
    script.write_text(driver_script(spec), encoding="utf-8")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp), "LANG": "C.UTF-8"}
    # The runner's part: resolve parameter-store names (here from the case's stub).
    stub = case.get("parameter_store_stub", {})
    env |= {name: stub[ref] for name, ref in spec.parameter_store if ref in stub}
    return subprocess.run(
        ["bash", str(script)],
        check=False,
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _run_problems(case: dict[str, Any], result: subprocess.CompletedProcess[str]) -> list[str]:
    out = result.stdout
    own_output = "".join(
        line for line in out.splitlines(keepends=True) if not line.startswith(MARKER)
    )
    entered = set(re.findall(r"^\[Container\] Entering phase (\w+)$", out, re.MULTILINE))
    problems = []
    if result.returncode != case["expected_exit_code"]:
        problems.append(f"exit {result.returncode}, expected {case['expected_exit_code']}")
    problems += [f"{p} did not run" for p in case.get("phases_run", []) if p.upper() not in entered]
    problems += [f"{p} ran" for p in case.get("phases_not_run", []) if p.upper() in entered]
    problems += [f"stdout lacks {s!r}" for s in case.get("stdout_contains", []) if s not in out]
    problems += [f"stdout has {s!r}" for s in case.get("stdout_not_contains", []) if s in out]
    if "expected_stdout" in case and own_output != case["expected_stdout"]:
        problems.append(f"stdout {own_output!r} != {case['expected_stdout']!r}")
    if "expected_stderr" in case and result.stderr != case["expected_stderr"]:
        problems.append(f"stderr {result.stderr!r} != {case['expected_stderr']!r}")
    return problems


@pytest.mark.skipif(shutil.which("bash") is None, reason="the driver script needs bash")
def test_run_cases_behave_as_expected(tmp_path: Path) -> None:
    cases = _cases("buildspec_run")
    failures = {}
    for i, case in enumerate(cases):
        (tmp_path / str(i)).mkdir()
        result = _run(case, tmp_path / str(i))
        if problems := _run_problems(case, result):
            failures[case["id"]] = (
                f"{problems}\n--- stdout\n{result.stdout}--- stderr\n{result.stderr}"
            )
    record_rate("buildspec-run", len(cases) - len(failures), len(cases), 1.0)
    assert not failures, "\n".join(f"{i}: {p}" for i, p in failures.items())
