"""The demo's packaged repository: the service is `examples/webapp`'s (one source, checked
here), its pipeline and environments lint clean, its own linter and tests pass, and the
demo places each environment's router where it was told."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shipline.demo.repository import ENVIRONMENTS, PROJECT, Placement, place, prepare
from shipline.spec.environment import load_environment

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "webapp"
SHARED = ["app.py", "appspec.yml", "scripts/before_install.sh", "scripts/validate.sh"]


@pytest.mark.parametrize("name", SHARED)
def test_the_service_is_the_example_webapp(name: str) -> None:
    assert filecmp.cmp(EXAMPLE / name, PROJECT / name, shallow=False), (
        f"src/shipline/demo/project/{name} differs from examples/webapp/{name}: "
        "edit examples/webapp and copy the file over"
    )


def test_environments_are_placed_where_the_demo_says(tmp_path: Path) -> None:
    work = tmp_path / "repo"
    placements = {"staging": Placement("127.0.0.2", 40123), "production": Placement("::1", 40124)}
    prepare(work, placements)
    for name in ENVIRONMENTS:
        path = work / ".shipline" / "environments" / f"{name}.yml"
        spec, diagnostics = load_environment(path.read_text(), str(path), name=name)
        assert spec is not None and diagnostics == [], diagnostics
        assert spec.traffic is not None
        assert (spec.traffic.host, spec.traffic.port) == (
            placements[name].host,
            placements[name].port,
        )
    assert (work / "scripts" / "validate.sh").stat().st_mode & 0o111
    assert not list(work.rglob("__pycache__"))


def test_place_leaves_the_rest_of_the_file_alone() -> None:
    text = "target:\n  local: {start: x, instances: 1}\ntraffic:\n  port: 1\n  drain: 1s\nurl: u\n"
    assert place(text, Placement("h", 2)) == (
        "target:\n  local: {start: x, instances: 1}\ntraffic:\n  port: 2\n  drain: 1s\nurl: u\n"
    )
    with pytest.raises(ValueError, match="no traffic section"):
        place("target: {}\n", Placement("h", 2))


def test_production_needs_a_reviewer_who_did_not_push() -> None:
    path = PROJECT / ".shipline" / "environments" / "production.yml"
    spec, _ = load_environment(path.read_text(), str(path), name="production")
    assert spec is not None
    assert spec.protection.reviewers is not None
    assert spec.protection.reviewers.required == 1
    assert spec.protection.prevent_self_review


def test_the_pipeline_lints_and_the_projects_checks_pass(tmp_path: Path) -> None:
    work = tmp_path / "repo"
    shutil.copytree(PROJECT, work, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    linted = subprocess.run(
        [sys.executable, "-m", "shipline", "lint"], cwd=work, capture_output=True, text=True
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert "0 error(s), 0 warning(s)" in linted.stdout + linted.stderr
    own = subprocess.run(
        ["python3", "tools/lint.py"], cwd=work, capture_output=True, text=True, check=False
    )
    assert own.returncode == 0, own.stdout
    tests = subprocess.run(
        ["python3", "-m", "unittest", "discover", "-s", "tests"],
        cwd=work,
        capture_output=True,
        text=True,
        check=False,
    )
    assert tests.returncode == 0, tests.stderr
    assert "Ran 4 tests" in tests.stderr


def test_the_projects_linter_finds_mistakes(tmp_path: Path) -> None:
    work = tmp_path / "repo"
    shutil.copytree(PROJECT, work, ignore=shutil.ignore_patterns("__pycache__"))
    (work / "extra.py").write_text("import os\nimport json\n\nprint(json.dumps(1))  \n")
    (work / "scripts" / "broken.sh").write_text("if true; then\n")
    own = subprocess.run(
        ["python3", "tools/lint.py"], cwd=work, capture_output=True, text=True, check=False
    )
    assert own.returncode == 1
    assert "extra.py:1: 'os' imported but unused" in own.stdout
    assert "extra.py:4: trailing whitespace or a tab" in own.stdout
    assert "scripts/broken.sh:" in own.stdout
    assert "'json'" not in own.stdout
