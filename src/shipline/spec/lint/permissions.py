"""`permissions:` of the workflow and of each job: known scopes and the values each accepts.

The whole section is either `read-all`, `write-all` or a mapping of scopes (an empty mapping
removes every permission). Most scopes take `read`, `write` or `none`; `id-token` has no
`read` and `models` no `write`. Values are case sensitive, as on GitHub.

A warning for what the job token will not get (`spec.permissions`): `write` in a workflow
that pull requests start (a fork's pull request is capped at `read`).
"""

from __future__ import annotations

import difflib

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


def _pull_requests(ctx: LintContext) -> bool:
    events = ctx.spec.triggers if ctx.spec is not None else None
    return events is not None and any(
        events.get(name) is not None for name in ("pull_request", "pull_request_target")
    )


def _capped(ctx: LintContext, node: Node, path: str) -> None:
    if _pull_requests(ctx):
        ctx.warning(
            node,
            "permissions",
            "runs of pull requests from forks get at most `read`, whatever this says",
            path=path,
            hint="a fork's code must not push or deploy with the job's token",
        )


def _check(ctx: LintContext, node: Node | None, path: str) -> None:
    if isinstance(node, Scalar):
        value = node.text if node.value is not None else ""
        if is_expression(value):
            return  # the expression rules say that no context is available here
        if value == "write-all":
            _capped(ctx, node, path)
        if value in ("read-all", "write-all"):
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
            close = difflib.get_close_matches(key.text, list(SCOPES), n=1)
            ctx.error(
                key,
                "permissions",
                f'unknown permission scope "{key.text}". all available permission scopes '
                f"are {scopes}",
                path=f"{path}.{key.text}",
                hint=f'did you mean "{close[0]}"?' if close else "",
            )
            continue
        text = scope_value.text if isinstance(scope_value, Scalar) else ""
        if isinstance(scope_value, Scalar) and is_expression(text):
            continue
        if isinstance(scope_value, Scalar) and text in allowed:
            if text == "write":
                _capped(ctx, scope_value, f"{path}.{key.text}")
            continue
        values = ", ".join(f'"{v}"' for v in allowed)
        ctx.error(
            scope_value,
            "permissions",
            f'"{text}" is invalid as permission of scope "{key.text}". '
            f"available values are {values}",
            path=f"{path}.{key.text}",
        )
