"""`shipline runs`: list, show, logs (followed live), cancel, rerun, approve (over the API)."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import typer

from shipline.cli.client import JSON_OPTION, SERVER_OPTION, TOKEN_OPTION

if TYPE_CHECKING:
    from shipline.cli.client import ApiClient, ApiObject

runs_app = typer.Typer(
    name="runs",
    help="Runs on a server: list, show, logs, cancel, rerun, approve.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

STATUSES = ("queued", "waiting", "in_progress", "completed")
RUN_ID: int = typer.Argument(..., metavar="RUN", min=1, help="The run's id.")


def register(app: typer.Typer) -> None:
    app.add_typer(runs_app)


@runs_app.command("list")
def list_runs(
    project: str | None = typer.Option(None, "--project", help="Only this project's runs."),
    status: str | None = typer.Option(None, "--status", help=f"One of {', '.join(STATUSES)}."),
    branch: str | None = typer.Option(None, "--branch", help="Only runs of this branch."),
    limit: int = typer.Option(20, "--limit", min=1, max=100, help="At most this many."),
    server: str = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Runs, newest first (of every project you may see, unless --project)."""
    from shipline.cli.client import connect, items, print_json
    from shipline.cli.common import fail_usage
    from shipline.cli.tables import print_table, short_ref, state, when

    if status is not None and status not in STATUSES:
        fail_usage(f"--status must be one of {', '.join(STATUSES)}, got {status!r}")
    query = {"status": status, "branch": branch, "limit": limit}
    with connect(server, token) as api:
        if project is not None:
            page = api.get(f"/projects/{_quote(project)}/runs", query)
        else:
            runs: list[ApiObject] = []
            for p in items(api.get("/projects", {"limit": 100})):
                runs.extend(items(api.get(f"/projects/{_quote(p['name'])}/runs", query)))
            runs.sort(key=lambda r: int(r["id"]), reverse=True)
            page = {"items": runs[:limit], "next_cursor": None}
    if json_out:
        print_json(page)
        return
    rows = [
        [
            str(r["id"]),
            r["project"],
            f"{r['workflow_name']} #{r['number']}"
            + (f".{r['attempt']}" if r.get("attempt", 1) > 1 else ""),
            short_ref(r["ref"]),
            r["event"],
            state(r),
            when(r.get("created_at")),
        ]
        for r in items(page)
    ]
    print_table(["id", "project", "workflow", "ref", "event", "status", "created"], rows)


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


