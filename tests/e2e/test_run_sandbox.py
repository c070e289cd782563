"""`shipline run --executor sandbox`: steps run isolated, checkout and run steps still work."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable

import pytest

from shipline.executors.sandbox import probe
from tests.e2e.conftest import Repo

REASON = probe()


@pytest.mark.skipif(REASON is not None, reason=REASON or "")
def test_sandboxed_run_checks_out_and_runs_isolated(
    repo: Repo, run: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    repo.write("hello.txt", "hello from the repo\n")
    repo.workflow("""
        on: push
        jobs:
          build:
            runs-on: ubuntu-latest
            steps:
              - uses: actions/checkout@v4
              - run: |
                  cat hello.txt
                  echo "uid=$(id -u)"
                  test -e /root && echo "root visible" || echo "no /root"
                  test -e "$STATE" && echo "state visible" || echo "no state"
                  echo built > out.txt && cat out.txt
                  echo "home=$HOME"
    """)
    repo.commit()
    state = repo.root / ".shipline" / "local"

    result = run("run", "--executor", "sandbox", env={"STATE": str(state)})

    assert result.returncode == 0, result.stdout + result.stderr
    assert "hello from the repo" in result.stdout
    assert "no /root" in result.stdout
    assert "built" in result.stdout
    if os.geteuid() == 0:
        assert "uid=65534" in result.stdout


def test_an_unknown_executor_is_a_usage_error(
    repo: Repo, run: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    repo.workflow("""
        on: push
        jobs:
          a:
            runs-on: ubuntu-latest
            steps:
              - run: "true"
    """)
    repo.commit()

    result = run("run", "--executor", "docker")

    assert result.returncode == 2
    assert "--executor docker" in result.stderr


@pytest.mark.skipif(REASON is not None, reason=REASON or "")
def test_steps_change_the_checkout_and_a_second_checkout_reuses_it(
    repo: Repo, run: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    # The job's directories belong to the step user for the whole job: steps change what
    # the runner checked out, and the runner's git still works in the working copy after.
    repo.write("hello.txt", "hello from the repo\n")
    repo.workflow("""
        on: push
        jobs:
          build:
            runs-on: ubuntu-latest
            steps:
              - uses: actions/checkout@v4
              - run: |
                  echo changed >> hello.txt
                  mkdir -p build && echo out > build/out.txt
                  git status --short
              - uses: actions/checkout@v4
                with:
                  clean: false
              - run: |
                  echo "changed-lines=$(grep -c changed hello.txt)"
                  cat build/out.txt
                  echo "owner=$(stat -c %u hello.txt)"
    """)
    repo.commit()

    result = run("run", "--executor", "sandbox")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "M hello.txt" in result.stdout
    assert "changed-lines=0" in result.stdout  # reset by the second checkout
    assert "out" in result.stdout  # untracked: kept (clean: false)
    if os.geteuid() == 0:
        assert "owner=65534" in result.stdout
