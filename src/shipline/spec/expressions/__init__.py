"""GitHub Actions' `${{ }}` expression language, with GitHub's semantics.

Parse once (`parse_expression`, `parse_template`; both cached), evaluate against the
contexts of a run (`evaluate`, `evaluate_template`), or ask what an expression uses
(`references`, `calls`) for lint. Pure: no I/O, environment or clock; the run-dependent
functions (`success()`, `hashFiles()`, ...) go through the caller's `FunctionHost`.
"""

from shipline.spec.expressions.analysis import (
    ContextReference,
    FunctionCall,
    calls,
    references,
)
from shipline.spec.expressions.ast import Expr, walk
from shipline.spec.expressions.errors import ExpressionError
from shipline.spec.expressions.evaluator import FunctionHost, evaluate
from shipline.spec.expressions.functions import KNOWN_FUNCTIONS
from shipline.spec.expressions.parser import parse_expression
from shipline.spec.expressions.serialize import to_json
from shipline.spec.expressions.template import (
    Template,
    TemplatePart,
    evaluate_template,
    has_expression,
    parse_template,
)
from shipline.spec.expressions.values import Value, to_string, truthy

__all__ = [
    "KNOWN_FUNCTIONS",
    "ContextReference",
    "Expr",
    "ExpressionError",
    "FunctionCall",
    "FunctionHost",
    "Template",
    "TemplatePart",
    "Value",
    "calls",
    "evaluate",
    "evaluate_template",
    "has_expression",
    "parse_expression",
    "parse_template",
    "references",
    "to_json",
    "to_string",
    "truthy",
    "walk",
]
