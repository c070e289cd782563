"""Built-in and local actions through `shipline run`: checkout, artifacts, cache, Python,
composite actions, and CodeBuild buildspecs."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import Repo

PY = f"{sys.version_info.major}.{sys.version_info.minor}"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_checkout_gives_the_commit_and_history(repo: Repo, run) -> None:
    repo.write("README.md", "first\n")
    repo.commit("first")
    repo.write("README.md", "second\n")
    repo.workflow("""
        on: push
        jobs:
          a:
            runs-on: ubuntu-latest
            steps:
              - uses: actions/checkout@v4
              - run: |
                  cat README.md
                  test "$(git rev-parse HEAD)" = "$GITHUB_SHA" && echo "at the run's commit"
                  echo "commits: $(git rev-list --count HEAD)"
              - uses: actions/checkout@v4
                with:
                  fetch-depth: 0
                  path: full
              - run: |
                  echo "full history: $(git -C full rev-list --count HEAD)"
    """)
    repo.commit("second")
    (repo.root / "README.md").write_text("uncommitted\n")
    result = run("run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "second" in result.stdout and "uncommitted" not in result.stdout
    assert "at the run's commit" in result.stdout
    assert "commits: 1" in result.stdout
    assert "full history: 2" in result.stdout


def test_artifacts_pass_between_jobs_with_github_paths(repo: Repo, run) -> None:
    repo.workflow("""
        on: push
        jobs:
          build:
            runs-on: ubuntu-latest
            steps:
              - run: mkdir -p dist/sub && echo wheel > dist/a.whl && echo x > dist/sub/b.txt
              - uses: actions/upload-artifact@v4
                with:
                  name: dist
                  path: dist/
          use:
            needs: build
            runs-on: ubuntu-latest
            steps:
              - uses: actions/download-artifact@v4
                with:
                  name: dist
                  path: dist
              - run: cat dist/a.whl dist/sub/b.txt
          missing:
            runs-on: ubuntu-latest
            steps:
              - uses: actions/upload-artifact@v4
                with:
                  name: nothing
                  path: no-such-dir/
                  if-no-files-found: error
    """)
    repo.commit()
    result = run("run", "--json")
    doc = json.loads(result.stdout)
    jobs = {j["id"]: j for j in doc["workflows"][0]["jobs"]}
    assert jobs["build"]["conclusion"] == "success"
    assert jobs["use"]["conclusion"] == "success", result.stderr
    assert "wheel\n" in result.stderr.replace("[use] ", "")
    assert jobs["missing"]["conclusion"] == "failure"
    assert result.returncode == 1


def test_cache_is_restored_on_the_next_run(repo: Repo, run) -> None:
    repo.workflow("""
        on: push
        jobs:
          a:
            runs-on: ubuntu-latest
            steps:
              - uses: actions/checkout@v4
              - uses: actions/cache@v4
                id: cache
                with:
                  path: .deps
                  key: deps-${{ hashFiles('requirements.txt') }}
                  restore-keys: deps-
              - run: |
                  echo "hit=${{ steps.cache.outputs.cache-hit }}"
                  mkdir -p .deps && test -f .deps/made && echo "restored" || echo "made" > .deps/made
    """)
    repo.write("requirements.txt", "one\n")
    repo.commit()
    first = run("run")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "hit=false" in first.stdout
    second = run("run")
    assert "hit=true" in second.stdout
    assert "restored" in second.stdout
    repo.write("requirements.txt", "two\n")
    repo.commit()
    third = run("run")
    assert "hit=false" in third.stdout
    assert "restored" in third.stdout  # through restore-keys


def test_setup_python_selects_an_installed_interpreter(repo: Repo, run) -> None:
    repo.workflow(f"""
        on: push
        jobs:
          a:
            runs-on: ubuntu-latest
            steps:
              - uses: actions/setup-python@v5
                id: py
                with:
                  python-version: "{PY}"
              - run: |
                  python -c 'import sys; print("running", sys.version_info[:2])'
                  echo "output=${{{{ steps.py.outputs.python-version }}}}"
          old:
            runs-on: ubuntu-latest
            steps:
              - uses: actions/setup-python@v5
                with:
                  python-version: "2.6"
    """)
    repo.commit()
    result = run("run", "--json")
    major, minor = PY.split(".")
    assert f"running ({major}, {minor})" in result.stderr
    assert f"output={PY}" in result.stderr
    jobs = {j["id"]: j for j in json.loads(result.stdout)["workflows"][0]["jobs"]}
    assert jobs["old"]["conclusion"] == "failure"
    assert "2.6" in result.stderr


def test_unknown_action_fails_only_when_reached(repo: Repo, run) -> None:
    repo.workflow("""
        on: push
        jobs:
          a:
            runs-on: ubuntu-latest
            steps:
              - uses: codecov/codecov-action@v4
                if: github.event_name == 'release'
              - run: echo fine
          b:
            runs-on: ubuntu-latest
            steps:
              - uses: codecov/codecov-action@v4
    """)
    repo.commit()
    result = run("run", "--json")
    jobs = {j["id"]: j for j in json.loads(result.stdout)["workflows"][0]["jobs"]}
    assert jobs["a"]["conclusion"] == "success"
    assert jobs["b"]["conclusion"] == "failure"
    assert "codecov/codecov-action@v4" in result.stderr
    assert "is not built into Shipline" in result.stderr  # the same words as lint


def test_local_composite_action(repo: Repo, run) -> None:
    repo.write(
        ".shipline/actions/greet/action.yml",
        """
        name: greet
        inputs:
          who:
            default: world
        outputs:
          said:
            value: ${{ steps.say.outputs.text }}
        runs:
          using: composite
          steps:
            - id: say
              shell: bash
              run: |
                echo "hello ${{ inputs.who }}"
                echo "text=hello ${{ inputs.who }}" >> "$GITHUB_OUTPUT"
    """,
    )
    repo.workflow("""
        on: push
        jobs:
          a:
            runs-on: ubuntu-latest
            steps:
              - uses: actions/checkout@v4
              - id: g
                uses: ./.shipline/actions/greet
                with:
                  who: shipline
              - run: echo "composite said '${{ steps.g.outputs.said }}'"
    """)
    repo.commit()
    result = run("run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "hello shipline" in result.stdout
    assert "composite said 'hello shipline'" in result.stdout


def test_buildspec_runs_as_a_job_with_artifacts(repo: Repo, run) -> None:
    repo.write(
        "buildspec.yml",
        """
        version: 0.2
        env:
          variables:
            GREETING: hi
        phases:
          install:
            commands:
              - cd sub || mkdir -p out
              - export LATER=kept
          build:
            commands:
              - echo "$GREETING $LATER" > out/result.txt
              - mkdir -p out/deep && echo deep > out/deep/file.txt
            finally:
              - echo "finally ran"
        artifacts:
          name: results
          base-directory: out
          files:
            - "**/*"
          discard-paths: yes
    """,
    )
    repo.commit()
    result = run("run", "--json")
    assert result.returncode == 0, result.stderr
    assert "finally ran" in result.stderr
    assert "Entering phase BUILD" in result.stderr
    doc = json.loads(result.stdout)
    assert doc["workflows"][0]["file"] == "buildspec.yml"
    index = json.loads(
        next((repo.root / ".shipline/local/runs").glob("*/artifacts.json")).read_text()
    )
    text = json.dumps(index)
    assert "results" in text and "result.txt" in text and "deep/file.txt" not in text


def test_buildspec_failure_stops_later_phases(repo: Repo, run) -> None:
    repo.write(
        "ci/buildspec.yml",
        """
        version: 0.2
        phases:
          pre_build:
            commands:
              - echo before && false
              - echo SHOULD-NOT-RUN
          build:
            commands:
              - echo SHOULD-NOT-RUN-EITHER
    """,
    )
    repo.commit()
    result = run("run", "--buildspec", "ci/buildspec.yml")
    assert result.returncode == 1
    assert "SHOULD-NOT-RUN" not in result.stdout
    assert "before" in result.stdout


@pytest.mark.slow
def test_example_python_library_runs_unchanged(tmp_path: Path, run) -> None:
    """The README's example: lint, tests across a matrix, wheel as an artifact, verify."""
    from tests.e2e.conftest import shipline

    target = tmp_path / "python-lib"
    shutil.copytree(EXAMPLES / "python-lib", target)
    example = Repo.__new__(Repo)
    example.root = target
    example.git("init", "-q", "-b", "main")
    example.git("config", "user.email", "dev@example.com")
    example.git("config", "user.name", "Dev")
    example.commit("example")
    result = shipline(
        "run", "-j", "verify", "--matrix", f"python-version={PY}", "--json", cwd=target, timeout=600
    )
    assert result.returncode == 0, result.stderr[-4000:]
    jobs = json.loads(result.stdout)["workflows"][0]["jobs"]
    assert [j["id"] for j in jobs] == ["lint", "test", "build", "verify"]
    assert all(j["conclusion"] == "success" for j in jobs)


