"""actions/setup-python with the interpreters installed on this machine."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shipline.runner.actions.setup_python import SetupPythonAction, matches
from shipline.runner.ports import ActionCall, ActionFailed
from tests.unit.runner.action_calls import Job, Run

RUNNING = f"{sys.version_info.major}.{sys.version_info.minor}"


def setup(job: Job, **inputs: str) -> ActionCall:
    # The job's PATH leads to the interpreter running the tests.
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    call = job.call("actions/setup-python@v5", inputs, env=env)
    asyncio.run(SetupPythonAction().run(call))
    return call


def job_path(call: ActionCall) -> str:
    # How the runner applies path_updates: later entries come first, like GITHUB_PATH.
    return os.pathsep.join([*reversed(call.path_updates), "/usr/bin:/bin"])


def run_in_job(call: ActionCall, *argv: str) -> str:
    env = {**call.env, **call.env_updates, "PATH": job_path(call)}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_finds_the_running_interpreters_version(tmp_path: Path) -> None:
    job = Run(tmp_path).job()
    call = setup(job, **{"python-version": RUNNING})
    version = call.outputs["python-version"]
    assert version.startswith(RUNNING + ".")
    probe = "import sys; print('%d.%d.%d' % sys.version_info[:3], sys.prefix == sys.base_prefix)"
    for name in ("python", "python3", f"python{RUNNING}"):
        assert run_in_job(call, name, "-c", probe) == f"{version} True"
    bin_dir = job.root / "tools" / "python" / version / "bin"
    assert call.path_updates[-1] == str(bin_dir)
    assert Path(call.outputs["python-path"]).is_file()
    assert call.env_updates["pythonLocation"]


def test_pip_is_the_chosen_interpreters(tmp_path: Path) -> None:
    call = setup(Run(tmp_path).job(), **{"python-version": RUNNING})
    assert f"(python {RUNNING})" in run_in_job(call, "pip", "--version")


def test_user_installs_go_to_a_per_job_base(tmp_path: Path) -> None:
    run = Run(tmp_path)
    one = setup(run.job("one"), **{"python-version": RUNNING})
    two = setup(run.job("two"), **{"python-version": RUNNING})
    base = one.env_updates["PYTHONUSERBASE"]
    assert base != two.env_updates["PYTHONUSERBASE"]
    assert Path(base).is_relative_to(tmp_path / "one" / "tools")
    user_base = run_in_job(one, "python", "-c", "import site; print(site.getuserbase())")
    assert user_base == base
    assert f"{base}/bin" in one.path_updates


def test_no_match_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ActionFailed) as info:
        setup(Run(tmp_path).job(), **{"python-version": "2.6"})
    message = str(info.value)
    assert message.startswith("no installed Python matches python-version 2.6 (found: ")
    assert f"{RUNNING}." in message


def test_python_version_file(tmp_path: Path) -> None:
    job = Run(tmp_path).job()
    job.workspace.mkdir(parents=True)
    (job.workspace / ".python-version").write_text(f"# pinned\n{RUNNING}\n")
    assert setup(job).outputs["python-version"].startswith(RUNNING)
    (job.workspace / "pyproject.toml").write_text(f'[project]\nrequires-python = ">={RUNNING}"\n')
    call = setup(job, **{"python-version-file": "pyproject.toml"})
    assert matches(f">={RUNNING}", tuple(map(int, call.outputs["python-version"].split("."))))  # type: ignore[arg-type]


def test_cache_input_is_ignored_with_a_note(tmp_path: Path) -> None:
    job = Run(tmp_path).job()
    setup(job, **{"python-version": RUNNING, "cache": "pip"})
    assert any("cache: pip is ignored" in line for line in job.logs)


@pytest.mark.parametrize(
    ("spec", "version", "expected"),
    [
        ("3.11", (3, 11, 7), True),
        ("3.11", (3, 12, 0), False),
        ("3.x", (3, 12, 1), True),
        ("3", (3, 9, 0), True),
        ("3.11.7", (3, 11, 7), True),
        ("3.11.7", (3, 11, 8), False),
        (">=3.10", (3, 11, 0), True),
        (">=3.10", (3, 9, 18), False),
        (">=3.10,<3.12", (3, 12, 0), False),
        (">=3.10, <3.12", (3, 11, 2), True),
        ("~=3.10", (3, 12, 0), True),
        ("==3.11.*", (3, 11, 4), True),
        ("3.13-dev", (3, 13, 0), True),
        ("pypy3.10", (3, 10, 0), False),
        ("2.6", (3, 11, 0), False),
    ],
)
def test_version_specs(spec: str, version: tuple[int, int, int], expected: bool) -> None:
    assert matches(spec, version) is expected
