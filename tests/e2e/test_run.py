"""`shipline run` end to end: real git, real bash, the real CLI process."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.conftest import Repo


def test_dag_outputs_and_matrix(repo: Repo, run) -> None:
    repo.workflow("""
        on: push
        jobs:
          a:
            runs-on: ubuntu-latest
            outputs:
              x: ${{ steps.s.outputs.val }}
            steps:
              - id: s
                run: |
                  echo "sha is $GITHUB_SHA"
                  echo "val=42" >> "$GITHUB_OUTPUT"
          b:
            needs: a
            runs-on: ubuntu-latest
            strategy:
              matrix:
                n: [1, 2]
            steps:
              - run: echo "cell ${{ matrix.n }} got ${{ needs.a.outputs.x }}"
    """)
    sha = repo.commit()
    result = run("run", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["status"] == "success"
    jobs = doc["workflows"][0]["jobs"]
    assert [j["id"] for j in jobs] == ["a", "b", "b"]
    assert jobs[0]["outputs"] == {"x": "42"}
    assert sorted(j["matrix"]["n"] for j in jobs[1:]) == [1, 2]
    assert f"sha is {sha}" in result.stderr
    assert "cell 1 got 42" in result.stderr and "cell 2 got 42" in result.stderr
    step = jobs[0]["steps"][0]
    assert step == {
        "id": "s",
        "name": step["name"],
        "status": "completed",
        "conclusion": "success",
        "exit_code": 0,
    }


def test_failure_exit_code_and_skipped_dependents(repo: Repo, run) -> None:
    repo.workflow("""
        on: push
        jobs:
          broken:
            runs-on: ubuntu-latest
            steps:
              - run: exit 3
              - run: echo never printed
              - if: failure()
                run: echo cleanup ran
          after:
            needs: broken
            runs-on: ubuntu-latest
            steps:
              - run: echo should not run
          always:
            needs: broken
            if: always()
            runs-on: ubuntu-latest
            steps:
              - run: echo "saw ${{ needs.broken.result }}"
    """)
    repo.commit()
    result = run("run", "--json")
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    jobs = {j["id"]: j for j in doc["workflows"][0]["jobs"]}
    assert doc["status"] == "failure"
    assert jobs["broken"]["conclusion"] == "failure"
    assert [s["conclusion"] for s in jobs["broken"]["steps"]] == ["failure", "skipped", "success"]
    assert jobs["broken"]["steps"][0]["exit_code"] == 3
    assert jobs["after"]["conclusion"] == "skipped"
    assert jobs["always"]["conclusion"] == "success"
    assert "never printed" not in result.stderr
    assert "cleanup ran" in result.stderr
    assert "saw failure" in result.stderr


def test_matrix_selection_and_summary(repo: Repo, run) -> None:
    repo.workflow("""
        on: push
        jobs:
          test:
            runs-on: ubuntu-latest
            strategy:
              matrix:
                python-version: ["3.10", "3.11", "3.12"]
                os: [ubuntu-latest]
            steps:
              - run: echo "testing on ${{ matrix.python-version }}"
    """)
    repo.commit()
    result = run("run", "-j", "test", "--matrix", "python-version=3.11")
    assert result.returncode == 0, result.stderr
    assert "testing on 3.11" in result.stdout
    assert "testing on 3.10" not in result.stdout
    assert "run #1: success" in result.stdout
    assert "3.11, ubuntu-latest" in result.stdout


def test_env_precedence_github_env_and_path(repo: Repo, run) -> None:
    repo.workflow("""
        on: push
        env:
          LEVEL: workflow
          KEEP: from-workflow
        jobs:
          env:
            runs-on: ubuntu-latest
            env:
              LEVEL: job
            steps:
              - run: |
                  echo "FROM_FILE=hello" >> "$GITHUB_ENV"
                  mkdir -p "$RUNNER_TEMP/bin"
                  printf '#!/bin/sh\\necho tool-ran\\n' > "$RUNNER_TEMP/bin/mytool"
                  chmod +x "$RUNNER_TEMP/bin/mytool"
                  echo "$RUNNER_TEMP/bin" >> "$GITHUB_PATH"
                  { echo 'multi<<EOF'; echo 'line one'; echo 'line two'; echo 'EOF'; } >> "$GITHUB_OUTPUT"
                id: first
              - env:
                  LEVEL: step
                run: |
                  echo "level=$LEVEL keep=$KEEP file=$FROM_FILE ci=$CI"
                  mytool
                  echo "twin=$SHIPLINE_SHA"
              - run: echo "multi=${{ steps.first.outputs.multi }}" | head -1
    """)
    sha = repo.commit()
    result = run("run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "level=step keep=from-workflow file=hello ci=true" in result.stdout
    assert "tool-ran" in result.stdout
    assert f"twin={sha}" in result.stdout
    assert "multi=line one" in result.stdout


def test_secrets_are_masked_and_never_on_argv(repo: Repo, run) -> None:
    canary = secrets.token_hex(16)
    repo.workflow("""
        on: push
        jobs:
          leak:
            runs-on: ubuntu-latest
            steps:
              - env:
                  TOKEN: ${{ secrets.CANARY }}
                run: |
                  echo "raw: $TOKEN"
                  echo "b64: $(printf '%s' "$TOKEN" | base64)"
                  echo "user: $(printf 'user:%s' "$TOKEN" | base64)"
                  printf '%s' "${TOKEN:0:10}"; sleep 0.2; printf '%s\\n' "${TOKEN:10}"
                  tr '\\0' ' ' < /proc/self/cmdline; echo
                  echo "::set-env name=EVIL::1"
                  echo "evil=${EVIL:-unset}"
    """)
    repo.commit()
    result = run("run", "--secret", "CANARY", "--json", env={"CANARY": canary})
    assert result.returncode == 0, result.stderr
    everything = result.stdout + result.stderr
    assert canary not in everything
    assert "raw: ***" in result.stderr
    assert "evil=unset" in result.stderr
    assert "set-env` command is disabled" in result.stderr
    state = repo.root / ".shipline" / "local"
    for path in state.rglob("*"):
        if path.is_file():
            assert canary.encode() not in path.read_bytes(), path


def test_secret_value_on_command_line_is_refused(repo: Repo, run) -> None:
    repo.workflow("on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - run: 'true'\n")
    repo.commit()
    result = run("run", "--secret", "TOKEN=abc")
    assert result.returncode == 2
    assert "never the value itself" in result.stderr
    assert "abc" not in result.stderr


def test_secrets_file(repo: Repo, run, tmp_path: Path) -> None:
    secrets_file = tmp_path / "secrets.env"
    secrets_file.write_text('API_KEY="s3cr3t-value-123"\n')
    digest = "a3c5b6ee4c8ea5bd0e5f4d6a1b1c0c79"  # not the value: the workflow must not hold it
    repo.workflow("""
        on: push
        jobs:
          a:
            runs-on: ubuntu-latest
            steps:
              - run: echo "got $K ${#K}"
                env:
                  K: ${{ secrets.API_KEY }}
    """)
    repo.commit()
    result = run("run", "--secrets-file", str(secrets_file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "got *** 16" in result.stdout
    assert "s3cr3t-value-123" not in result.stdout
    assert digest not in result.stdout


def test_continue_on_error_timeout_and_shells(repo: Repo, run) -> None:
    repo.workflow("""
        on: push
        jobs:
          a:
            runs-on: ubuntu-latest
            steps:
              - id: flaky
                continue-on-error: true
                run: exit 1
              - run: echo "outcome=${{ steps.flaky.outcome }} conclusion=${{ steps.flaky.conclusion }}"
              - shell: python
                run: |
                  import sys
                  print("python", sys.version_info.major)
              - shell: sh
                run: echo "from sh"
              - name: slow
                timeout-minutes: 0.02
                continue-on-error: true
                run: sleep 30
    """)
    repo.commit()
    started = time.monotonic()
    result = run("run", "--json")
    assert time.monotonic() - started < 25
    assert result.returncode == 0, result.stderr
    assert "outcome=failure conclusion=success" in result.stderr
    assert "python 3" in result.stderr
    assert "from sh" in result.stderr
    assert "exceeded its timeout" in result.stderr


def test_pipefail_is_the_default(repo: Repo, run) -> None:
    repo.workflow("""
        on: push
        jobs:
          a:
            runs-on: ubuntu-latest
            steps:
              - run: false | cat
    """)
    repo.commit()
    assert run("run").returncode == 1


def test_workflow_dispatch_inputs(repo: Repo, run) -> None:
    repo.workflow("""
        on:
          workflow_dispatch:
            inputs:
              level:
                type: choice
                options: [low, high]
                default: low
              dry:
                type: boolean
        jobs:
          a:
            runs-on: ubuntu-latest
            steps:
              - run: echo "level=${{ inputs.level }} dry=${{ inputs.dry }} ${{ github.event.inputs.level }}"
    """)
    repo.commit()
    ok = run("run", "--event", "workflow_dispatch", "--input", "level=high", "--input", "dry=true")
    assert ok.returncode == 0, ok.stderr
    assert "level=high dry=true high" in ok.stdout
    bad = run("run", "--event", "workflow_dispatch", "--input", "level=medium")
    assert bad.returncode == 2
    assert "must be one of low, high" in bad.stderr
    not_triggered = run("run")
    assert not_triggered.returncode == 2
    assert "not triggered by push" in not_triggered.stderr


def test_branch_filters_select_workflows(repo: Repo, run) -> None:
    repo.workflow(
        "on:\n  push:\n    branches: [release/*]\njobs:\n  r:\n    runs-on: x\n"
        "    steps:\n      - run: echo release\n",
        name="release.yml",
    )
    repo.workflow(
        "on:\n  push:\n    branches: [main]\njobs:\n  m:\n    runs-on: x\n"
        "    steps:\n      - run: echo main-ran\n",
        name="main.yml",
    )
    repo.commit()
    result = run("run")
    assert result.returncode == 0, result.stderr
    assert "main-ran" in result.stdout
    assert "skipping .shipline/workflows/release.yml" in result.stdout


def test_invalid_workflow_exits_2_with_position(repo: Repo, run) -> None:
    repo.workflow("on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - runn: echo\n")
    repo.commit()
    result = run("run")
    assert result.returncode == 2
    assert "ci.yml:6:9" in result.stderr
    assert 'did you mean "run"' in result.stderr
    assert "Traceback" not in result.stderr


def test_not_a_repository(tmp_path: Path) -> None:
    from tests.e2e.conftest import shipline

    result = shipline("run", cwd=tmp_path)
    assert result.returncode == 2
    assert "not inside a git repository" in result.stderr
    assert "Traceback" not in result.stderr


def test_ctrl_c_cancels_and_prints_summary(repo: Repo, tmp_path: Path) -> None:
    marker = tmp_path / "started"
    repo.workflow(f"""
        on: push
        jobs:
          long:
            runs-on: ubuntu-latest
            steps:
              - run: |
                  touch {marker}
                  sleep 987
    """)
    repo.commit()
    proc = subprocess.Popen(
        [sys.executable, "-m", "shipline", "run", "--json"],
        cwd=repo.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the step never started"
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("shipline did not stop on SIGINT") from None
    assert proc.returncode == 1, err
    doc = json.loads(out)
    assert doc["status"] == "cancelled"
    assert "run #1: cancelled" in err
    assert (
        "sleep 987"
        not in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    )


def test_lint_reports_every_problem(repo: Repo, run) -> None:
    repo.workflow("""
        on: push
        jobs:
          a:
            runs-on: ubuntu-latest
            needs: nope
            steps:
              - runn: echo
              - uses: someone/unknown-action@v1
    """)
    result = run("lint", "--json")
    assert result.returncode == 1
    diagnostics = json.loads(result.stdout)
    codes = {d["code"] for d in diagnostics}
    assert "syntax-check" in codes
    assert "job-needs" in codes
    unknown = [d for d in diagnostics if "someone/unknown-action" in d["message"]]
    assert unknown and unknown[0]["severity"] == "warning"
    text = run("lint")
    assert '.shipline/workflows/ci.yml:8:9: error syntax-check: unexpected key "runn"' in (
        text.stdout
    )


def test_expr_command(repo: Repo, run, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx.json"
    ctx.write_text(json.dumps({"github": {"ref": "refs/heads/main"}}))
    ok = run("expr", "github.ref == 'refs/heads/main' && 'yes'", "--context", str(ctx))
    assert ok.returncode == 0
    assert json.loads(ok.stdout) == "yes"
    bad = run("expr", "1 +")
    assert bad.returncode == 2
    assert "1 +" in bad.stderr


def test_plan_explains_jobs(repo: Repo, run) -> None:
    repo.workflow("""
        on: push
        jobs:
          a:
            runs-on: x
            steps: [{run: 'true'}]
          b:
            needs: a
            if: github.ref == 'refs/heads/main'
            runs-on: x
            strategy:
              matrix:
                v: [1, 2]
            steps: [{run: 'true'}]
    """)
    repo.commit()
    result = run("plan", "--json")
    assert result.returncode == 0, result.stderr
    jobs = json.loads(result.stdout)["workflows"][0]["jobs"]
    assert [j["key"] for j in jobs] == ["a", "b (1)", "b (2)"]
    assert jobs[1]["needs"] == ["a"]
    assert jobs[1]["if"] == "github.ref == 'refs/heads/main'"
    assert jobs[1]["name"] == "b (1)"


def test_terminal_output_uses_rich_progress_and_table(repo: Repo) -> None:
    """On a TTY the run shows coloured prefixes, a status line and a summary table."""
    import pty

    repo.workflow("""
        on: push
        jobs:
          build:
            runs-on: ubuntu-latest
            steps:
              - run: echo "::warning file=src/a.py,line=7::be careful" && echo visible-line
    """)
    repo.commit()
    pid, fd = pty.fork()
    if pid == 0:  # the child: run shipline with the pty as its terminal
        os.chdir(repo.root)
        os.execv(sys.executable, [sys.executable, "-m", "shipline", "run"])
    chunks = []
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    _, status = os.waitpid(pid, 0)
    text = b"".join(chunks).decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "visible-line" in text
    assert "\x1b[" in text  # colours
    assert "┏" in text and "run #1: success" in text  # the Rich summary table
    assert "warning: src/a.py:7: be careful (build)" in text


def test_fail_fast_after_a_failure_concludes_failure(repo: Repo, run) -> None:
    repo.workflow("""
        on: push
        jobs:
          t:
            runs-on: ubuntu-latest
            strategy:
              matrix:
                n: [1, 2, 3]
            steps:
              - run: if [ ${{ matrix.n }} = 1 ]; then exit 1; fi; sleep 5
    """)
    repo.commit()
    result = run("run", "--json", "--parallel", "3")
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    assert doc["status"] == "failure"
    conclusions = sorted(j["conclusion"] for j in doc["workflows"][0]["jobs"])
    assert conclusions == ["cancelled", "cancelled", "failure"]


def test_jobs_shipline_cannot_run_fail_clearly(repo: Repo, run) -> None:
    """Reusable workflows and containers fail the job; they never run on the host."""
    repo.workflow("""
        on: push
        jobs:
          reuse:
            uses: ./.github/workflows/other.yml
          boxed:
            runs-on: ubuntu-latest
            container: node:20
            steps:
              - run: echo RAN-ON-HOST
    """)
    repo.commit()
    result = run("run", "--json")
    assert result.returncode == 1
    jobs = {j["id"]: j for j in json.loads(result.stdout)["workflows"][0]["jobs"]}
    assert jobs["reuse"]["conclusion"] == "failure"
    assert jobs["boxed"]["conclusion"] == "failure"
    assert "RAN-ON-HOST" not in result.stderr
    assert "reusable workflows are not supported yet" in result.stderr
    warnings = json.loads(run("lint", "--json").stdout)
    assert {d["code"] for d in warnings} >= {"workflow-call", "unsupported"}


def test_ctrl_c_still_runs_cleanup_steps_and_a_second_kills(repo: Repo, tmp_path: Path) -> None:
    """GitHub's semantics: `if: always()` steps run in a cancelled job; a second Ctrl-C
    (a forced stop) ends them too, with a summary and no process left behind."""
    marker = tmp_path / "started"
    cleanup = tmp_path / "cleanup-started"
    repo.workflow(f"""
        on: push
        jobs:
          long:
            runs-on: ubuntu-latest
            steps:
              - run: touch {marker}; sleep 981
              - if: always()
                run: echo cleanup-ran; touch {cleanup}; sleep 982
    """)
    repo.commit()
    proc = subprocess.Popen(
        [sys.executable, "-m", "shipline", "run", "--json"],
        cwd=repo.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def wait_for(path: Path) -> None:
        deadline = time.monotonic() + 30
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert path.exists(), f"{path.name} never appeared"

    wait_for(marker)
    proc.send_signal(signal.SIGINT)
    wait_for(cleanup)  # the cleanup step started although the job is cancelled
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("the second Ctrl-C did not stop the run") from None
    assert proc.returncode == 1, err
    assert json.loads(out)["status"] == "cancelled"
    assert "cleanup-ran" in err
    assert "Traceback" not in err
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert "sleep 981" not in ps and "sleep 982" not in ps


def test_lint_from_a_subdirectory_and_matrix_feedback(repo: Repo, run) -> None:
    from tests.e2e.conftest import shipline

    repo.workflow("""
        on: push
        jobs:
          test:
            runs-on: ubuntu-latest
            strategy:
              matrix:
                v: ["1", "2"]
            steps:
              - run: echo "v=${{ matrix.v }}"
    """)
    repo.write("src/pkg/__init__.py", "")
    repo.commit()
    lint = shipline("lint", cwd=repo.root / "src" / "pkg")
    assert lint.returncode == 0, lint.stderr
    assert "1 file(s) checked" in lint.stderr
    chosen = run("run", "--matrix", "v=2")
    assert "not running test (1)" in chosen.stdout and "v=2" in chosen.stdout
    nothing = run("run", "--matrix", "v=9")
    assert nothing.returncode == 2  # nothing left to run
    assert "no job is left" in nothing.stderr


def test_plan_shows_job_names_evaluated(repo: Repo, run) -> None:
    repo.workflow("""
        on: push
        jobs:
          t:
            name: test ${{ matrix.v }} on ${{ github.event_name }}
            runs-on: x
            strategy:
              matrix:
                v: [a]
            steps: [{run: 'true'}]
    """)
    repo.commit()
    jobs = json.loads(run("plan", "--json").stdout)["workflows"][0]["jobs"]
    assert jobs[0]["name"] == "test a on push"
