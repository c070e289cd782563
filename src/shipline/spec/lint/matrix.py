"""`strategy.matrix` mistakes that silently change which jobs run.

- a matrix row (`os: [...]`), `include` or `exclude` that is empty;
- the same value twice in one row (the job runs twice);
- an `exclude` entry naming a key that is in no row (nothing is excluded), or a value that
  matches none of the row's values (objects match when they are a subset of a value).

Rows, entries or values that are `${{ }}` expressions are only known at run time and are
skipped.
"""

from __future__ import annotations

import json

from shipline.spec.lint._context import LintContext, is_expression
from shipline.spec.yamlpos import Mapping, Node, Scalar, Sequence, to_python


def check(ctx: LintContext) -> None:
    """Check every job's literal matrix."""
    for key, job in ctx.jobs():
        strategy = job.get("strategy")
        if isinstance(strategy, Mapping):
            matrix = strategy.get("matrix")
            if isinstance(matrix, Mapping):
                _check_matrix(ctx, matrix, f"jobs.{key.text}.strategy.matrix")


def _check_matrix(ctx: LintContext, matrix: Mapping, path: str) -> None:
    rows: dict[str, Sequence | None] = {}
    for key, value in matrix.pairs:
        name = key.text
        if name in ("include", "exclude"):
            if isinstance(value, Sequence) and not value.items:
                ctx.error(value, "syntax-check", f'"{name}" section should not be empty', path=path)
            continue
        if isinstance(value, Sequence):
            rows[name] = value
            if not value.items:
                ctx.error(
                    value,
                    "syntax-check",
                    '"matrix values" section should not be empty',
                    path=f"{path}.{name}",
                )
            _check_duplicates(ctx, name, value, f"{path}.{name}")
        else:
            rows[name] = None  # an expression (or a mistake the loader reports)
    include_keys: set[str] = set()
    include = matrix.get("include")
    added: dict[str, Sequence] = {}  # keys only `include` sets, with the values it gives
    if isinstance(include, Sequence):
        for entry in include.items:
            if isinstance(entry, Mapping):
                include_keys.update(entry.keys())
                for key, value in entry.pairs:
                    if key.text not in rows:
                        added.setdefault(key.text, Sequence(value.line, value.col)).items.append(
                            value
                        )
    rows = {**rows, **added}
    exclude = matrix.get("exclude")
    if isinstance(exclude, Sequence):
        for entry in exclude.items:
            if isinstance(entry, Mapping):
                _check_exclude(ctx, entry, rows, include_keys, f"{path}.exclude")


def _check_duplicates(ctx: LintContext, name: str, row: Sequence, path: str) -> None:
    seen: dict[str, Node] = {}
    for item in row.items:
        if isinstance(item, Scalar) and isinstance(item.value, str) and is_expression(item.value):
            continue
        canonical = _canonical(item)
        if canonical in seen:
            first = seen[canonical]
            ctx.error(
                item,
                "matrix",
                f'duplicate value {_show(item)} is found in matrix "{name}". '
                f"the same value is at line:{first.line},col:{first.col}",
                path=path,
            )
        else:
            seen[canonical] = item


def _check_exclude(
    ctx: LintContext,
    entry: Mapping,
    rows: dict[str, Sequence | None],
    include_keys: set[str],
    path: str,
) -> None:
    for key, value in entry.pairs:
        name = key.text
        if name not in rows:
            if name in include_keys or any(r is None for r in rows.values()):
                continue
            available = ", ".join(f'"{k}"' for k in sorted(rows))
            ctx.error(
                key,
                "matrix",
                f'"{name}" in "exclude" section does not exist in matrix. '
                f"available matrix configurations are {available}",
                path=path,
            )
            continue
        row = rows[name]
        if row is None or _has_expression(value) or any(_has_expression(v) for v in row.items):
            continue
        wanted = to_python(value)
        if not any(_matches(wanted, to_python(candidate)) for candidate in row.items):
            possible = ", ".join(_show(v) for v in row.items)
            ctx.error(
                value,
                "matrix",
                f'value {_show(value)} in "exclude" does not match in matrix "{name}" '
                f"combinations. possible values are {possible}",
                path=path,
            )


def _matches(wanted: object, candidate: object) -> bool:
    """Whether an exclude value selects a row value (objects: a subset is enough)."""
    if isinstance(wanted, dict):
        return isinstance(candidate, dict) and all(
            k in candidate and _matches(v, candidate[k]) for k, v in wanted.items()
        )
    if isinstance(wanted, list):
        return (
            isinstance(candidate, list)
            and len(wanted) == len(candidate)
            and all(_matches(a, b) for a, b in zip(wanted, candidate, strict=True))
        )
    if isinstance(candidate, dict | list):
        return False
    return _scalar_text(wanted) == _scalar_text(candidate)


def _scalar_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _canonical(node: Node) -> str:
    return json.dumps(_normalise(to_python(node)), sort_keys=True)


def _normalise(value: object) -> object:
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return _scalar_text(value)


def _show(node: Node) -> str:
    return json.dumps(_normalise(to_python(node)), sort_keys=True)


def _has_expression(node: Node) -> bool:
    if isinstance(node, Scalar):
        return isinstance(node.value, str) and is_expression(node.value)
    if isinstance(node, Sequence):
        return any(_has_expression(i) for i in node.items)
    if isinstance(node, Mapping):
        return any(_has_expression(v) for _, v in node.pairs)
    return False
