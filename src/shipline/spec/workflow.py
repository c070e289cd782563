"""Workflow files (GitHub Actions syntax) -> `WorkflowSpec`, with every structural mistake.

`load_workflow` never raises for bad input: it returns the model it could build (None when
the file is unusable) and the diagnostics. Semantic checks across the document (needs,
expressions, matrix, ...) live in `spec.lint`.
"""

from __future__ import annotations

from shipline.spec._workflow_inputs import case_insensitive_duplicates
from shipline.spec._workflow_jobs import check_job, check_step_keys
from shipline.spec._workflow_sandbox import read_sandbox
from shipline.spec._workflow_triggers import TriggerReader
from shipline.spec.diagnostics import Diagnostic, has_errors
from shipline.spec.models import (
    Concurrency,
    EnvironmentRef,
    JobSpec,
    Pos,
    RunDefaults,
    StepSpec,
    StrategySpec,
    Triggers,
    WorkflowSpec,
)
from shipline.spec.reader import Reader
from shipline.spec.yamlpos import Mapping, Node, Scalar, Sequence, describe, parse_yaml, to_python

WORKFLOW_KEYS = (
    "name",
    "run-name",
    "on",
    "env",
    "defaults",
    "concurrency",
    "permissions",
    "jobs",
    "description",
)
JOB_KEYS = (
    "name",
    "needs",
    "runs-on",
    "permissions",
    "environment",
    "concurrency",
    "outputs",
    "env",
    "defaults",
    "if",
    "steps",
    "timeout-minutes",
    "strategy",
    "continue-on-error",
    "container",
    "services",
    "uses",
    "with",
    "secrets",
    "snapshot",
    "cancel-timeout-minutes",
    "sandbox",  # Shipline's extension: see _workflow_sandbox.py
    # Shipline's extension: a job of a privileged pull request trigger may check out the
    # pull request's head (docs/source.md "Privileged triggers").
    "unsafe_execute_untrusted_code",
)
STEP_KEYS = (
    "id",
    "if",
    "name",
    "uses",
    "run",
    "shell",
    "with",
    "env",
    "continue-on-error",
    "timeout-minutes",
    "working-directory",
)


def load_workflow(text: str, file: str) -> tuple[WorkflowSpec | None, list[Diagnostic]]:
    """Read a workflow file's text. Returns (None, diagnostics) when it cannot be used."""
    root, diagnostics = parse_yaml(text, file)
    reader = Reader(file)
    reader.diagnostics.extend(diagnostics)
    if root is None:
        if not diagnostics:
            reader.error(Scalar(1, 1, None), "the workflow file is empty")
        return None, reader.diagnostics
    spec = _Loader(reader).workflow(root)
    return (None if spec is None or has_errors(reader.diagnostics) else spec), reader.diagnostics


def load_workflow_lenient(text: str, file: str) -> tuple[WorkflowSpec | None, list[Diagnostic]]:
    """Like `load_workflow`, but returns whatever model could be built even with errors.

    Lint uses it to go on checking the rest of a file after the first mistake.
    """
    _, spec, diagnostics = read_workflow(text, file)
    return spec, diagnostics


def read_workflow(
    text: str, file: str
) -> tuple[Node | None, WorkflowSpec | None, list[Diagnostic]]:
    """The YAML tree, the (lenient) model and the structural diagnostics of a workflow.

    For lint, which needs the nodes' positions as well as the model.
    """
    root, diagnostics = parse_yaml(text, file)
    reader = Reader(file)
    reader.diagnostics.extend(diagnostics)
    if root is None:
        if not diagnostics:
            reader.error(Scalar(1, 1, None), "workflow is empty")
        return None, None, reader.diagnostics
    return root, _Loader(reader).workflow(root), reader.diagnostics


