"""Strings with `${{ }}` in them, such as `run: echo ${{ github.sha }}`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from shipline.spec.expressions.ast import Expr
from shipline.spec.expressions.errors import ExpressionError
from shipline.spec.expressions.evaluator import FunctionHost, evaluate
from shipline.spec.expressions.parser import parse_expression
from shipline.spec.expressions.values import Value, to_string

OPEN = "${{"
CLOSE = "}}"


@dataclass(frozen=True, slots=True)
class TemplatePart:
    """Literal text (`text` set) or an expression (`expr` set) of a template.

    `source` is the expression text between the braces, stripped ("" for literal text);
    `offset` is where the part starts in the template: the `${{` of an expression.
    """

    text: str | None
    expr: Expr | None
    source: str
    offset: int


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed template: its literal and expression parts in order."""

    parts: tuple[TemplatePart, ...]

    @property
    def is_single_expression(self) -> bool:
        """One expression and only whitespace around it: evaluation keeps the value's type."""
        exprs = 0
        for part in self.parts:
            if part.expr is not None:
                exprs += 1
            elif part.text is not None and part.text.strip():
                return False
        return exprs == 1


def has_expression(text: str) -> bool:
    """Whether `text` contains `${{` (and so must be parsed as a template)."""
    return OPEN in text


@lru_cache(maxsize=4096)
def parse_template(text: str) -> Template:
    """Splits `text` into literal and expression parts, parsing each expression.

    An expression ends at the first `}}` outside a quoted string. Raises
    `ExpressionError(kind="parsing")` whose `expr` is the template and `offset` a position
    in it, for a `${{` never closed, an empty `${{ }}` or an expression that does not parse.
    """
    parts: list[TemplatePart] = []
    i = 0
    while True:
        start = text.find(OPEN, i)
        if start < 0:
            if i < len(text):
                parts.append(TemplatePart(text[i:], None, "", i))
            return Template(tuple(parts))
        if start > i:
            parts.append(TemplatePart(text[i:start], None, "", i))
        inner_start = start + len(OPEN)
        end = _find_close(text, inner_start)
        if end < 0:
            raise ExpressionError(
                "parsing",
                "The expression is not closed. An unescaped ${{ sequence was found, "
                "but the closing }} sequence was not found",
                text,
                start,
            )
        raw = text[inner_start:end]
        source = raw.strip()
        if not source:
            raise ExpressionError("parsing", "An expression was expected", text, start)
        try:
            expr = parse_expression(source)
        except ExpressionError as e:
            lead = len(raw) - len(raw.lstrip())
            raise e.relocated(text, inner_start + lead) from None
        parts.append(TemplatePart(None, expr, source, start))
        i = end + len(CLOSE)


def _find_close(text: str, start: int) -> int:
    """Offset of the `}}` closing an expression that starts at `start`, or -1."""
    in_string = False
    i = start
    n = len(text)
    while i < n:
        c = text[i]
        if c == "'":
            in_string = not in_string  # `''` inside a string toggles twice
        elif c == "}" and not in_string and text.startswith(CLOSE, i):
            return i
        i += 1
    return -1


def evaluate_template(
    t: Template | str, contexts: Mapping[str, Value], host: FunctionHost | None = None
) -> Value:
    """A single-expression template gives the value itself; any other template the text
    with each expression's value converted as GitHub converts it (`to_string`)."""
    template = parse_template(t) if isinstance(t, str) else t
    if template.is_single_expression:
        part = next(p for p in template.parts if p.expr is not None)
        return _evaluate_part(part, contexts, host)
    pieces: list[str] = []
    for part in template.parts:
        if part.expr is None:
            pieces.append(part.text or "")
        else:
            pieces.append(to_string(_evaluate_part(part, contexts, host)))
    return "".join(pieces)


def _evaluate_part(
    part: TemplatePart, contexts: Mapping[str, Value], host: FunctionHost | None
) -> Value:
    # The source text goes through the evaluator's cache; errors are reported against it.
    return evaluate(part.source, contexts, host)
