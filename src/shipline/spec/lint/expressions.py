"""`${{ }}` expressions everywhere in a workflow: syntax, names, and where they may be used.

Every string (and every mapping key) holding `${{` is parsed as a template; `if:` values
are expressions even without braces. For each expression:

- syntax errors, unknown functions and wrong argument counts (from the parser);
- unknown context names, and contexts or special functions (`success()`, `hashFiles()`)
  that GitHub does not make available at that key (`availability.py`);
- property access that can never have a value (`properties.py`), such as a step id that
  does not exist or a job that is not in `needs`;
- objects, arrays and null interpolated into a string (GitHub prints `Object`);
- `if:` conditions that are always true or constant (`conditions.py`).
"""

from __future__ import annotations

from shipline.spec.expressions import (
    Expr,
    ExpressionError,
    Template,
    calls,
    parse_template,
    references,
)
from shipline.spec.expressions.ast import Index, Literal, NamedValue, Wildcard, walk
from shipline.spec.expressions.errors import MAX_LENGTH
from shipline.spec.lint import conditions
from shipline.spec.lint._context import LintContext
from shipline.spec.lint.availability import TABLE, Availability, availability, normalise
from shipline.spec.lint.calls import call_problems, untrusted_problem
from shipline.spec.lint.properties import property_problem
from shipline.spec.lint.scope import Scope, job_outputs, job_scope, with_steps, workflow_inputs
from shipline.spec.yamlpos import Mapping, Node, Scalar, Sequence

CONTEXTS = frozenset(
    [
        "env",
        "github",
        "inputs",
        "job",
        "jobs",
        "matrix",
        "needs",
        "runner",
        "secrets",
        "steps",
        "strategy",
        "vars",
    ]
)
SPECIAL_FUNCTIONS = frozenset(("always", "cancelled", "failure", "success", "hashfiles"))
# Keys whose value is a string: an object interpolated there becomes the text "Object".
_STRING_KEYS = frozenset(("run", "name", "run-name", "working-directory", "shell", "group"))
_STRING_PARENTS = frozenset(("with", "env", "outputs"))

_CONDITIONS = frozenset(("jobs.<job_id>.if", "jobs.<job_id>.steps.if", "jobs.<job_id>.snapshot.if"))

Path = tuple[str | int, ...]


