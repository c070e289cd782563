"""Triggers under `on:`: cron schedules and branch, tag and path filter patterns.

- `schedule[].cron` must parse (`spec.cron`) and fire at most every 5 minutes, GitHub's
  shortest interval (more often is a warning: GitHub silently runs it less often);
- `branches`, `tags` (and `-ignore`) patterns follow git's ref-name rules as well as the
  glob syntax; `paths` patterns must be relative paths (`spec.filters`).
"""

from __future__ import annotations

from typing import Literal

from shipline.spec.cron import CronError, parse_cron
from shipline.spec.filters import validate_pattern
from shipline.spec.lint._context import LintContext, is_expression, string_value
from shipline.spec.yamlpos import Mapping, Node, Scalar, Sequence

MIN_INTERVAL_MINUTES = 5
_FILTERS: dict[str, Literal["ref", "path"]] = {
    "branches": "ref",
    "branches-ignore": "ref",
    "tags": "ref",
    "tags-ignore": "ref",
    "paths": "path",
    "paths-ignore": "path",
}
_CHEAT_SHEET = (
    "note: filter pattern syntax is explained at https://docs.github.com/en/actions/"
    "using-workflows/workflow-syntax-for-github-actions#filter-pattern-cheat-sheet"
)


def check(ctx: LintContext) -> None:
    """Check the schedules and filters of every event."""
    _check_snapshots(ctx)
    on = ctx.root.get("on")
    if not isinstance(on, Mapping):
        return
    for key, value in on.pairs:
        if key.text == "schedule":
            _check_schedules(ctx, value)
        elif isinstance(value, Mapping):
            versions = value.get("versions") if key.text == "image_version" else None
            if versions is not None:
                for item in _items(versions):
                    _check_pattern(ctx, item, "ref", "on.image_version.versions")
            for fkey, fvalue in value.pairs:
                kind = _FILTERS.get(fkey.text)
                if kind is not None:
                    for item in _items(fvalue):
                        _check_pattern(ctx, item, kind, f"on.{key.text}.{fkey.text}")


def _check_snapshots(ctx: LintContext) -> None:
    for key, job in ctx.jobs():
        snapshot = job.get("snapshot")
        version = snapshot.get("version") if isinstance(snapshot, Mapping) else None
        if isinstance(version, Scalar) and version.text:
            _check_pattern(ctx, version, "ref", f"jobs.{key.text}.snapshot.version")


def _items(node: Node) -> list[Scalar]:
    if isinstance(node, Scalar):
        return [node]
    if isinstance(node, Sequence):
        return [i for i in node.items if isinstance(i, Scalar)]
    return []


def _check_schedules(ctx: LintContext, node: Node) -> None:
    if not isinstance(node, Sequence):
        return
    for i, entry in enumerate(node.items):
        if not isinstance(entry, Mapping):
            continue
        cron = entry.get("cron")
        text = string_value(cron)
        if not isinstance(cron, Scalar) or text is None:
            continue
        path = f"on.schedule[{i}].cron"
        parsed = parse_cron(text)
        if isinstance(parsed, CronError):
            ctx.error(
                cron,
                "events",
                f'invalid CRON format "{text}" in schedule event: {parsed.message}',
                path=path,
            )
            continue
        interval = parsed.interval_minutes_min()
        if interval is None:
            ctx.warning(cron, "events", f'CRON schedule "{text}" never fires', path=path)
        elif interval < MIN_INTERVAL_MINUTES:
            ctx.warning(
                cron,
                "events",
                f"scheduled job runs too frequently. it runs once per {interval * 60} seconds. "
                "the shortest interval is once every 5 minutes",
                path=path,
            )


def _check_pattern(ctx: LintContext, node: Scalar, kind: Literal["ref", "path"], path: str) -> None:
    text = node.text if node.value is not None else ""
    if is_expression(text):
        return
    for problem in validate_pattern(text, kind=kind):
        at = (node.line, node.col) if node.style in ("|", ">") else node.position_of(problem.offset)
        ctx.error(at, "glob", f"{problem.message}. {_CHEAT_SHEET}", path=path)