@runs_app.command("show")
def show(
    run_id: int = RUN_ID,
    server: str = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """A run with its jobs and steps."""
    from shipline.cli.client import connect, print_json
    from shipline.cli.tables import print_fields, short_ref, state, when

    with connect(server, token) as api:
        run = api.get(f"/runs/{run_id}")
    if json_out:
        print_json(run)
        return
    print_fields(
        [
            ("run", f"{run['id']} ({run['project']} {run['workflow_name']} #{run['number']})"),
            ("attempt", run["attempt"] if run.get("attempt", 1) > 1 else None),
            ("status", state(run)),
            ("workflow", run["workflow_file"]),
            ("event", run["event"]),
            ("ref", f"{short_ref(run['ref'])} @ {run['sha'][:12]}"),
            ("actor", run["actor"]),
            ("created", when(run.get("created_at"))),
            ("finished", when(run.get("finished_at"))),
            ("error", run.get("error")),
        ]
    )
    for job in run.get("jobs") or []:
        sys.stdout.write(f"\njob {job['id']} {job['name']}: {state(job)}\n")
        if job.get("error"):
            sys.stdout.write(f"  error: {job['error']}\n")
        for step in job.get("steps") or []:
            code = step.get("exit_code")
            suffix = f" (exit {code})" if code not in (None, 0) else ""
            sys.stdout.write(f"  {step['number']:>2}. {step['name']}: {state(step)}{suffix}\n")


@runs_app.command("logs")
def logs(
    run_id: int = RUN_ID,
    job: str | None = typer.Option(None, "--job", help="A job's id, key or name (default: all)."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Stream until the job ends."),
    server: str = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """The logs of a run's jobs (ANSI colours as the steps wrote them).

    --json prints one JSON object per line: the stream's events when following
    (`{"job", "seq", "step", "text"}`), else `{"job", "key", "text"}` per job."""
    from shipline.cli.client import connect

    with connect(server, token) as api:
        run = api.get(f"/runs/{run_id}")
        jobs = _select(run.get("jobs") or [], job)
        for record in jobs:
            if len(jobs) > 1 and not json_out:
                sys.stdout.write(f"=== job {record['id']} {record['name']} ===\n")
                sys.stdout.flush()
            if follow:
                _follow(api, run_id, record, json_out)
            else:
                text = api.text(f"/runs/{run_id}/jobs/{record['id']}/logs")
                if json_out:
                    line = {"job": record["id"], "key": record["key"], "text": text}
                    sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
                else:
                    sys.stdout.write(text if not text or text.endswith("\n") else text + "\n")


def _select(jobs: list[ApiObject], wanted: str | None) -> list[ApiObject]:
    from shipline.cli.client import fail

    if wanted is None:
        return jobs
    found = [j for j in jobs if wanted in (str(j["id"]), j["key"], j["job"], j["name"])]
    if not found:
        names = ", ".join(f"{j['id']} ({j['key']})" for j in jobs) or "none"
        fail(f"the run has no job {wanted!r}; its jobs: {names}")
    return found


def _follow(api: ApiClient, run_id: int, job: ApiObject, json_out: bool) -> None:
    path = f"/runs/{run_id}/jobs/{job['id']}/logs"
    for event in api.events(path, {"follow": True}):
        data = json.loads(event.data)
        if event.event == "log":
            if json_out:
                sys.stdout.write(json.dumps({"job": job["id"], **data}, ensure_ascii=False))
                sys.stdout.write("\n")
            else:
                sys.stdout.write(data.get("text", ""))
            sys.stdout.flush()
        elif event.event == "status" and not json_out:
            conclusion = data.get("conclusion")
            sys.stderr.write(f"job {job['id']} {job['name']}: {data['status']}")
            sys.stderr.write(f"/{conclusion}\n" if conclusion else "\n")


@runs_app.command("cancel")
def cancel(
    run_id: int = RUN_ID,
    server: str = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Cancel a run: queued jobs end cancelled, running ones are told to stop."""
    from shipline.cli.client import connect, print_json
    from shipline.cli.tables import state

    with connect(server, token) as api:
        run = api.post(f"/runs/{run_id}/cancel")
    if json_out:
        print_json(run)
        return
    sys.stdout.write(f"run {run['id']}: {state(run)}\n")


@runs_app.command("rerun")
def rerun(
    run_id: int = RUN_ID,
    failed: bool = typer.Option(False, "--failed", help="Only the failed jobs (and after)."),
    server: str = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Run a completed run again at the same commit, as a new attempt."""
    from shipline.cli.client import connect, print_json
    from shipline.cli.tables import state

    with connect(server, token) as api:
        run = api.post(f"/runs/{run_id}/rerun", {"failed_only": failed})
    if json_out:
        print_json(run)
        return
    sys.stdout.write(f"run {run['id']}: attempt {run.get('attempt')} {state(run)}\n")


@runs_app.command("approve")
def approve(
    run_id: int = RUN_ID,
    sha: str | None = typer.Option(
        None, "--sha", help="Approve only if the run is for this commit (what you reviewed)."
    ),
    server: str = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Let a run that waits for a maintainer start (a first-time contributor's pull
    request). Maintainers and up; never the change's author. The approval holds for the
    run's commit only: a new push waits again."""
    from shipline.cli.client import connect, print_json
    from shipline.cli.tables import state

    with connect(server, token) as api:
        run = api.post(f"/runs/{run_id}/approve", {"sha": sha} if sha else {})
    if json_out:
        print_json(run)
        return
    sys.stdout.write(f"run {run['id']} approved at {str(run.get('sha'))[:12]}: {state(run)}\n")
