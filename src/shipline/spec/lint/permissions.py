"""`permissions:` of the workflow and of each job: known scopes and the values each accepts.

The whole section is either `read-all`, `write-all` or a mapping of scopes (an empty mapping
removes every permission). Most scopes take `read`, `write` or `none`; `id-token` has no
`read` and `models` no `write`. Values are case sensitive, as on GitHub.
"""

from __future__ import annotations

from shipline.spec.lint._context import LintContext, is_expression
from shipline.spec.permissions import SCOPES
from shipline.spec.yamlpos import Mapping, Node, Scalar


def check(ctx: LintContext) -> None:
    """Check the workflow's and every job's permissions."""
    if "permissions" in ctx.root:
        _check(ctx, ctx.root.get("permissions"), "permissions")
    for key, job in ctx.jobs():
        if "permissions" in job:
            _check(ctx, job.get("permissions"), f"jobs.{key.text}.permissions")


def _check(ctx: LintContext, node: Node | None, path: str) -> None:
    if isinstance(node, Scalar):
        value = node.text if node.value is not None else ""
        if value in ("read-all", "write-all") or is_expression(value):
            return
        ctx.error(
            node,
            "permissions",
            f'"{value}" is invalid for permission for all the scopes. '
            'available values are "read-all", "write-all" or {}',
            path=path,
        )
        return
    if not isinstance(node, Mapping):
        return  # the loader reports sequences
    scopes = ", ".join(f'"{s}"' for s in SCOPES)
    for key, scope_value in node.pairs:
        allowed = SCOPES.get(key.text)
        if allowed is None:
            ctx.error(
                key,
                "permissions",
                f'unknown permission scope "{key.text}". all available permission scopes '
                f"are {scopes}",
                path=f"{path}.{key.text}",
            )
            continue
        text = scope_value.text if isinstance(scope_value, Scalar) else ""
        if isinstance(scope_value, Scalar) and (text in allowed or is_expression(text)):
            continue
        values = ", ".join(f'"{v}"' for v in allowed)
        ctx.error(
            scope_value,
            "permissions",
            f'"{text}" is invalid as permission of scope "{key.text}". '
            f"available values are {values}",
            path=f"{path}.{key.text}",
        )
