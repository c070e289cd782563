"""`shipline plan`: the compiled plan, to answer "why did or didn't this job run"."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from shipline.plan.compile import PlannedJob
    from shipline.plan.events import Event


def register(app: typer.Typer) -> None:
    app.command("plan")(plan)


def plan(
    workflow: str | None = typer.Argument(None, help="A workflow file or name."),
    event: str = typer.Option(
        "push", "--event", "-e", help="push, pull_request, workflow_dispatch or schedule."
    ),
    job: list[str] = typer.Option([], "-j", "--job", help="Plan only this job and its needs."),
    matrix: list[str] = typer.Option([], "--matrix", help="Only matrix cells with KEY=VALUE."),
    json_out: bool = typer.Option(False, "--json", help="Print the plan as JSON."),
    directory: Path = typer.Option(Path(), "-C", help="Work in this directory."),
) -> None:
    """Show which workflows and jobs an event starts: matrix cells, needs, conditions."""
    from shipline.cli.common import fail_usage, key_values, print_workflow_error
    from shipline.cli.run import EVENTS, _find_workflow, read_for_event
    from shipline.domain.errors import UsageError, WorkflowError
    from shipline.local.repo import discover_workflows, inspect_repo
    from shipline.local.session import select_workflows

    if event not in EVENTS:
        fail_usage(f"--event must be one of {', '.join(EVENTS)}, not {event!r}")
    try:
        repo = inspect_repo(directory.resolve())
        paths = discover_workflows(repo.root)
        if workflow:
            paths = [_find_workflow(workflow, paths, repo.root, directory)]
        workflows, ev = read_for_event(repo, paths, event)
        selected, skipped = select_workflows(
            workflows,
            ev,
            jobs=job or None,
            matrix=key_values(matrix, "--matrix"),
            explicit=bool(workflow),
        )
    except WorkflowError as exc:
        print_workflow_error(exc)
        raise typer.Exit(2) from exc
    except UsageError as exc:
        fail_usage(str(exc))
    doc: dict[str, Any] = {
        "event": {"name": ev.name, "ref": ev.ref, "sha": ev.sha},
        "workflows": [
            {
                "file": s.spec.file,
                "name": s.spec.display_name,
                "digest": s.plan.digest,
                "jobs": [
                    {
                        "key": j.key,
                        "id": j.job_id,
                        "name": _job_name(j, ev),
                        "needs": list(j.needs),
                        "matrix": j.matrix_dict or None,
                        "if": j.spec.if_ or "success()",
                        "dynamic_matrix": j.dynamic_matrix,
                    }
                    for j in s.plan.jobs
                ],
                "not_selected": [{"job": k, "reason": r} for k, r in s.plan.not_selected],
            }
            for s in selected
        ],
        "not_triggered": [{"file": f, "reason": r} for f, r in skipped],
    }
    if json_out:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    out = [f"event: {ev.name} {ev.ref} {ev.sha[:12]}"]
    for w in doc["workflows"]:
        out.append(f"\n{w['file']} ({w['name']}) — runs, digest {str(w['digest'])[:12]}")
        for j in w["jobs"]:
            needs = f" needs {', '.join(j['needs'])}" if j["needs"] else ""
            cond = f" if {j['if']}" if j["if"] != "success()" else ""
            dyn = (
                " (matrix from an expression: expanded at run time)" if j["dynamic_matrix"] else ""
            )
            out.append(f"  {j['key']}{needs}{cond}{dyn}")
        for n in w["not_selected"]:
            out.append(f"  {n['job']}: not selected — {n['reason']}")
    for f, r in skipped:
        out.append(f"\n{f} — not triggered: {r}")
    sys.stdout.write("\n".join(out) + "\n")


def _job_name(job: PlannedJob, event: Event) -> str:
    """The job's name as `run` will show it: `name:` evaluated with what is known before the
    run (github, matrix, strategy); the plain name when it needs more (needs outputs)."""
    name = job.spec.name
    if not name or "${{" not in name:
        return job.display_name
    from shipline.spec.expressions import ExpressionError, evaluate_template, to_string

    contexts: dict[str, object] = {
        "github": {
            "event_name": event.name,
            "ref": event.ref,
            "sha": event.sha,
            "ref_name": event.ref_name,
            "repository": event.repository,
            "actor": event.actor,
        },
        "matrix": job.matrix_dict,
        "strategy": {"job-index": job.matrix_index, "job-total": job.matrix_total},
        "inputs": dict(event.inputs),
        "vars": {},
        "needs": {},
    }
    try:
        value = evaluate_template(name, contexts)  # type: ignore[arg-type]
    except ExpressionError:
        return job.display_name
    return value if isinstance(value, str) else to_string(value)