class _Loader:
    def __init__(self, reader: Reader) -> None:
        self.r = reader

    def workflow(self, root: Node) -> WorkflowSpec | None:
        r = self.r
        node = r.mapping(root, "", "workflow")
        if node is None:
            return None
        r.check_keys(node, WORKFLOW_KEYS, "", "workflow", required=("on", "jobs"))
        for section in ("env", "jobs"):
            value = node.get(section)
            if isinstance(value, Mapping):
                case_insensitive_duplicates(r, value, section)
        jobs_node = r.mapping(node.get("jobs"), "jobs", "jobs")
        jobs: list[JobSpec] = []
        if jobs_node is not None:
            if not jobs_node.pairs and node.get("jobs") is not None:
                r.error(
                    jobs_node,
                    '"jobs" section should not be empty. please remove this section if it\'s '
                    "unnecessary",
                    path="jobs",
                )
            for key, value in jobs_node.pairs:
                job = self.job(key, value)
                if job is not None:
                    jobs.append(job)
        return WorkflowSpec(
            file=r.file,
            name=r.string(node.get("name"), "name"),
            run_name=r.string(node.get("run-name"), "run-name"),
            triggers=self.triggers(node.get("on")),
            env=r.string_map(node.get("env"), "env", "env"),
            defaults=self.defaults(node.get("defaults"), "defaults"),
            concurrency=self.concurrency(node.get("concurrency"), "concurrency"),
            permissions=to_python(node.get("permissions")),
            jobs=tuple(jobs),
        )

    # -- on: ---------------------------------------------------------------------------

    def triggers(self, node: Node | None) -> Triggers:
        return TriggerReader(self.r).triggers(node)

    # -- jobs: -------------------------------------------------------------------------

    def job(self, key: Scalar, node: Node) -> JobSpec | None:
        r = self.r
        job_id = key.text
        path = f"jobs.{job_id}"
        mapping = r.mapping(node, path, "job")
        if mapping is None:
            return None
        r.check_keys(mapping, JOB_KEYS, path, "job")
        check_job(r, key, mapping, path)
        if mapping.get("uses") is not None:
            r.warning(
                mapping.get("uses") or mapping,
                "Shipline does not run reusable workflows (jobs.<id>.uses) yet: "
                "this job will fail at run time",
                code="workflow-call",
                path=f"{path}.uses",
            )
        elif "runs-on" not in mapping:
            # Where GitHub reports a missing property: the start of the mapping.
            r.error(
                mapping, f'"runs-on" section is missing in job "{job_id}"', path=f"{path}.runs-on"
            )
        steps_node = mapping.get("steps")
        steps: list[StepSpec] = []
        if isinstance(steps_node, Sequence):
            if not steps_node.items:
                r.error(
                    steps_node,
                    f'"steps" section of job "{job_id}" must not be empty',
                    path=f"{path}.steps",
                )
            for i, item in enumerate(steps_node.items):
                step = self.step(i, item, f"{path}.steps[{i}]")
                if step is not None:
                    steps.append(step)
        elif steps_node is not None and not (
            isinstance(steps_node, Scalar) and steps_node.value is None
        ):
            r.error(
                steps_node,
                f'"steps" section must be a sequence, but it is {describe(steps_node)}',
                path=f"{path}.steps",
            )
        elif mapping.get("uses") is None:
            # GitHub accepts a job without steps; it does nothing, which is rarely meant.
            r.warning(key, f'"steps" section is missing in job "{job_id}"', path=f"{path}.steps")
        env_node = mapping.get("environment")
        environment: EnvironmentRef | None = None
        if isinstance(env_node, Scalar) and env_node.value is not None:
            environment = EnvironmentRef(env_node.text)
        elif isinstance(env_node, Mapping):
            r.check_keys(
                env_node, ("name", "url", "deployment"), f"{path}.environment", "environment"
            )
            name = r.string(env_node.get("name"), f"{path}.environment.name")
            if name:
                environment = EnvironmentRef(
                    name, r.string(env_node.get("url"), f"{path}.environment.url")
                )
        timeout = r.number_or_expr(mapping.get("timeout-minutes"), f"{path}.timeout-minutes")
        return JobSpec(
            id=job_id,
            name=r.string(mapping.get("name"), f"{path}.name"),
            needs=r.strings(mapping.get("needs"), f"{path}.needs") or (),
            if_=self.condition(mapping.get("if"), f"{path}.if"),
            runs_on=to_python(mapping.get("runs-on")),
            env=r.string_map(mapping.get("env"), f"{path}.env", "env"),
            defaults=self.defaults(mapping.get("defaults"), f"{path}.defaults"),
            outputs=r.string_map(mapping.get("outputs"), f"{path}.outputs", "outputs"),
            timeout_minutes=timeout if timeout is not None else 360,
            continue_on_error=r.boolean_or_expr(
                mapping.get("continue-on-error"), f"{path}.continue-on-error", False
            ),
            strategy=self.strategy(mapping.get("strategy"), f"{path}.strategy"),
            steps=tuple(steps),
            environment=environment,
            concurrency=self.concurrency(mapping.get("concurrency"), f"{path}.concurrency"),
            permissions=to_python(mapping.get("permissions")),
            uses=r.string(mapping.get("uses"), f"{path}.uses", allow_null=True),
            container=to_python(mapping.get("container")),
            services=to_python(mapping.get("services")),
            sandbox=read_sandbox(r, mapping.get("sandbox"), f"{path}.sandbox"),
            unsafe_execute_untrusted_code=self.literal_flag(
                mapping.get("unsafe_execute_untrusted_code"),
                f"{path}.unsafe_execute_untrusted_code",
            ),
            pos=Pos(key.line, key.col),
        )

    def literal_flag(self, node: Node | None, path: str) -> bool:
        """A boolean the server reads before the run starts: no expression."""
        value = self.r.boolean_or_expr(node, path, False)
        if isinstance(value, str) and node is not None:
            self.r.error(
                node,
                f'"{path.rsplit(".", 1)[-1]}" must be true or false, not an expression: the '
                "server decides it before the run starts",
                path=path,
            )
            return False
        return value is True

    def step(self, index: int, node: Node, path: str) -> StepSpec | None:
        r = self.r
        mapping = r.mapping(node, path, "step")
        if mapping is None:
            return None
        r.check_keys(mapping, STEP_KEYS, path, "step")
        run_node = mapping.get("run")
        uses = r.string(mapping.get("uses"), f"{path}.uses")
        run = r.string(run_node, f"{path}.run")
        if uses is None and run is None and "run" not in mapping:
            r.error(
                mapping,
                'step must run script with "run" section or run action with "uses" section',
                path=path,
            )
        check_step_keys(r, mapping, path)
        id_node = mapping.get("id")
        if isinstance(id_node, Scalar) and id_node.text == "":
            r.error(id_node, "string should not be empty", path=f"{path}.id")
        step_id = r.string(id_node, f"{path}.id") or None
        return StepSpec(
            index=index,
            id=step_id,
            name=r.string(mapping.get("name"), f"{path}.name"),
            if_=self.condition(mapping.get("if"), f"{path}.if"),
            run=run,
            uses=uses,
            with_=r.string_map(mapping.get("with"), f"{path}.with", "with"),
            env=r.string_map(mapping.get("env"), f"{path}.env", "env"),
            shell=r.string(mapping.get("shell"), f"{path}.shell"),
            working_directory=r.string(
                mapping.get("working-directory"), f"{path}.working-directory"
            ),
            continue_on_error=r.boolean_or_expr(
                mapping.get("continue-on-error"), f"{path}.continue-on-error", False
            ),
            timeout_minutes=r.number_or_expr(
                mapping.get("timeout-minutes"), f"{path}.timeout-minutes"
            ),
            pos=Pos(mapping.line, mapping.col),
            run_pos=Pos(run_node.line, run_node.col) if run_node is not None else Pos(),
        )

    def condition(self, node: Node | None, path: str) -> str | None:
        if node is None:
            return None
        if isinstance(node, Scalar):
            if node.value is None:
                return None
            return node.text
        self.r.error(node, f'"if" must be a string, but it is {describe(node)}', path=path)
        return None

    def strategy(self, node: Node | None, path: str) -> StrategySpec | None:
        r = self.r
        if node is None:
            return None
        if isinstance(node, Scalar) and isinstance(node.value, str) and "${{" in node.value:
            return StrategySpec(matrix=node.value)
        mapping = r.mapping(node, path, "strategy")
        if mapping is None:
            return None
        r.check_keys(mapping, ("matrix", "fail-fast", "max-parallel"), path, "strategy")
        matrix_node = mapping.get("matrix")
        matrix: object = None
        if isinstance(matrix_node, Mapping):
            matrix = to_python(matrix_node)
        elif (
            isinstance(matrix_node, Scalar)
            and isinstance(matrix_node.value, str)
            and "${{" in matrix_node.value
        ):
            matrix = matrix_node.value
        elif matrix_node is not None:
            r.error(
                matrix_node,
                f'"matrix" must be a mapping or an expression, but it is {describe(matrix_node)}',
                code="matrix",
                path=f"{path}.matrix",
            )
        max_parallel_node = mapping.get("max-parallel")
        max_parallel: int | str | None = None
        if isinstance(max_parallel_node, Scalar):
            v = max_parallel_node.value
            if (isinstance(v, int) and not isinstance(v, bool) and v > 0) or (
                isinstance(v, str) and "${{" in v
            ):
                max_parallel = v
            else:
                r.error(
                    max_parallel_node,
                    '"max-parallel" must be a positive integer',
                    path=f"{path}.max-parallel",
                )
        return StrategySpec(
            matrix=matrix,
            fail_fast=r.boolean_or_expr(mapping.get("fail-fast"), f"{path}.fail-fast", True),
            max_parallel=max_parallel,
        )

    def defaults(self, node: Node | None, path: str) -> RunDefaults:
        r = self.r
        mapping = r.mapping(node, path, "defaults")
        if mapping is None:
            return RunDefaults()
        r.check_keys(mapping, ("run",), path, "defaults")
        if "run" not in mapping:
            r.error(mapping, '"defaults" section should have "run" section', path=path)
        run = r.mapping(mapping.get("run"), f"{path}.run", "run")
        if run is None:
            return RunDefaults()
        r.check_keys(run, ("shell", "working-directory"), f"{path}.run", "run")
        return RunDefaults(
            shell=r.string(run.get("shell"), f"{path}.run.shell"),
            working_directory=r.string(
                run.get("working-directory"), f"{path}.run.working-directory"
            ),
        )

    def concurrency(self, node: Node | None, path: str) -> Concurrency | None:
        r = self.r
        if node is None:
            return None
        if isinstance(node, Scalar):
            group = r.string(node, path)
            return Concurrency(group) if group else None
        mapping = r.mapping(node, path, "concurrency")
        if mapping is None:
            return None
        r.check_keys(mapping, ("group", "cancel-in-progress"), path, "concurrency")
        if "group" not in mapping:
            r.error(mapping, 'group name is missing in "concurrency" section', path=path)
        group = r.string(mapping.get("group"), f"{path}.group")
        if not group:
            return None
        return Concurrency(
            group,
            r.boolean_or_expr(
                mapping.get("cancel-in-progress"), f"{path}.cancel-in-progress", False
            ),
        )
