"""The one exception of the expression language and the limits GitHub enforces."""

from __future__ import annotations

from typing import Literal

ErrorKind = Literal["parsing", "evaluation"]

MAX_DEPTH = 50
"""Deepest nesting the parser accepts (GitHub: "Exceeded max expression depth 50")."""

MAX_LENGTH = 21_000
"""Longest expression text the lexer accepts, in characters."""

MAX_MEMORY = 1_048_576
"""Bytes an evaluation may hold at once, counted the way GitHub's runner counts them."""


class ExpressionError(Exception):
    """A `${{ }}` expression could not be parsed or evaluated.

    Attributes:
        kind: `"parsing"` for syntax errors, unknown names and functions, wrong arities
            and limits found before evaluation; `"evaluation"` for errors while running it.
        message: GitHub's wording of the error, without the location.
        expr: the expression (or template) text the offset refers to.
        offset: 0-based character offset into `expr`, or -1 when unknown.
    """

    def __init__(self, kind: ErrorKind, message: str, expr: str, offset: int = -1) -> None:
        super().__init__(kind, message, expr, offset)
        self.kind: ErrorKind = kind
        self.message = message
        self.expr = expr
        self.offset = offset

    def __str__(self) -> str:
        if self.offset >= 0:
            return (
                f"{self.message}. Located at position {self.offset + 1} "
                f"within expression: {self.expr}"
            )
        return f"{self.message}. Within expression: {self.expr}"

    def relocated(self, expr: str, shift: int) -> ExpressionError:
        """The same error, reported against `expr`, of which the original text starts at `shift`."""
        offset = self.offset + shift if self.offset >= 0 else -1
        return ExpressionError(self.kind, self.message, expr, offset)
