"""`shipline lint`'s brain: every problem of a workflow file, as diagnostics.

`lint_workflow` reads the file with the lenient loader (YAML errors, unknown keys, wrong
types) and then runs the semantic rule families, one small module each: ids and `needs`,
matrices, triggers (cron, filters, inputs), steps (actions, shells, deprecated commands,
env names), runner labels, permissions, and the `${{ }}` expressions (syntax, contexts,
functions, where each context is available). Diagnostic codes are actionlint's rule names,
so findings can be compared rule by rule.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping as AbcMapping

from shipline.spec.diagnostics import Diagnostic
from shipline.spec.lint import events, expressions, jobs, matrix, permissions, runners, steps
from shipline.spec.lint._context import LintContext
from shipline.spec.workflow import read_workflow
from shipline.spec.yamlpos import Mapping

__all__ = ["lint_workflow"]

Rule = Callable[[LintContext], None]

RULES: tuple[Rule, ...] = (
    jobs.check,
    matrix.check,
    events.check,
    steps.check,
    runners.check,
    permissions.check,
    expressions.check,
)


def lint_workflow(
    text: str, file: str, *, local_actions: AbcMapping[str, str] | None = None
) -> list[Diagnostic]:
    """Every diagnostic for one workflow file, sorted by line and column.

    `local_actions` maps a local action's `./path` (as written in `uses:`) to the text of
    its action.yml, so steps using it can be checked. Never raises for bad input.
    """
    root, spec, diagnostics = read_workflow(text, file)
    found = list(diagnostics)
    if isinstance(root, Mapping):
        ctx = LintContext(file, root, spec, local_actions or {})
        for rule in RULES:
            rule(ctx)
        found.extend(ctx.diagnostics)
    return sorted(_unique(found), key=lambda d: (d.line, d.col, d.code, d.message))


def _unique(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    seen: set[tuple[object, ...]] = set()
    out: list[Diagnostic] = []
    for d in diagnostics:
        key = (d.code, d.line, d.col, d.message)
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out