class _Checker:
    def __init__(self, ctx: LintContext) -> None:
        self.ctx = ctx
        self.inputs = workflow_inputs(ctx)
        self._scopes: dict[tuple[str, int | None, bool], Scope] = {}

    def walk(self, node: Node, path: Path) -> None:
        if isinstance(node, Mapping):
            for key, value in node.pairs:
                if "${{" in key.text:
                    self.value(key, (*path, key.text), as_key=True)
                self.walk(value, (*path, key.text))
        elif isinstance(node, Sequence):
            for i, item in enumerate(node.items):
                self.walk(item, (*path, i))
        elif isinstance(node, Scalar) and (
            isinstance(node.value, str) or (node.value is not None and path[-1:] == ("if",))
        ):
            self.value(node, path)

    def value(self, node: Scalar, path: Path, *, as_key: bool = False) -> None:
        text = node.text
        key = normalise(path)
        is_if = key in _CONDITIONS and not as_key
        if not is_if and "${{" not in text:
            return
        avail = availability(key)
        if avail is None:
            return
        if is_if:
            parsed = conditions.check(self.ctx, node, key)
            if parsed is not None:
                expr, offset = parsed
                self.expression(node, expr, offset, avail, path)
                return
            if "${{" not in text:
                return
        if len(text) > MAX_LENGTH:
            # GitHub turns a template into one `format()` expression, which has a limit.
            self.ctx.error(
                node, "expression", f"Exceeded max expression length {MAX_LENGTH}", path=key
            )
            return
        try:
            template = parse_template(text)
        except ExpressionError as e:
            self.ctx.error(node.position_of(max(e.offset, 0)), "expression", e.message, path=key)
            return
        for part in template.parts:
            if part.expr is not None:
                raw = text[part.offset + 3 :]
                lead = len(raw) - len(raw.lstrip())
                self.expression(node, part.expr, part.offset + 3 + lead, avail, path)
        if not as_key:
            self.interpolation(node, template, path)

    def expression(
        self, node: Scalar, expr: Expr, base: int, avail: Availability, path: Path
    ) -> None:
        key = normalise(path)
        for ref in references(expr):
            at = node.position_of(base + ref.offset)
            if ref.context not in CONTEXTS:
                names = ", ".join(f'"{c}"' for c in sorted(CONTEXTS - {"jobs"}))
                self.ctx.error(
                    at,
                    "expression",
                    f'undefined variable "{ref.context}". available variables are {names}',
                    path=key,
                )
                continue
            if ref.context not in avail.contexts:
                self.ctx.error(at, "expression", _not_allowed(ref.context, avail), path=key)
                continue
            problem = property_problem(ref, self.scope(path))
            if problem:
                self.ctx.error(at, "expression", problem, path=key)
            elif _is_script(path) and (risk := untrusted_problem(ref)):
                self.ctx.error(at, "expression", risk, path=key)
        for offset, message in call_problems(expr):
            self.ctx.error(node.position_of(base + offset), "expression", message, path=key)
        for call in calls(expr):
            name = call.name.lower()
            if name in SPECIAL_FUNCTIONS and name not in avail.functions:
                self.ctx.error(
                    node.position_of(base + call.offset),
                    "expression",
                    f'calling function "{call.name}" is not allowed here. "{call.name}" is '
                    "only available in " + ", ".join(f'"{k}"' for k in _keys_allowing(name)),
                    path=key,
                )

    def interpolation(self, node: Scalar, template: Template, path: Path) -> None:
        last = path[-1] if path else ""
        parent = path[-2] if len(path) > 1 else ""
        if not (last in _STRING_KEYS or parent in _STRING_PARENTS):
            return
        if len(path) < 3:
            return  # `env: ${{ ... }}` as a whole section takes an object
        for part in template.parts:
            if part.expr is None:
                continue
            kind = _object_kind(part.expr)
            if kind:
                self.ctx.error(
                    node.position_of(part.offset),
                    "expression",
                    "object, array, and null values should not be evaluated in template "
                    f"with ${{{{ }}}} but evaluating the value of type {kind}",
                    path=normalise(path),
                )

    def scope(self, path: Path) -> Scope:
        if len(path) < 2 or path[0] not in ("jobs", "on"):
            return Scope(inputs=self.inputs)
        if path[0] == "on":
            return Scope(inputs=self.inputs, jobs=self._all_job_outputs())
        job_id = str(path[1])
        in_steps = len(path) > 3 and path[2] == "steps" and isinstance(path[3], int)
        before = path[3] if in_steps and isinstance(path[3], int) else None
        sees_steps = in_steps or (len(path) > 2 and path[2] in ("outputs", "environment"))
        cache_key = (job_id, before, sees_steps)
        if cache_key not in self._scopes:
            scope = Scope(inputs=self.inputs)
            for key, job in self.ctx.jobs():
                if key.text == job_id:
                    scope = job_scope(self.ctx, job_id, job, self.inputs)
                    if sees_steps:
                        scope = with_steps(scope, self.ctx, job, before)
            self._scopes[cache_key] = scope
        return self._scopes[cache_key]

    def _all_job_outputs(self) -> dict[str, frozenset[str] | None]:
        return {key.text.lower(): job_outputs(job) for key, job in self.ctx.jobs()}


def check(ctx: LintContext) -> None:
    """Check every expression of the workflow."""
    _Checker(ctx).walk(ctx.root, ())


def _is_script(path: Path) -> bool:
    """`jobs.<id>.steps[i].run`, or the `script` input of a step (actions/github-script)."""
    if len(path) < 5 or path[0] != "jobs" or path[2] != "steps":
        return False
    return path[4:] == ("run",) or path[4:] == ("with", "script")


def _not_allowed(context: str, avail: Availability) -> str:
    if not avail.contexts:
        return f'context "{context}" is not allowed here. no context is available here'
    names = ", ".join(f'"{c}"' for c in sorted(avail.contexts))
    return (
        f'context "{context}" is not allowed here. available contexts are {names}. see '
        "https://docs.github.com/en/actions/learn-github-actions/contexts#context-availability"
    )


def _keys_allowing(function: str) -> list[str]:
    return sorted(k for k, row in TABLE.items() if function in row.functions)


def _object_kind(expr: Expr) -> str | None:
    """ "object", "array" or "null" when the expression surely yields one, else None."""
    if isinstance(expr, Literal):
        return "null" if expr.value is None else None
    if not isinstance(expr, Index | NamedValue):
        return None
    refs = references(expr)
    if len(refs) != 1 or calls(expr):
        return None
    ref = refs[0]
    if any(isinstance(n, Wildcard) for n in walk(expr)):
        return "array"
    path = ref.path
    if not path:
        return "object"
    if ref.context == "github" and path == ("event",):
        return "object"
    if ref.context in ("steps", "needs") and (len(path) == 1 or path[1:] == ("outputs",)):
        return "object"
    return None
