"""`if:` conditions that do not do what they seem to (rule `if-cond`).

GitHub evaluates an `if:` value as one expression, with or without `${{ }}`; but when
`${{ }}` is only part of the value (`if: ${{ a }} && b`, or just a trailing space or
newline after `}}`), the value is a string template, and a non-empty string is always true.
A condition without any context or status function is constant: the `if:` is useless.
"""

from __future__ import annotations

from shipline.spec.expressions import Expr, ExpressionError, calls, parse_expression, references
from shipline.spec.expressions.template import parse_template
from shipline.spec.lint._context import LintContext
from shipline.spec.yamlpos import Scalar

_DYNAMIC_FUNCTIONS = frozenset(("always", "cancelled", "failure", "success", "hashfiles"))


def check(ctx: LintContext, node: Scalar, key: str) -> tuple[Expr, int] | None:
    """Check one `if:` value; return its expression and the offset of the expression's text
    in the value, or None when the value is a template (whose parts the caller checks) or
    does not parse (reported here)."""
    text = node.text
    if "${{" in text:
        if text.startswith("${{") and text.endswith("}}"):
            try:
                template = parse_template(text)
            except ExpressionError:
                return None
            if len(template.parts) == 1 and template.parts[0].expr is not None:
                expr = template.parts[0].expr
                raw = text[3:]
                offset = 3 + len(raw) - len(raw.lstrip())
                _constant(ctx, node, expr, template.parts[0].source, key)
                return expr, offset
        ctx.error(
            node,
            "if-cond",
            f"if: condition {text!r} is always evaluated to true because extra characters "
            "are around ${{ }}",
            path=key,
            hint="write the whole condition inside one ${{ }}, or leave ${{ }} out",
        )
        return None
    lead = len(text) - len(text.lstrip())
    source = text.strip()
    try:
        expr = parse_expression(source)
    except ExpressionError as e:
        ctx.error(node.position_of(lead + max(e.offset, 0)), "expression", e.message, path=key)
        return None
    _constant(ctx, node, expr, source, key)
    return expr, lead


def _constant(ctx: LintContext, node: Scalar, expr: Expr, source: str, key: str) -> None:
    if references(expr):
        return
    if any(c.name.lower() in _DYNAMIC_FUNCTIONS for c in calls(expr)):
        return
    ctx.warning(
        node,
        "if-cond",
        f'constant expression "{source}" in condition. remove the if: section',
        path=key,
    )
