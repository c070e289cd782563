"""A job's token in its steps: `github.token` and `secrets.GITHUB_TOKEN`, masked, in the
environment only where the workflow references it, and carried from a remote runner's
claimed job into its assignment."""

from __future__ import annotations

import asyncio
import os
import textwrap
from pathlib import Path

from shipline.domain.status import Conclusion
from shipline.executors.shell import ShellExecutor
from shipline.plan.compile import compile_plan
from shipline.plan.events import Event
from shipline.runner.job import JobRunner
from shipline.runner.model import JobAssignment, JobResult, StepResult
from shipline.runner.remote.protocol import EventOut, JobOut, assignment_of
from shipline.scm.git_checkout import GitSourceProvider
from shipline.spec.workflow import load_workflow
from shipline.store.blobs import BlobStore
from shipline.store.local import LocalArtifactStore, LocalCacheStore

TOKEN = "shp_j_" + "Tk3n" * 10 + "abc"
WORKFLOW = """
on: push
jobs:
  build:
    runs-on: x
    outputs:
      leak: ${{ steps.s.outputs.leak }}
    steps:
      - id: s
        env:
          T: ${{ secrets.GITHUB_TOKEN }}
        run: |
          echo "github.token: ${{ github.token }}"
          echo "secret: $T, same: ${{ secrets.GITHUB_TOKEN == github.token }}"
          echo "in env: ${GITHUB_TOKEN:-unset}, any: $(env | grep -c "shp_[j]_" || true)"
          echo "leak=$T" >> "$GITHUB_OUTPUT"
      - run: echo "later step sees $(env | grep -c "shp_[j]_" || true) job tokens"
"""


class Lines:
    """Records what a job prints."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def job_started(self, job_key: str, name: str) -> None: ...

    def step_started(self, job_key: str, step_key: str, name: str) -> None: ...

    def output(self, job_key: str, step_key: str, lines: list[str]) -> None:
        self.lines.extend(lines)

    def step_finished(self, job_key: str, result: StepResult) -> None: ...

    def job_finished(self, result: JobResult) -> None: ...


def _assignment(token: str | None) -> JobAssignment:
    spec, diagnostics = load_workflow(textwrap.dedent(WORKFLOW), ".shipline/workflows/ci.yml")
    assert spec is not None, diagnostics
    plan = compile_plan(spec, Event(name="push", ref="refs/heads/main", sha="0" * 40))
    [job] = plan.jobs
    return JobAssignment(
        run_id="1", planned=job, workflow=spec, event=plan.event, github={}, token=token
    )


def _run(tmp_path: Path, token: str | None) -> tuple[JobResult, str]:
    observer = Lines()
    blobs = BlobStore(tmp_path / "blobs")
    runner = JobRunner(
        ShellExecutor(kill_grace=1.0),
        observer,
        work_root=tmp_path / "work",
        artifacts=LocalArtifactStore(blobs, tmp_path / "run"),
        caches=LocalCacheStore(blobs, tmp_path / "caches.json"),
        source=GitSourceProvider(tmp_path / "mirror"),
        host_env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
    )
    result = asyncio.run(runner.run(_assignment(token), asyncio.Event()))
    return result, "\n".join(observer.lines)


def test_steps_see_the_job_token_only_where_referenced_and_masked(tmp_path: Path) -> None:
    result, log = _run(tmp_path, TOKEN)
    assert result.conclusion is Conclusion.SUCCESS, log
    assert TOKEN not in log
    assert "github.token: ***" in log
    assert "secret: ***, same: true" in log
    assert "in env: unset, any: 1" in log  # only the `T` the step was given
    assert "later step sees 0 job tokens" in log
    assert result.outputs == {}  # the output holding the token is dropped
    assert "skip output 'leak'" in log


def test_without_a_server_there_is_no_token(tmp_path: Path) -> None:
    result, log = _run(tmp_path, None)
    assert result.conclusion is Conclusion.SUCCESS, log
    printed = [line.rstrip() for line in log.splitlines() if line.startswith("github.token:")]
    assert printed == ["github.token:"]
    assert "secret: , same: true" in log
    assert "later step sees 0 job tokens" in log


def test_a_remote_runners_job_carries_its_token_into_the_assignment() -> None:
    job = JobOut(
        job_id=7,
        run_id=3,
        try_number=1,
        token=TOKEN,
        key="build",
        workflow_job="build",
        name="build",
        workflow_file=".shipline/workflows/ci.yml",
        workflow_text=textwrap.dedent(WORKFLOW),
        event=EventOut(
            name="push", ref="refs/heads/main", sha="0" * 40, repository="app", actor="dev"
        ),
        github={"repository": "app"},
        lease_seconds=60,
        heartbeat_seconds=10,
    )
    assignment = assignment_of(job)
    assert assignment.token == TOKEN
    assert "GITHUB_TOKEN" not in assignment.secrets  # the runner adds it, masked
