"""`if:` conditions as GitHub reads them.

`${{ }}` is optional around a condition, and a condition that calls no status function
(`success()`, `failure()`, `always()`, `cancelled()`) means `success() && (condition)`.
Decided on the parsed expression, not on its text: `'always()'` in a string literal is not a
call. One rule for job conditions (the engine) and step conditions (the runner).
"""

from __future__ import annotations

from shipline.spec.expressions.functions import STATUS_FUNCTIONS


def condition_expression(text: str | None) -> str:
    """The expression to evaluate for an `if:` value (None or empty: `success()`)."""
    source = (text or "").strip()
    if source.startswith("${{") and source.endswith("}}") and source.count("${{") == 1:
        source = source[3:-2].strip()
    if not source:
        return "success()"
    from shipline.spec.expressions.analysis import calls
    from shipline.spec.expressions.errors import ExpressionError
    from shipline.spec.expressions.parser import parse_expression

    try:
        expr = parse_expression(source)
    except ExpressionError:
        return source  # evaluating it reports the syntax error with its position
    if any(call.name.lower() in STATUS_FUNCTIONS for call in calls(expr)):
        return source
    return f"success() && ({source})"
