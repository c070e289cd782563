"""`shipline expr`: evaluate one expression against contexts given as JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from shipline.cli.common import fail_usage


def register(app: typer.Typer) -> None:
    app.command("expr")(expr)


def expr(
    expression: str = typer.Argument(..., help="The expression, with or without ${{ }}."),
    context: Path | None = typer.Option(
        None, "--context", help="A JSON file: an object of contexts (github, env, matrix, ...)."
    ),
) -> None:
    """Evaluate one expression and print its value as JSON."""
    from shipline.spec.expressions import ExpressionError, evaluate, evaluate_template, to_json

    contexts: dict[str, object] = {}
    if context is not None:
        try:
            loaded = json.loads(context.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            fail_usage(f"--context {context}: {exc}")
        if not isinstance(loaded, dict):
            fail_usage(f"--context {context}: must hold a JSON object of contexts")
        contexts = loaded
    try:
        if "${{" in expression:
            value = evaluate_template(expression, contexts)  # type: ignore[arg-type]
        else:
            value = evaluate(expression, contexts)  # type: ignore[arg-type]
    except ExpressionError as exc:
        fail_usage(str(exc))
    sys.stdout.write(to_json(value) + "\n")
