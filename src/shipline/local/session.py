"""One `shipline run`: select the workflows an event triggers, plan them, run them here.

This module is the composition root of a local run: it is the only place that picks the
concrete executor, stores and source provider for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from shipline.domain.errors import UsageError, WorkflowError
from shipline.domain.status import Conclusion, combine
from shipline.engine.run import Engine, JobDispatcher, RunObserver, RunOptions, RunResult
from shipline.executors.shell import remove_job_dir
from shipline.local.repo import RepoInfo
from shipline.plan.compile import Plan, PlanError, compile_plan
from shipline.plan.events import Event
from shipline.plan.triggers import triggered
from shipline.runner.job import JobRunner, job_directory
from shipline.runner.model import JobAssignment, JobResult
from shipline.spec.diagnostics import Diagnostic, Severity
from shipline.spec.models import WorkflowSpec
from shipline.spec.workflow import load_workflow
from shipline.wiring import local_job_runner

# Variables of the user's environment that steps of a local run inherit.
HOST_ENV = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TERM",
    "TZ",
    "SHELL",
    "TMPDIR",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_FIND_LINKS",
    "PIP_CONSTRAINT",
    "PIP_CONFIG_FILE",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
)


@dataclass(frozen=True, slots=True)
class Selected:
    """A workflow the event starts, with its plan."""

    path: Path
    spec: WorkflowSpec
    plan: Plan


@dataclass(slots=True)
class WorkflowOutcome:
    selected: Selected
    result: RunResult


@dataclass(slots=True)
class SessionResult:
    conclusion: Conclusion
    workflows: list[WorkflowOutcome] = field(default_factory=list)
    run_number: int = 0
    state_dir: Path | None = None
    summaries: Path | None = None


T = TypeVar("T")


def read_spec(
    path: Path,
    root: Path,
    load: Callable[[str, str], tuple[T | None, list[Diagnostic]]],
    what: str,
) -> T:
    """Read a file of the repository and load it with `load` (a workflow or buildspec
    loader); UsageError when it cannot be read, WorkflowError with its diagnostics when it
    is invalid. Paths in messages are relative to the repository root."""
    rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{rel}: cannot read: {exc}") from exc
    spec, diagnostics = load(text, rel)
    if spec is None:
        errors = [d for d in diagnostics if d.severity is Severity.ERROR]
        raise WorkflowError(f"{rel} is not a valid {what}", list(errors or diagnostics))
    return spec


def read_workflow(path: Path, root: Path) -> WorkflowSpec:
    """Load one workflow file; WorkflowError carries the diagnostics of a broken one."""
    return read_spec(path, root, load_workflow, "workflow")


def uses_path_filters(specs: list[WorkflowSpec], event_name: str) -> bool:
    """Whether any of `specs` filters `event_name` by changed paths.

    Only then does a local run ask git for the changed paths (a process of its own).
    """
    for spec in specs:
        trigger = spec.triggers.get(event_name)
        if trigger is not None and (
            trigger.filters.paths is not None or trigger.filters.paths_ignore is not None
        ):
            return True
    return False


def select_workflows(
    workflows: list[tuple[Path, WorkflowSpec]],
    event: Event,
    *,
    jobs: list[str] | None,
    matrix: list[tuple[str, str]],
    explicit: bool,
) -> tuple[list[Selected], list[tuple[str, str]]]:
    """The workflows `event` starts (all given ones when `explicit`), planned.

    `workflows` are the files read with `read_workflow`. Returns the selected ones and the
    (file, reason) of those left out.
    """
    selected: list[Selected] = []
    skipped: list[tuple[str, str]] = []
    for path, spec in workflows:
        ok, reason = triggered(spec, event)
        if not ok and not explicit:
            skipped.append((spec.file, reason))
            continue
        if jobs and not any(spec.job(j) for j in jobs):
            skipped.append((spec.file, "has none of the jobs selected with -j"))
            continue
        try:
            plan = compile_plan(
                spec, event, jobs=[j for j in jobs or [] if spec.job(j)] or None, matrix=matrix
            )
        except PlanError as exc:
            raise WorkflowError(
                f"{spec.file}: {exc}",
                [Diagnostic("plan", Severity.ERROR, spec.file, 1, 1, str(exc))],
            ) from exc
        selected.append(Selected(path, spec, plan))
    return selected, skipped


def state_directory(root: Path, override: Path | None) -> Path:
    """`.shipline/local` in the repository (ignored by git through its own .gitignore)."""
    state = override if override is not None else root / ".shipline" / "local"
    state.mkdir(parents=True, exist_ok=True)
    ignore = state / ".gitignore"
    if override is None and not ignore.exists():
        ignore.write_text("# Shipline's local state: never committed.\n*\n")
    return state


def next_run_number(state: Path) -> tuple[int, Path]:
    runs = state / "runs"
    runs.mkdir(exist_ok=True)
    numbers = [int(p.name) for p in runs.iterdir() if p.name.isdigit()]
    number = max(numbers, default=0) + 1
    while True:
        run_dir = runs / str(number)
        try:
            run_dir.mkdir()
            return number, run_dir
        except FileExistsError:
            number += 1


def github_context(
    repo: RepoInfo, event: Event, spec: WorkflowSpec, run_number: int, run_id: str, event_path: Path
) -> dict[str, object]:
    owner = repo.repository.split("/", 1)[0]
    return {
        "event_name": event.name,
        "event": event.payload if isinstance(event.payload, dict) else {},
        "sha": event.sha,
        "ref": event.ref,
        "ref_name": event.ref_name,
        "ref_type": event.ref_type,
        "ref_protected": False,
        "head_ref": event.head_ref or "",
        "base_ref": event.base_ref or "",
        "repository": repo.repository,
        "repository_owner": owner,
        "repositoryUrl": f"file://{repo.root}",
        "actor": event.actor,
        "triggering_actor": event.actor,
        "workflow": spec.display_name,
        "workflow_ref": f"{repo.repository}/{spec.file}@{event.ref}",
        "run_id": run_id,
        "run_number": str(run_number),
        "run_attempt": "1",
        "retention_days": "90",
        "server_url": "http://localhost",
        "api_url": "http://localhost/api/v1",
        "graphql_url": "",
        "workspace": "",
        "action": "",
        "event_path": str(event_path),
        "token": "",
        "job": "",
        "secret_source": "None",
    }


@dataclass
class LocalRun:
    """Everything one `shipline run` needs; `run()` executes the selected workflows."""

    repo: RepoInfo
    event: Event
    selected: list[Selected]
    observer: RunObserver
    parallel: int
    vars: Mapping[str, str]
    secrets: Mapping[str, str]
    inputs: Mapping[str, object]
    matrix: tuple[tuple[str, str], ...] = ()
    state_override: Path | None = None
    keep_workspaces: bool = False
    debug: bool = False
    executor: str = "shell"
    engines: list[Engine] = field(default_factory=list)
    runner: JobRunner | None = None
    interrupts: int = 0

    def run(self) -> SessionResult:
        state = state_directory(self.repo.root, self.state_override)
        number, run_dir = next_run_number(state)
        use_pidfd_child_watcher()
        return asyncio.run(self._run(state, number, run_dir))

    async def _run(self, state: Path, number: int, run_dir: Path) -> SessionResult:
        host_env = {k: v for k, v in os.environ.items() if k in HOST_ENV}
        runner = local_job_runner(
            repo_root=self.repo.root,
            state_dir=state,
            run_dir=run_dir,
            observer=self.observer,
            host_env=host_env,
            executor=self.executor,
        )
        self.runner = runner
        event_path = run_dir / "event.json"
        event_path.write_text(json.dumps(self.event.payload or {}, indent=2))
        dispatcher: JobDispatcher = runner
        if not self.keep_workspaces:
            dispatcher = _RemovingDispatcher(runner)
        slots = asyncio.Semaphore(max(1, self.parallel))
        run_id = f"{int(time.time())}{number:04d}"
        for item in self.selected:
            options = RunOptions(
                run_id=run_id,
                parallel=self.parallel,
                vars=self.vars,
                secrets=self.secrets,
                inputs=self.inputs,
                debug=self.debug,
                matrix_selectors=self.matrix,
            )
            github = github_context(self.repo, self.event, item.spec, number, run_id, event_path)
            self.engines.append(
                Engine(item.plan, dispatcher, self.observer, options, github, slots)
            )
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGINT, self.cancel)
            loop.add_signal_handler(signal.SIGTERM, self.cancel)
        except (NotImplementedError, RuntimeError):
            pass
        try:
            results = await asyncio.gather(*(e.run() for e in self.engines))
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
            if isinstance(dispatcher, _RemovingDispatcher):
                await dispatcher.removed()
            if not self.keep_workspaces:
                shutil.rmtree(run_dir / "jobs", ignore_errors=True)
        outcomes = [WorkflowOutcome(s, r) for s, r in zip(self.selected, results, strict=True)]
        conclusion = combine([r.conclusion for r in results])
        if any(e.cancel.is_set() for e in self.engines):
            conclusion = Conclusion.CANCELLED  # the user stopped the run
        session = SessionResult(conclusion, outcomes, number, state)
        session.summaries = write_summaries(run_dir, outcomes)
        (run_dir / "run.json").write_text(json.dumps(session_json(session), indent=2))
        return session

    def cancel(self) -> None:
        """Ctrl-C: cancel (cleanup steps with `if: always()` still run); a second one
        kills every step at once; a third stops without waiting for anything."""
        self.interrupts += 1
        if self.interrupts == 1:
            self.observer.output(
                "", "", ["Cancelling: stopping running steps (Ctrl-C again to kill them now)"]
            )
            for engine in self.engines:
                engine.cancel_run()
        elif self.interrupts == 2 and self.runner is not None:
            self.observer.output("", "", ["Killing every running step (Ctrl-C again to quit)"])
            self.runner.force_stop()
        else:
            raise KeyboardInterrupt


class _RemovingDispatcher:
    """Runs jobs through `runner` and removes each job's directory once it has ended.

    In a worker thread, while the other jobs run: removing them all at the end of the
    run kept a run of many jobs waiting (directory removals are slow on some disks).
    """

    def __init__(self, runner: JobRunner) -> None:
        self.runner = runner
        self.removals: list[asyncio.Future[None]] = []

    async def run(self, job: JobAssignment, cancel: asyncio.Event) -> JobResult:
        try:
            return await self.runner.run(job, cancel)
        finally:
            root = job_directory(self.runner.work_root, job.key)
            loop = asyncio.get_running_loop()
            self.removals.append(loop.run_in_executor(None, remove_job_dir, root))

    async def removed(self) -> None:
        """Wait for the removals started so far."""
        await asyncio.gather(*self.removals, return_exceptions=True)


def write_summaries(run_dir: Path, outcomes: list[WorkflowOutcome]) -> Path | None:
    """Join the steps' GITHUB_STEP_SUMMARY texts into one Markdown file of the run."""
    parts: list[str] = []
    for outcome in outcomes:
        for job in outcome.result.jobs:
            texts = [s.summary for s in job.steps if s.summary.strip()]
            if texts:
                parts.append(f"## {outcome.selected.spec.display_name} / {job.name}\n")
                parts.extend(t.rstrip() + "\n" for t in texts)
    if not parts:
        return None
    path = run_dir / "summary.md"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def use_pidfd_child_watcher() -> None:
    """Let asyncio learn of step exits through pidfds instead of a thread per process.

    Python 3.12 does this by itself; 3.11's default starts a thread for every step.
    """
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return  # a kernel without pidfds (before 5.3)
    asyncio.set_child_watcher(asyncio.PidfdChildWatcher())


