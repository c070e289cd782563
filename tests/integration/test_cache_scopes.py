"""Cache scopes decided by the server from (project, ref, trust class), on the embedded
runner with real caches: an untrusted run may restore the default branch's entries but
writes only to its own scope, and a trusted run never restores what an untrusted run
wrote — even with the same key and a branch named `main` (SECURITY-CASES 32, 33)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import textwrap
from pathlib import Path

from shipline.domain.clock import SystemClock
from shipline.domain.records import RunRecord, Trust
from shipline.domain.status import Conclusion, Status
from shipline.engine.embedded import EmbeddedRunner
from shipline.engine.service import RunService, TriggerRequest
from shipline.engine.trust import cache_scopes
from shipline.executors.shell import ShellExecutor
from shipline.plan.events import Event
from shipline.runner.job import JobRunner
from shipline.runner.model import JobObserver
from shipline.scm.git_checkout import GitSourceProvider
from shipline.scm.repository import GitRepository
from shipline.store.blobs import BlobStore
from shipline.store.local import LocalArtifactStore, LocalCacheStore
from shipline.store.sql.store import SqlStore

WORKFLOW = """
    on: [push, pull_request]
    jobs:
      c:
        runs-on: x
        steps:
          - id: shared
            uses: actions/cache@v4
            with: {path: shared, key: shared-key}
          - id: poison
            uses: actions/cache@v4
            with: {path: poison, key: poison-key}
          - run: |
              echo "shared hit: ${{ steps.shared.outputs.cache-hit }}"
              echo "poison hit: ${{ steps.poison.outputs.cache-hit }}"
              echo "shared: $(cat shared/who 2>/dev/null || echo none)"
              echo "poison: $(cat poison/who 2>/dev/null || echo none)"
              mkdir -p shared
              echo "written by ${{ github.event_name }}" > shared/who
              if [ "${{ github.event_name }}" = pull_request ]; then
                mkdir -p poison && echo "written by pull_request" > poison/who
              fi
"""


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def test_scopes_follow_project_ref_and_trust() -> None:
    assert cache_scopes("app", "refs/heads/main", "main", Trust.TRUSTED) == (
        "app@refs/heads/main",
        (),
    )
    assert cache_scopes("app", "refs/heads/dev", "main", Trust.TRUSTED) == (
        "app@refs/heads/dev",
        ("app@refs/heads/main",),
    )
    # A fork's branch named `main` is still untrusted: its own scope, never main's.
    assert cache_scopes("app", "refs/heads/main", "main", Trust.UNTRUSTED) == (
        "app@refs/heads/main#untrusted",
        ("app@refs/heads/main",),
    )


def test_untrusted_runs_cannot_poison_trusted_caches(tmp_path: Path) -> None:
    source = tmp_path / "source"
    (source / ".shipline" / "workflows").mkdir(parents=True)
    git(source, "init", "-q", "-b", "main")
    git(source, "config", "user.email", "dev@example.com")
    git(source, "config", "user.name", "Dev")
    (source / ".shipline" / "workflows" / "ci.yml").write_text(textwrap.dedent(WORKFLOW))
    git(source, "add", "-A")
    git(source, "commit", "-q", "-m", "pipeline")
    store = SqlStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    clock = SystemClock()
    with store.transaction() as tx:
        project = tx.projects.create("app", str(source))
    mirrors = tmp_path / "mirrors"
    blobs = BlobStore(tmp_path / "blobs")
    caches = LocalCacheStore(blobs, tmp_path / "caches.json")

    def make_runner(observer: JobObserver, run: RunRecord) -> JobRunner:
        return JobRunner(
            ShellExecutor(kill_grace=1.0),
            observer,
            work_root=tmp_path / "work" / str(run.id),
            artifacts=LocalArtifactStore(blobs, tmp_path / "runs" / str(run.id)),
            caches=caches,
            source=GitSourceProvider(mirrors / str(run.project_id)),
            host_env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
        )

    def run_to_end(event: str) -> str:
        # A service per runner: a stopped runner stays among a service's listeners.
        runs = RunService(store, clock, lambda p: GitRepository(p.repository, mirrors / str(p.id)))
        runner = EmbeddedRunner(
            store, runs, clock, slots=1, make_runner=make_runner, poll_interval=0.05
        )
        if event == "pull_request":  # untrusted, as the server classifies a fork's PR
            repo = runs.repositories(project)
            repo.fetch()
            ref, sha = repo.resolve("main")
            pull = Event(name=event, ref=ref, sha=sha, repository=project.name, actor="dev")
            run = runs.trigger_event(project, pull, trust=Trust.UNTRUSTED, fetch=False)[0]
        else:
            run = runs.trigger(project, TriggerRequest(ref="main", event=event), actor="dev")[0]

        async def scenario() -> RunRecord:
            task = asyncio.ensure_future(runner.run())
            try:
                for _ in range(1200):
                    with store.transaction() as tx:
                        found = tx.runs.get(run.id)
                    assert found is not None
                    if found.status is Status.COMPLETED:
                        return found
                    await asyncio.sleep(0.05)
                raise AssertionError("the run did not complete")
            finally:
                await runner.stop(grace=5)
                await task

        done = asyncio.run(scenario())
        with store.transaction() as tx:
            (job,) = tx.jobs.for_run(run.id)
            log = b"".join(c.data for c in tx.logs.read(job.id)).decode()
        assert done.conclusion is Conclusion.SUCCESS, log
        return log

    first = run_to_end("push")
    assert "shared: none" in first
    pull = run_to_end("pull_request")  # untrusted, from a branch also called main
    assert "shared hit: true" in pull and "shared: written by push" in pull
    assert "poison: none" in pull
    again = run_to_end("push")
    assert "shared: written by push" in again  # the untrusted run could not overwrite it
    assert "poison hit: false" in again and "poison: none" in again
    scopes = {(c.scope, c.key) for c in caches.listed("app@")}
    assert scopes == {
        ("app@refs/heads/main", "shared-key"),
        ("app@refs/heads/main#untrusted", "poison-key"),
    }
