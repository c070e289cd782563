"""Checks on expression values that are known before the run: function arguments written as
literals, and untrusted input interpolated into scripts.

- `format('{0} {1}', a)`: placeholders and arguments must match one to one;
- `fromJSON('...')` with a literal that is not JSON always fails at run time;
- `${{ github.event.issue.title }}` (and the other fields an outside user controls) pasted
  into a `run:` script or `actions/github-script`'s `script` is a script injection: pass it
  through an environment variable instead.
"""

from __future__ import annotations

import json
import re

from shipline.spec.expressions import ContextReference, Expr, walk
from shipline.spec.expressions.ast import Call, Literal

_PLACEHOLDER = re.compile(r"\{(\d+)\}")

# Fields of `github.event` (and `github.head_ref`) that whoever opens an issue, a pull
# request or a comment can set to anything, from GitHub's security hardening guide.
UNTRUSTED: tuple[tuple[str, ...], ...] = tuple(
    tuple(p.split("."))
    for p in [
        "event.issue.title",
        "event.issue.body",
        "event.pull_request.title",
        "event.pull_request.body",
        "event.comment.body",
        "event.review.body",
        "event.review_comment.body",
        "event.pages.*.page_name",
        "event.commits.*.message",
        "event.head_commit.message",
        "event.head_commit.author.email",
        "event.head_commit.author.name",
        "event.commits.*.author.email",
        "event.commits.*.author.name",
        "event.pull_request.head.ref",
        "event.pull_request.head.label",
        "event.pull_request.head.repo.default_branch",
        "event.discussion.title",
        "event.discussion.body",
        "event.workflow_run.head_branch",
        "event.workflow_run.head_commit.message",
        "event.workflow_run.head_commit.author.email",
        "event.workflow_run.head_commit.author.name",
        "event.workflow_run.pull_requests.*.head.branch",
        "head_ref",
    ]
)


def call_problems(expr: Expr) -> list[tuple[int, str]]:
    """(offset, message) for each literal-argument mistake in the expression."""
    found: list[tuple[int, str]] = []
    for node in walk(expr):
        if not isinstance(node, Call) or not node.args:
            continue
        first = node.args[0]
        if not isinstance(first, Literal) or not isinstance(first.value, str):
            continue
        name = node.name.lower()
        if name == "format":
            problem = _format_problem(first.value, len(node.args) - 1)
            if problem:
                found.append((node.offset, problem))
        elif name == "fromjson":
            try:
                json.loads(first.value)
            except ValueError as e:
                position = getattr(e, "pos", 0)
                found.append(
                    (
                        first.offset,
                        f"broken JSON string is passed to fromJSON() at offset {position}: "
                        f"{getattr(e, 'msg', str(e))}",
                    )
                )
    return found


def _format_problem(fmt: str, args: int) -> str | None:
    text = fmt.replace("{{", "").replace("}}", "")
    used = {int(m.group(1)) for m in _PLACEHOLDER.finditer(text)}
    for index in sorted(used):
        if index >= args:
            return (
                f'format string "{fmt}" contains placeholder {{{index}}} but only {args} '
                "arguments are given to format"
            )
    for index in range(args):
        if index not in used:
            return (
                f'format string "{fmt}" does not contain placeholder {{{index}}}. remove '
                "argument which is unused in the format string"
            )
    return None


def untrusted_problem(ref: ContextReference) -> str | None:
    """Why interpolating `ref` into a script is an injection risk, or None."""
    if ref.context != "github":
        return None
    exact: list[str] = []
    filtered: list[str] = []
    for pattern in UNTRUSTED:
        if len(pattern) != len(ref.path):
            continue
        via_filter = False
        for want, got in zip(pattern, ref.path, strict=True):
            if want == "*":
                continue
            if got is None:
                via_filter = True
            elif got != want:
                break
        else:
            name = "github." + ".".join(pattern)
            (filtered if via_filter else exact).append(name)
    advice = (
        "avoid using it directly in inline scripts. instead, pass it through an environment "
        "variable. see https://docs.github.com/en/actions/reference/security/secure-use"
    )
    if exact:
        return f'"{exact[0]}" is potentially untrusted. {advice}'
    if filtered:
        names = ", ".join(f'"{n}"' for n in sorted(filtered))
        return f"object filter extracts potentially untrusted properties {names}. {advice}"
    return None
