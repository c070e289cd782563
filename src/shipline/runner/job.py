"""Runs one job: its steps in order, through an executor, with GitHub's semantics.

For each step: evaluate `if` (with the job's status), build its environment (defaults <
workflow env < job env < GITHUB_ENV < step env), run the script or the built-in action,
stream masked output to the observer, then read GITHUB_OUTPUT / GITHUB_ENV / GITHUB_PATH.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from shipline.domain.artifacts import ActionFailed
from shipline.domain.status import Conclusion
from shipline.executors.base import Executor, JobEnv, StepProcess
from shipline.executors.shell import remove_job_dir
from shipline.runner.commands import OutputProcessor
from shipline.runner.context import EvaluationFailed, Evaluator, JobState, runner_context
from shipline.runner.environment import command_file_env, default_env
from shipline.runner.files import CommandFileError, read_key_values, read_paths
from shipline.runner.isolation import SandboxPolicy, isolation_for
from shipline.runner.model import JobAssignment, JobObserver, JobResult, StepResult
from shipline.runner.shells import ShellError, render, resolve_shell
from shipline.security.masking import Masker

if TYPE_CHECKING:
    # Built-in and composite actions load with the first `uses:` step.
    from shipline.runner.actions.base import BuiltinAction
    from shipline.runner.ports import ActionCall, ArtifactStore, CacheStore, SourceProvider
    from shipline.spec.models import StepSpec


class JobRunner:
    """Runs jobs on one machine through an executor.

    `work_root` is where job directories are made (`<work_root>/<job>/workspace`);
    `host_env` the environment the shell executor's processes start from (PATH, HOME, ...).
    """

    def __init__(
        self,
        executor: Executor,
        observer: JobObserver,
        *,
        work_root: Path,
        artifacts: ArtifactStore,
        caches: CacheStore,
        source: SourceProvider,
        host_env: Mapping[str, str],
        policy: SandboxPolicy | None = None,
        ephemeral: bool = False,
    ) -> None:
        self.executor = executor
        self.policy = policy or SandboxPolicy()
        # Each job starts from an empty directory and leaves nothing behind (a server's
        # runner); `shipline run` removes them itself, unless asked to keep them.
        self.ephemeral = ephemeral
        self.observer = observer
        self.work_root = work_root
        self.artifacts = artifacts
        self.caches = caches
        self.source = source
        self.host_env = dict(host_env)
        # Set by a forced stop (a second Ctrl-C, a server past its shutdown grace): ends
        # every step now, even those that run because of `if: always()` in a cancelled job.
        self.forced = asyncio.Event()

    def force_stop(self) -> None:
        self.forced.set()

    async def run(self, job: JobAssignment, cancel: asyncio.Event) -> JobResult:
        return await _JobRun(self, job, cancel).run()


class _JobRun:
    def __init__(self, runner: JobRunner, job: JobAssignment, cancel: asyncio.Event) -> None:
        self.r = runner
        self.job = job
        self.cancel = cancel
        root = job_directory(runner.work_root, job.key)
        isolation, self.refused = isolation_for(runner.policy, job.trust, job.planned.spec.sandbox)
        event = str(job.github.get("event_path") or "")
        self.env = JobEnv(
            job.key,
            root,
            root / "workspace",
            root / "temp",
            root / "tool_cache",
            isolation,
            Path(event) if event else None,
            # A `uses:` step may start processes of its own (before and after it too).
            len(job.planned.spec.steps)
            if all(step.uses is None for step in job.planned.spec.steps)
            else None,
            remove=runner.ephemeral,
        )
        self.state = JobState(workspace=self.env.workspace)
        # The job's token is a secret like the others: masked in every line and error.
        self.masker = Masker([*job.secrets.values(), *([job.token] if job.token else [])])
        self.spec = job.planned.spec
        self.result = JobResult(
            job.key, job.planned.job_id, job.planned.display_name, Conclusion.SUCCESS
        )
        # `github.job` is the job's id, as on GitHub (the run's context leaves it empty).
        self.github = {**job.github, "job": job.github.get("job") or job.planned.job_id}
        # As on GitHub, the job's token is `github.token` and `secrets.GITHUB_TOKEN`, and
        # reaches a step's environment only where the workflow references it.
        self.secrets = dict(job.secrets)
        if job.token:
            self.github["token"] = job.token
            self.secrets["GITHUB_TOKEN"] = job.token
        self.steps_ctx: dict[str, object] = {}
        self.env_file_values: dict[str, str] = {}
        self.path_prepend: list[str] = []
        self.posts: list[tuple[BuiltinAction, ActionCall, StepResult]] = []
        self.file_counter = 0
        self.base_env: dict[str, str] = {}
        self.static_env: dict[str, str] | None = None
        self.contexts = self._contexts()
        self.evaluator = Evaluator(self.contexts, self.state, job.workflow.file)

    def _contexts(self) -> dict[str, object]:
        planned = self.job.planned
        strategy = self.spec.strategy
        return {
            "github": {**self.github, "workspace": str(self.env.workspace)},
            "env": {},
            "vars": dict(self.job.vars),
            "secrets": dict(self.secrets),
            "inputs": dict(self.job.inputs),
            "needs": dict(self.job.needs),
            "matrix": planned.matrix_dict,
            "strategy": {
                "fail-fast": strategy.fail_fast if strategy else True,
                "job-index": planned.matrix_index,
                "job-total": planned.matrix_total,
                "max-parallel": (
                    strategy.max_parallel
                    if strategy and strategy.max_parallel
                    else planned.matrix_total
                ),
            },
            "job": {"status": "success", "container": {}, "services": {}},
            "runner": runner_context(self.env.temp, self.env.tool_cache, self.job.debug),
            "steps": self.steps_ctx,
        }

    def log(self, line: str, step_key: str = "") -> None:
        self.r.observer.output(self.job.key, step_key, [self.masker.mask(line)])

    async def run(self) -> JobResult:
        obs = self.r.observer
        self.result.started = time.time()
        if self.spec.name and "${{" in self.spec.name:
            # `name: tests on ${{ matrix.python-version }}`: GitHub shows it evaluated.
            with contextlib.suppress(EvaluationFailed):
                self.result.name = self.evaluator.string(self.spec.name, "name", self.spec.pos.line)
        obs.job_started(self.job.key, self.result.name)
        unsupported = self.spec.unsupported()
        if unsupported is not None:
            # Running the steps on the host instead would silently change what they do.
            self.result.conclusion = Conclusion.FAILURE
            self.result.error = unsupported
            self.log(f"Error: {unsupported}")
            self.result.finished = time.time()
            obs.job_finished(self.result)
            return self.result
        try:
            if self.r.ephemeral and os.path.lexists(self.env.root):  # left by a crash
                await asyncio.to_thread(remove_job_dir, self.env.root)
            await self.r.executor.setup(self.env)
            for line in self.r.executor.describe(self.env):
                self.log(line)
            for refused in self.refused:
                self.log(f"Warning: {refused}")
            timeout = self._minutes(
                self.spec.timeout_minutes, "timeout-minutes", self.spec.pos.line
            )
            try:
                await asyncio.wait_for(self._steps(), timeout=timeout * 60 if timeout else None)
            except TimeoutError:
                self.state.failed = True
                self.result.conclusion = Conclusion.FAILURE
                self.result.error = f"the job exceeded its timeout of {timeout:g} minutes"
                self.log(f"Error: {self.result.error}")
            await self._post_steps()
            self._job_outputs()
        except EvaluationFailed as exc:
            self.result.conclusion = Conclusion.FAILURE
            self.result.error = str(exc)
            self.log(f"Error: {exc}")
        finally:
            await self.r.executor.destroy(self.env)  # removes the job's directory too
            if self.cancel.is_set() and self.result.conclusion is not Conclusion.FAILURE:
                self.result.conclusion = Conclusion.CANCELLED
            self.result.finished = time.time()
            self._mask_errors()
            obs.job_finished(self.result)
        return self.result

    def _mask_errors(self) -> None:
        """Error messages quote commands and values: mask them as the log is masked."""
        if not self.masker:
            return
        if self.result.error:
            self.result.error = self.masker.mask(self.result.error)
        for step in self.result.steps:
            if step.error:
                step.error = self.masker.mask(step.error)

    def _minutes(self, value: float | str | None, where: str, line: int) -> float | None:
        if value is None:
            return None
        if isinstance(value, str):
            evaluated = self.evaluator.value(value, where, line)
            try:
                return float(evaluated)  # type: ignore[arg-type]
            except (TypeError, ValueError) as exc:
                raise EvaluationFailed(
                    f"{self.job.workflow.file}:{line}: {where} must be a number, got {evaluated!r}"
                ) from exc
        return float(value)

    def _bool(self, value: bool | str, where: str, line: int) -> bool:
        if isinstance(value, bool):
            return value
        from shipline.spec.expressions import truthy

        return truthy(self.evaluator.value(value, where, line))  # type: ignore[arg-type]

    async def _steps(self) -> None:
        wf_env = self.evaluator.env(self.job.workflow.env, "env", 1)
        self.contexts["env"] = dict(wf_env)
        job_env = self.evaluator.env(self.spec.env, f"jobs.{self.spec.id}.env", self.spec.pos.line)
        self.base_env = {**wf_env, **job_env}
        for step in self.spec.steps:
            result = await self._step(step)
            self.result.steps.append(result)
            if result.conclusion is Conclusion.FAILURE:
                self.state.failed = True
                self.result.conclusion = Conclusion.FAILURE
                self.contexts["job"] = {**self.contexts["job"], "status": "failure"}  # type: ignore[dict-item]

    async def _step(self, step: StepSpec) -> StepResult:
        name = step.display_name()
        result = StepResult(step.key, step.id, name)
        self.state.cancelled = self.cancel.is_set()
        step_env_ctx = {**self.base_env, **self.env_file_values}
        self.contexts["env"] = step_env_ctx
        try:
            if step.name and "${{" in step.name:
                result.name = name = self.evaluator.string(step.name, "name", step.pos.line)
            run_it = self.evaluator.condition(step.if_, "if", step.pos.line)
        except EvaluationFailed as exc:
            self.r.observer.step_started(self.job.key, step.key, name)
            return self._finish_error(result, str(exc))
        if not run_it:
            self._record(step, result)
            self.r.observer.step_finished(self.job.key, result)
            return result
        self.r.observer.step_started(self.job.key, step.key, name)
        result.started = time.time()
        try:
            step_env = self.evaluator.env(step.env, "env", step.pos.line)
            self.contexts["env"] = {**step_env_ctx, **step_env}
            continue_on_error = self._bool(
                step.continue_on_error, "continue-on-error", step.pos.line
            )
            timeout = self._minutes(step.timeout_minutes, "timeout-minutes", step.pos.line)
            if step.uses:
                outcome = await self._action(step, result, step_env)
            else:
                outcome = await self._script(step, result, step_env, timeout)
        except EvaluationFailed as exc:
            return self._finish_error(result, str(exc))
        except (ShellError, CommandFileError, ActionFailed) as exc:
            self.log(f"Error: {exc}", step.key)
            result.error = str(exc)
            outcome = Conclusion.FAILURE
            continue_on_error = self._safe_bool(step)
        result.outcome = outcome
        result.conclusion = (
            Conclusion.SUCCESS if outcome is Conclusion.FAILURE and continue_on_error else outcome
        )
        result.finished = time.time()
        self._record(step, result)
        self.r.observer.step_finished(self.job.key, result)
        return result

    def _safe_bool(self, step: StepSpec) -> bool:
        try:
            return self._bool(step.continue_on_error, "continue-on-error", step.pos.line)
        except EvaluationFailed:
            return False

    def _finish_error(self, result: StepResult, message: str) -> StepResult:
        self.log(f"Error: {message}", result.key)
        result.error = message
        result.outcome = result.conclusion = Conclusion.FAILURE
        result.finished = time.time()
        self.r.observer.step_finished(self.job.key, result)
        return result

    def _record(self, step: StepSpec, result: StepResult) -> None:
        if step.id:
            self.steps_ctx[step.id] = {
                "outputs": dict(result.outputs),
                "outcome": str(result.outcome),
                "conclusion": str(result.conclusion),
            }

    def _process_env(
        self, step_env: Mapping[str, str], files: Mapping[str, Path]
    ) -> dict[str, str]:
        if self.static_env is None:
            # The same for every step of the job: built once.
            self.static_env = {
                **self.r.host_env,
                **default_env(self.job, self.env, step_key="", files={}),
            }
        env = dict(self.static_env)
        env.update(command_file_env(files))
        env.update(self.base_env)
        env.update(self.env_file_values)
        env.update(step_env)
        if self.path_prepend:
            env["PATH"] = os.pathsep.join([*reversed(self.path_prepend), env.get("PATH", "")])
        return env

    def _command_files(self, key: str) -> dict[str, Path]:
        """Fresh paths for the step's GITHUB_OUTPUT/ENV/PATH/STEP_SUMMARY/STATE files.

        They are not created beforehand (a step's `>>` creates them): creating five files
        per step was the largest part of a step's fixed cost.
        """
        self.file_counter += 1
        folder = self.env.temp / "_runner_file_commands"
        return {
            kind: folder / f"{kind}_{self.file_counter}_{key}"
            for kind in ("output", "env", "path", "step_summary", "state")
        }

    async def _script(
        self, step: StepSpec, result: StepResult, step_env: dict[str, str], timeout: float | None
    ) -> Conclusion:
        script = self.evaluator.string(step.run or "", "run", step.run_pos.line or step.pos.line)
        files = self._command_files(step.key)
        env = self._process_env(step_env, files)
        shell = step.shell or self.spec.defaults.shell or self.job.workflow.defaults.shell
        argv, ext = resolve_shell(shell, env.get("PATH"))
        script_path = self.env.temp / f"{step.key}{ext}"
        # On the event loop: a small file in the job's own directory costs less to write
        # than a worker thread's hand-off (about 0.35 ms of CPU with the GIL contended).
        folder = files["output"].parent if self.file_counter == 1 else None
        write_script(script_path, script, folder)
        cwd = self._working_dir(step)
        process = StepProcess(
            f"{self.job.key}/{step.key}",
            render(argv, str(script_path)),
            env,
            cwd,
            timeout * 60 if timeout else None,
        )
        exit_ = await self._execute(process, step.key)
        result.exit_code = exit_.exit_code
        self._read_files(files, result)
        if exit_.reason and not exit_.cancelled:
            # A limit of the job's sandbox was involved: say which, whatever ended the step.
            self.log(f"Error: {exit_.reason}", step.key)
            result.error = exit_.reason
        if exit_.timed_out:
            self.log(f"Error: the step exceeded its timeout of {timeout:g} minutes", step.key)
            return Conclusion.FAILURE
        if exit_.cancelled:
            return Conclusion.CANCELLED
        if exit_.exit_code != 0:
            self.log(f"Error: Process completed with exit code {exit_.exit_code}.", step.key)
            return Conclusion.FAILURE
        return Conclusion.SUCCESS

    def _working_dir(self, step: StepSpec) -> Path:
        wd = (
            step.working_directory
            or self.spec.defaults.working_directory
            or self.job.workflow.defaults.working_directory
        )
        if not wd:
            return self.env.workspace
        text = self.evaluator.string(wd, "working-directory", step.pos.line)
        path = (self.env.workspace / text).resolve()
        if not path.is_dir():
            raise ShellError(f"working-directory {text!r} does not exist in the workspace")
        return path

    async def _execute(self, process: StepProcess, step_key: str):  # type: ignore[no-untyped-def]
        observer = self.r.observer
        job_key = self.job.key
        processor = OutputProcessor(
            self.masker,
            lambda lines: observer.output(job_key, step_key, lines),
            self.result.annotations.append,
            debug=self.job.debug,
        )
        handle = await self.r.executor.start(self.env, process)

        # A step that starts after the job was cancelled runs because its `if` asked for it
        # (always(), cancelled()): as on GitHub it finishes, unless the stop is forced.
        cancelled_before = self.cancel.is_set()

        async def watch_cancel() -> None:
            waits = [asyncio.ensure_future(self.r.forced.wait())]
            if not cancelled_before:
                waits.append(asyncio.ensure_future(self.cancel.wait()))
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for wait in waits:
                    wait.cancel()
            await self.r.executor.kill(handle)

        cancel_task = asyncio.ensure_future(watch_cancel())
        try:
            # The output is read here, in this task, until it ends (the step and anything
            # it left running have closed it); the exit is known by then or soon after.
            async for chunk in self.r.executor.tail(handle):
                processor.feed(chunk)
            processor.close()
            return await self.r.executor.wait(handle)
        finally:
            cancel_task.cancel()

    def _read_files(self, files: Mapping[str, Path], result: StepResult) -> None:
        for name, value in read_key_values(files["output"], "GITHUB_OUTPUT"):
            result.outputs[name] = value
        for name, value in read_key_values(files["env"], "GITHUB_ENV"):
            if name.upper() in ("NODE_OPTIONS",) or name.upper().startswith("GITHUB_"):
                self.log(f"Warning: GITHUB_ENV may not set {name}", result.key)
                continue
            self.env_file_values[name] = value
        self.path_prepend.extend(read_paths(files["path"]))
        try:
            summary = files["step_summary"].read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            summary = ""
        if summary.strip():
            result.summary = self.masker.mask(summary)

    async def _action(
        self, step: StepSpec, result: StepResult, step_env: dict[str, str]
    ) -> Conclusion:
        uses = step.uses or ""
        inputs = {k: self.evaluator.string(v, f"with.{k}", step.pos.line) for k, v in step.with_}
        if uses.startswith("./"):
            from shipline.runner.composite import run_composite

            return await run_composite(self, step, result, inputs, step_env)
        from shipline.runner.actions import builtin_action

        action = builtin_action(uses)
        if action is None:
            from shipline.spec.builtin_actions import unknown_action_message

            raise ActionFailed(
                f"{self.job.workflow.file}:{step.pos.line}: {unknown_action_message(uses)}"
            )
        call = self._action_call(uses, inputs, step_env, result.key)
        try:
            await action.run(call)
        finally:
            # What the action wrote (a checkout, a restored cache) is for the next steps,
            # which may run as another user (the sandbox's), to change.
            await self.r.executor.adopt(self.env)
        self._apply_action(call, result)
        self.posts.append((action, call, result))
        return Conclusion.SUCCESS

    def _action_call(
        self, uses: str, inputs: dict[str, str], step_env: dict[str, str], key: str
    ) -> ActionCall:
        from shipline.runner.ports import ActionCall

        github = self.github
        return ActionCall(
            uses=uses,
            inputs=inputs,
            workspace=self.env.workspace,
            temp=self.env.temp,
            tool_cache=self.env.tool_cache,
            env=self._process_env(step_env, {}),
            github=github,
            log=lambda line: self.log(line, key),
            artifacts=self.r.artifacts,
            caches=self.r.caches,
            source=self.r.source,
            cache_scope=self.job.cache_scope
            or f"{github.get('repository', '')}@{github.get('ref', '')}",
            cache_restore_scopes=self.job.cache_restore_scopes,
            deployer=self.job.deployer,
            unsafe_untrusted_code=self.job.planned.spec.unsafe_execute_untrusted_code,
        )

    def _apply_action(self, call: ActionCall, result: StepResult) -> None:
        result.outputs.update(call.outputs)
        self.env_file_values.update(call.env_updates)
        self.path_prepend.extend(call.path_updates)
        call.outputs.clear()
        call.env_updates.clear()
        call.path_updates.clear()

    async def _post_steps(self) -> None:
        succeeded = not self.state.failed and not self.cancel.is_set()
        for action, call, result in reversed(self.posts):
            try:
                await action.post(call, succeeded)
            except ActionFailed as exc:
                self.log(f"Warning: post step of {call.uses} failed: {exc}", result.key)

    def _job_outputs(self) -> None:
        for name, text in self.spec.outputs:
            try:
                value = self.evaluator.string(text, f"outputs.{name}", self.spec.pos.line)
            except EvaluationFailed as exc:
                self.log(f"Warning: job output {name}: {exc}")
                continue
            if self.masker and self.masker.mask(value) != value:
                self.log(f"Warning: skip output '{name}' since it may contain a secret")
                continue
            self.result.outputs[name] = value


def job_directory(work_root: Path, key: str) -> Path:
    """Where the job `key` gets its directories (workspace, temp, tool cache)."""
    return work_root / "".join(c if c.isalnum() or c in "-_." else "_" for c in key)


def write_script(path: Path, script: str, folder: Path | None) -> None:
    """Write a step's script; make the command-file `folder` first when given."""
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    path.write_text(script, encoding="utf-8")
