"""Workflow files (GitHub Actions syntax) -> `WorkflowSpec`, with every structural mistake.

`load_workflow` never raises for bad input: it returns the model it could build (None when
the file is unusable) and the diagnostics. Semantic checks across the document (needs,
expressions, matrix, ...) live in `spec.lint`.
"""

from __future__ import annotations

from shipline.spec.diagnostics import Diagnostic, has_errors
from shipline.spec.models import (
    Concurrency,
    DispatchInput,
    EnvironmentRef,
    EventTrigger,
    JobSpec,
    Pos,
    RefFilters,
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
FILTER_KEYS = ("branches", "branches-ignore", "tags", "tags-ignore", "paths", "paths-ignore")
INPUT_TYPES = ("string", "boolean", "choice", "number", "environment")

# Events GitHub knows, with the activity types each accepts (None: no `types`).
EVENTS: dict[str, tuple[str, ...] | None] = {
    "branch_protection_rule": ("created", "edited", "deleted"),
    "check_run": ("created", "rerequested", "completed", "requested_action"),
    "check_suite": ("completed",),
    "create": None,
    "delete": None,
    "deployment": None,
    "deployment_status": None,
    "discussion": (
        "created",
        "edited",
        "deleted",
        "transferred",
        "pinned",
        "unpinned",
        "labeled",
        "unlabeled",
        "locked",
        "unlocked",
        "category_changed",
        "answered",
        "unanswered",
    ),
    "discussion_comment": ("created", "edited", "deleted"),
    "fork": None,
    "gollum": None,
    "image_version": ("created", "ready"),
    "issue_comment": ("created", "edited", "deleted"),
    "issues": (
        "opened",
        "edited",
        "deleted",
        "transferred",
        "pinned",
        "unpinned",
        "closed",
        "reopened",
        "assigned",
        "unassigned",
        "labeled",
        "unlabeled",
        "locked",
        "unlocked",
        "milestoned",
        "demilestoned",
        "typed",
        "untyped",
    ),
    "label": ("created", "edited", "deleted"),
    "merge_group": ("checks_requested",),
    "milestone": ("created", "closed", "opened", "edited", "deleted"),
    "page_build": None,
    "public": None,
    "project": ("created", "closed", "reopened", "edited", "deleted"),
    "project_card": ("created", "moved", "converted", "edited", "deleted"),
    "project_column": ("created", "updated", "moved", "deleted"),
    "pull_request": (
        "assigned",
        "unassigned",
        "labeled",
        "unlabeled",
        "opened",
        "edited",
        "closed",
        "reopened",
        "synchronize",
        "converted_to_draft",
        "ready_for_review",
        "locked",
        "unlocked",
        "review_requested",
        "review_request_removed",
        "auto_merge_enabled",
        "auto_merge_disabled",
        "milestoned",
        "demilestoned",
        "enqueued",
        "dequeued",
    ),
    "pull_request_review": ("submitted", "edited", "dismissed"),
    "pull_request_review_comment": ("created", "edited", "deleted"),
    "push": None,
    "registry_package": ("published", "updated"),
    "release": (
        "published",
        "unpublished",
        "created",
        "edited",
        "deleted",
        "prereleased",
        "released",
    ),
    "repository_dispatch": (),
    "schedule": None,
    "status": None,
    "watch": ("started",),
    "workflow_call": None,
    "workflow_dispatch": None,
    "workflow_run": ("completed", "requested", "in_progress"),
}
EVENTS["pull_request_target"] = EVENTS["pull_request"]


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
        jobs_node = r.mapping(node.get("jobs"), "jobs", "jobs")
        jobs: list[JobSpec] = []
        if jobs_node is not None:
            if not jobs_node.pairs and node.get("jobs") is not None:
                r.error(jobs_node, '"jobs" section must contain at least one job', path="jobs")
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
        r = self.r
        if node is None:
            return Triggers()
        events: list[EventTrigger] = []
        inputs: tuple[DispatchInput, ...] = ()
        schedules: list[str] = []
        if isinstance(node, Scalar):
            name = r.string(node, "on")
            if name is not None and self._known_event(node, name):
                events.append(EventTrigger(name))
        elif isinstance(node, Sequence):
            for i, item in enumerate(node.items):
                name = r.string(item, f"on[{i}]")
                if name is not None and self._known_event(item, name):
                    events.append(EventTrigger(name))
        elif isinstance(node, Mapping):
            for key, value in node.pairs:
                name = key.text
                if not self._known_event(key, name):
                    continue
                path = f"on.{name}"
                if name == "schedule":
                    schedules.extend(self.schedules(value, path))
                    events.append(EventTrigger(name))
                elif name == "workflow_dispatch":
                    inputs = self.dispatch_inputs(value, path)
                    events.append(EventTrigger(name))
                else:
                    events.append(self.event(name, value, path))
        return Triggers(tuple(events), inputs, tuple(schedules))

    def _known_event(self, node: Node, name: str) -> bool:
        if name in EVENTS:
            return True
        import difflib

        close = difflib.get_close_matches(name, list(EVENTS), n=1)
        self.r.error(
            node,
            f'unknown Webhook event "{name}". see https://docs.github.com/en/'
            "actions/using-workflows/events-that-trigger-workflows#webhook-events "
            "for list of all Webhook event names",
            code="events",
            path=f"on.{name}",
            hint=f'did you mean "{close[0]}"?' if close else "",
        )
        return False

    def event(self, name: str, node: Node, path: str) -> EventTrigger:
        r = self.r
        mapping = r.mapping(node, path, name)
        if mapping is None:
            return EventTrigger(name)
        allowed: list[str] = []
        activity = EVENTS.get(name)
        if activity is not None:
            allowed.append("types")
        if name in ("push",):
            allowed += FILTER_KEYS
        elif name in ("pull_request", "pull_request_target"):
            allowed += ["branches", "branches-ignore", "paths", "paths-ignore"]
        elif name == "workflow_run":
            allowed += ["workflows", "branches", "branches-ignore"]
        elif name == "workflow_call":
            allowed += ["inputs", "outputs", "secrets"]
        elif name == "image_version":
            allowed += ["names", "versions"]
        elif name == "merge_group":
            allowed += ["branches", "branches-ignore"]
        r.check_keys(mapping, allowed, path, name)
        types = r.strings(mapping.get("types"), f"{path}.types")
        if types and activity:
            types_node = mapping.get("types")
            items = types_node.items if isinstance(types_node, Sequence) else [types_node]
            for item, value in zip(items, types, strict=False):
                if value not in activity and item is not None:
                    r.error(
                        item,
                        f'invalid activity type "{value}" for "{name}" Webhook event. '
                        f"available types are {', '.join(repr(a) for a in activity)}",
                        code="events",
                        path=f"{path}.types",
                    )
        values = {k: r.strings(mapping.get(k), f"{path}.{k}") for k in FILTER_KEYS}
        for a, b in (
            ("branches", "branches-ignore"),
            ("tags", "tags-ignore"),
            ("paths", "paths-ignore"),
        ):
            if values[a] is not None and values[b] is not None:
                node_b = mapping.key_node(b)
                r.error(
                    node_b or mapping,
                    f'both "{a}" and "{b}" filters cannot be used for '
                    f"the same event \"{name}\". note: use '!' to negate patterns",
                    code="events",
                    path=f"{path}.{b}",
                )
        filters = RefFilters(
            values["branches"],
            values["branches-ignore"],
            values["tags"],
            values["tags-ignore"],
            values["paths"],
            values["paths-ignore"],
        )
        return EventTrigger(name, types, filters)

    def schedules(self, node: Node, path: str) -> list[str]:
        r = self.r
        if not isinstance(node, Sequence):
            r.error(
                node,
                f'"schedule" section must be a sequence, but it is {describe(node)}',
                code="events",
                path=path,
            )
            return []
        out: list[str] = []
        for i, item in enumerate(node.items):
            mapping = r.mapping(item, f"{path}[{i}]", "schedule")
            if mapping is None:
                continue
            r.check_keys(
                mapping, ("cron", "timezone"), f"{path}[{i}]", "schedule", required=("cron",)
            )
            cron = r.string(mapping.get("cron"), f"{path}[{i}].cron")
            if cron is not None:
                out.append(cron)
        return out

    def dispatch_inputs(self, node: Node, path: str) -> tuple[DispatchInput, ...]:
        r = self.r
        mapping = r.mapping(node, path, "workflow_dispatch")
        if mapping is None:
            return ()
        r.check_keys(mapping, ("inputs",), path, "workflow_dispatch", lenient=True)
        inputs = r.mapping(mapping.get("inputs"), f"{path}.inputs", "inputs")
        if inputs is None:
            return ()
        out: list[DispatchInput] = []
        for key, value in inputs.pairs:
            ipath = f"{path}.inputs.{key.text}"
            spec = r.mapping(value, ipath, "inputs")
            if spec is None:
                continue
            r.check_keys(
                spec,
                ("description", "required", "default", "type", "options", "deprecationMessage"),
                ipath,
                "inputs",
            )
            typ = r.string(spec.get("type"), f"{ipath}.type") or "string"
            if typ not in INPUT_TYPES:
                r.error(
                    spec.get("type") or spec,
                    f'input type of "{key.text}" must be one of '
                    f'{", ".join(INPUT_TYPES)}, but got "{typ}"',
                    code="events",
                    path=f"{ipath}.type",
                )
            options = r.strings(spec.get("options"), f"{ipath}.options") or ()
            default_node = spec.get("default")
            default = to_python(default_node)
            if typ == "choice":
                if not options:
                    r.error(
                        spec,
                        f'input "{key.text}" of type "choice" needs "options"',
                        code="events",
                        path=ipath,
                    )
                elif default is not None and str(default) not in options:
                    r.error(
                        default_node or spec,
                        f'default value "{default}" of "{key.text}" '
                        f"input is not included in its options {list(options)}",
                        code="events",
                        path=f"{ipath}.default",
                    )
            elif (
                typ == "boolean"
                and default_node is not None
                and not (isinstance(default, bool) or str(default).lower() in ("true", "false"))
            ):
                r.error(
                    default_node,
                    f'input of "boolean" type must have a boolean default '
                    f'value "true" or "false", but got {default!r}',
                    code="events",
                    path=f"{ipath}.default",
                )
            required = spec.get("required")
            out.append(
                DispatchInput(
                    name=key.text,
                    type=typ,
                    description=r.string(
                        spec.get("description"), f"{ipath}.description", allow_null=True
                    )
                    or "",
                    required=bool(isinstance(required, Scalar) and required.value is True),
                    default=default,
                    options=options,
                )
            )
        return tuple(out)

    # -- jobs: -------------------------------------------------------------------------

    def job(self, key: Scalar, node: Node) -> JobSpec | None:
        r = self.r
        job_id = key.text
        path = f"jobs.{job_id}"
        mapping = r.mapping(node, path, "job")
        if mapping is None:
            return None
        r.check_keys(mapping, JOB_KEYS, path, "job")
        if mapping.get("uses") is not None:
            r.warning(
                mapping.get("uses") or mapping,
                "Shipline does not run reusable workflows (jobs.<id>.uses) yet: "
                "this job will fail at run time",
                code="workflow-call",
                path=f"{path}.uses",
            )
        elif mapping.get("runs-on") is None and "runs-on" not in mapping:
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
        elif steps_node is not None:
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
                env_node,
                ("name", "url", "deployment"),
                f"{path}.environment",
                "environment",
                required=("name",),
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
            pos=Pos(key.line, key.col),
        )

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
        elif uses is not None and "run" in mapping:
            r.error(
                mapping.key_node("run") or mapping,
                'step contains both "uses" and "run" '
                "sections; a step runs either a script or an action",
                path=path,
            )
        if uses is not None:
            for key in ("shell", "working-directory"):
                if key in mapping:
                    r.error(
                        mapping.key_node(key) or mapping,
                        f'"{key}" can only be used with "run", not with "uses"',
                        path=f"{path}.{key}",
                    )
        step_id = r.string(mapping.get("id"), f"{path}.id")
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
        r.check_keys(
            mapping, ("group", "cancel-in-progress"), path, "concurrency", required=("group",)
        )
        group = r.string(mapping.get("group"), f"{path}.group")
        if not group:
            return None
        return Concurrency(
            group,
            r.boolean_or_expr(
                mapping.get("cancel-in-progress"), f"{path}.cancel-in-progress", False
            ),
        )
