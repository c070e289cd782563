"""Which contexts and special functions an expression may use, by workflow key.

This is GitHub's "Context availability" table (docs: Contexts reference), with `vars`
where GitHub lists it. A key absent from the table takes no expression at all (workflow
`name`, step `id`, `uses`, `needs`, ...). Keys are normalised paths such as
`jobs.<job_id>.steps.run`; the longest listed prefix of a value's path decides.
"""

from __future__ import annotations

from dataclasses import dataclass

_JOB = "jobs.<job_id>"
_STATUS = frozenset({"always", "cancelled", "failure", "success"})


@dataclass(frozen=True, slots=True)
class Availability:
    """Contexts (lower case) and special functions allowed at one workflow key."""

    key: str
    contexts: frozenset[str]
    functions: frozenset[str] = frozenset()


def _row(key: str, contexts: str, functions: frozenset[str] = frozenset()) -> Availability:
    return Availability(key, frozenset(contexts.split()), functions)


_STEP = "github needs strategy matrix job runner env vars secrets steps inputs"
_HASH = frozenset({"hashfiles"})
_ROWS = (
    _row("run-name", "github inputs vars"),
    _row("concurrency", "github inputs vars"),
    _row("env", "github secrets inputs vars"),
    _row("on.workflow_call.inputs.<inputs_id>.default", "github inputs vars"),
    _row("on.workflow_call.outputs.<output_id>.value", "github jobs vars inputs"),
    _row(f"{_JOB}.name", "github needs strategy matrix vars inputs"),
    _row(f"{_JOB}.if", "github needs vars inputs", _STATUS),
    _row(f"{_JOB}.runs-on", "github needs strategy matrix vars inputs"),
    _row(f"{_JOB}.env", "github needs strategy matrix vars secrets inputs"),
    _row(f"{_JOB}.environment", "github needs strategy matrix vars inputs"),
    _row(
        f"{_JOB}.environment.url", "github needs strategy matrix job runner env vars steps inputs"
    ),
    _row(f"{_JOB}.outputs", _STEP),
    _row(f"{_JOB}.concurrency", "github needs strategy matrix vars inputs"),
    _row(f"{_JOB}.container", "github needs strategy matrix vars inputs"),
    _row(f"{_JOB}.container.credentials", "github needs strategy matrix env vars secrets inputs"),
    _row(
        f"{_JOB}.container.env",
        "github needs strategy matrix job runner env vars secrets inputs",
    ),
    _row(f"{_JOB}.services", "github needs strategy matrix vars inputs"),
    _row(
        f"{_JOB}.services.<service_id>.credentials",
        "github needs strategy matrix env vars secrets inputs",
    ),
    _row(
        f"{_JOB}.services.<service_id>.env",
        "github needs strategy matrix job runner env vars secrets inputs",
    ),
    _row(f"{_JOB}.strategy", "github needs vars inputs"),
    _row(f"{_JOB}.timeout-minutes", "github needs strategy matrix vars inputs"),
    _row(f"{_JOB}.continue-on-error", "github needs strategy matrix vars inputs"),
    _row(f"{_JOB}.defaults.run", "github needs strategy matrix env vars inputs"),
    _row(f"{_JOB}.with", "github needs strategy matrix vars inputs"),
    _row(f"{_JOB}.secrets", "github needs strategy matrix secrets vars inputs"),
    _row(f"{_JOB}.snapshot", "github needs strategy matrix vars inputs"),
    _row(f"{_JOB}.steps.if", _STEP.replace(" secrets", ""), _STATUS | _HASH),
    *(
        _row(f"{_JOB}.steps.{key}", _STEP, _HASH)
        for key in (
            "continue-on-error",
            "env",
            "name",
            "run",
            "timeout-minutes",
            "with",
            "working-directory",
        )
    ),
)
TABLE: dict[str, Availability] = {row.key: row for row in _ROWS}
NOWHERE = Availability("", frozenset())


def normalise(path: tuple[str | int, ...]) -> str:
    """`("jobs", "build", "steps", 2, "run")` -> `"jobs.<job_id>.steps.run"`."""
    out: list[str] = []
    previous: str | int | None = None
    for i, seg in enumerate(path):
        if isinstance(seg, int):
            previous = seg
            continue
        if i == 1 and previous == "jobs":
            out.append("<job_id>")
        elif previous == "services" and out[:2] == ["jobs", "<job_id>"] and len(out) == 3:
            out.append("<service_id>")
        elif out == ["on", "workflow_call", "inputs"]:
            out.append("<inputs_id>")
        elif out == ["on", "workflow_call", "outputs"]:
            out.append("<output_id>")
        else:
            out.append(seg)
        previous = seg
    return ".".join(out)


def availability(key: str) -> Availability | None:
    """The row for a normalised key (longest listed prefix); None where GitHub evaluates
    no expression and lint should not look (trigger filters and the like)."""
    if key.startswith("on.") and not key.startswith("on.workflow_call."):
        return None
    parts = key.split(".")
    for end in range(len(parts), 0, -1):
        row = TABLE.get(".".join(parts[:end]))
        if row is not None:
            return row
    return NOWHERE
