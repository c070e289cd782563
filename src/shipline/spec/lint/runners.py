"""`runs-on:` labels: known GitHub-hosted labels, and labels that cannot go together.

Locally every label runs (Shipline's runners match labels they were given), so an unknown
label is only a WARNING: it is usually a typo or a retired image (`macos-12`). Labels of
two operating systems in one `runs-on` (`[ubuntu-latest, windows-latest]`) can never both
match one machine: a matrix was meant; that is a warning too.
Values coming from a literal matrix row (`runs-on: ${{ matrix.os }}`) are checked too.
"""

from __future__ import annotations

import re

from shipline.spec.lint._context import LintContext, is_expression
from shipline.spec.yamlpos import Mapping, Node, Scalar, Sequence

HOSTED = re.compile(
    r"^(ubuntu-(latest|slim|24\.04|22\.04)(-arm)?|ubuntu-(24\.04|22\.04)-arm|"
    r"windows-(latest|2025|2022|11-arm)|"
    r"macos-(latest|26|15|14|13)(-(xlarge|large|intel))?|macos-15-intel)$",
    re.IGNORECASE,
)
GENERIC = frozenset(("self-hosted", "linux", "macos", "windows", "x64", "x86", "arm", "arm64"))
_MATRIX_REF = re.compile(r"^\$\{\{\s*matrix\.([A-Za-z_][\w-]*)\s*\}\}$")


def check(ctx: LintContext) -> None:
    """Check each job's runner labels."""
    for key, job in ctx.jobs():
        runs_on = job.get("runs-on")
        if isinstance(runs_on, Mapping):
            runs_on = runs_on.get("labels")
        labels: list[Scalar] = []
        if isinstance(runs_on, Scalar):
            labels = [runs_on]
        elif isinstance(runs_on, Sequence):
            labels = [i for i in runs_on.items if isinstance(i, Scalar)]
        _check_labels(ctx, job, labels, f"jobs.{key.text}.runs-on")


def _check_labels(ctx: LintContext, job: Mapping, labels: list[Scalar], path: str) -> None:
    hosted: Scalar | None = None
    from_matrix: list[Scalar] = []
    for label in labels:
        text = label.text if label.value is not None else ""
        if is_expression(text):
            # Matrix values are alternatives (one per job): each only meets the literal labels.
            from_matrix += _matrix_values(job, text)
            continue
        _check_label(ctx, label, path)
        hosted = _check_conflict(ctx, label, hosted, path)
    for value in from_matrix:
        _check_label(ctx, value, path)
        _check_conflict(ctx, value, hosted, path)


def _check_label(ctx: LintContext, label: Scalar, path: str) -> None:
    text = label.text if label.value is not None else ""
    if is_expression(text) or HOSTED.match(text) or text.lower() in GENERIC:
        return
    ctx.warning(
        label,
        "runner-label",
        f'label "{text}" is unknown. available labels are GitHub-hosted images '
        "(ubuntu-latest, windows-latest, macos-latest, ...) and self-hosted labels. "
        "Shipline runs it on any runner registered with this label",
        path=path,
    )


def _os(label: str) -> str | None:
    low = label.lower()
    for os_name, prefix in (("linux", "ubuntu"), ("windows", "windows"), ("macos", "macos")):
        if low.startswith(prefix) or low == os_name:
            return os_name
    return None


def _check_conflict(
    ctx: LintContext, label: Scalar, hosted: Scalar | None, path: str
) -> Scalar | None:
    """Warn when `label` asks for another OS than the first GitHub-hosted image did.

    Returns the first hosted image seen so far."""
    generic_os = label.text.lower() in ("linux", "windows", "macos")
    if not HOSTED.match(label.text) and not generic_os:
        return hosted
    if hosted is None:
        return None if generic_os else label
    if _os(label.text) != _os(hosted.text):
        ctx.warning(
            label,
            "runner-label",
            f'label "{label.text}" conflicts with label "{hosted.text}" defined at '
            f"line:{hosted.line},col:{hosted.col}. note: to run your job on each workers, "
            "use matrix",
            path=path,
        )
    return hosted


def _matrix_values(job: Mapping, text: str) -> list[Scalar]:
    match = _MATRIX_REF.match(text.strip())
    strategy = job.get("strategy")
    if match is None or not isinstance(strategy, Mapping):
        return []
    matrix = strategy.get("matrix")
    if not isinstance(matrix, Mapping):
        return []
    row: Node | None = matrix.get(match.group(1))
    if not isinstance(row, Sequence):
        return []
    return [i for i in row.items if isinstance(i, Scalar) and not is_expression(i.text)]
