"""GitHub Actions' `${{ }}` expression language, with GitHub's semantics.

Parse once (`parse_expression`, `parse_template`; both cached), evaluate against the
contexts of a run (`evaluate`, `evaluate_template`), or ask what an expression uses
(`references`, `calls`) for lint. Pure: no I/O, environment or clock; the run-dependent
functions (`success()`, `hashFiles()`, ...) go through the caller's `FunctionHost`.

The names load on first use (PEP 562): `shipline run` of a workflow without expressions
never pays for the parser, and a run never pays for the lint-only analysis.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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

# Public name -> the submodule that defines it.
_EXPORTS = {
    "KNOWN_FUNCTIONS": "functions",
    "ContextReference": "analysis",
    "Expr": "ast",
    "ExpressionError": "errors",
    "FunctionCall": "analysis",
    "FunctionHost": "evaluator",
    "Template": "template",
    "TemplatePart": "template",
    "Value": "values",
    "calls": "analysis",
    "evaluate": "evaluator",
    "evaluate_template": "template",
    "has_expression": "template",
    "parse_expression": "parser",
    "parse_template": "template",
    "references": "analysis",
    "to_json": "serialize",
    "to_string": "values",
    "truthy": "values",
    "walk": "ast",
}

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


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