def session_json(session: SessionResult) -> dict[str, object]:
    """The stable `shipline run --json` document (see docs/json-output.md)."""
    workflows = []
    for outcome in session.workflows:
        jobs = []
        for job in sorted(outcome.result.jobs, key=lambda j: _order(outcome, j.job_id)):
            cell = next((p.matrix_dict for p in outcome.selected.plan.jobs if p.key == job.key), {})
            jobs.append(
                {
                    "id": job.job_id,
                    "name": job.name,
                    "matrix": cell or None,
                    "status": "completed",
                    "conclusion": str(job.conclusion),
                    "outputs": job.outputs,
                    "steps": [
                        {
                            "id": s.id or s.key,
                            "name": s.name,
                            "status": "completed",
                            "conclusion": str(s.conclusion),
                            "exit_code": s.exit_code,
                        }
                        for s in job.steps
                    ],
                }
            )
        workflows.append(
            {
                "file": outcome.selected.spec.file,
                "name": outcome.selected.spec.display_name,
                "status": str(outcome.result.conclusion),
                "jobs": jobs,
            }
        )
    return {"status": str(session.conclusion), "workflows": workflows}


def _order(outcome: WorkflowOutcome, job_id: str) -> int:
    order = outcome.selected.plan.order
    return order.index(job_id) if job_id in order else len(order)