def test_typical_library_workflow_runs_unchanged(repo: Repo, run) -> None:
    """`.github/workflows` as found in small libraries: one OS/Python cell runs here."""
    workflow = (Path(__file__).parent / "workflows" / "typical_library.yml").read_text()
    repo.write(".github/workflows/main.yml", workflow)
    repo.write(
        "pyproject.toml",
        """
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "tinylib"
        version = "1.0.0"
    """,
    )
    repo.write("src/tinylib/__init__.py", "def add(a, b):\n    return a + b\n")
    repo.write(
        "tests/test_add.py",
        """
        import unittest

        from tinylib import add


        class Add(unittest.TestCase):
            def test_add(self):
                self.assertEqual(add(1, 2), 3)
    """,
    )
    repo.commit()
    lint = run("lint", "--json")
    assert lint.returncode == 0, lint.stdout
    result = run(
        "run",
        "-j",
        "tests",
        "--matrix",
        f"python-version={PY}",
        "--matrix",
        "os=ubuntu-latest",
        "--json",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = json.loads(result.stdout)["workflows"][0]["jobs"]
    assert len(jobs) == 1
    assert jobs[0]["name"] == f"tests on {PY} (ubuntu-latest)"
    assert [s["conclusion"] for s in jobs[0]["steps"]][-1] == "skipped"  # codecov, guarded
    assert "Ran 1 test" in result.stderr
