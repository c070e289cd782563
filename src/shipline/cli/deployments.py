"""Approvals and deployments through the API: `approvals list`, `approve`, `reject`,
`deploy`, `rollback`, `releases`, `deployments list|show`."""

from __future__ import annotations

import sys
import time
from typing import Any

import typer

from shipline.cli.client import JSON_OPTION, SERVER_OPTION, TOKEN_OPTION

approvals_app = typer.Typer(
    name="approvals",
    help="Jobs waiting for an environment's protection rules.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
deployments_app = typer.Typer(
    name="deployments",
    help="Release history of a project's environments, and one deployment's progress.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

ENV_REQUIRED: Any = typer.Option(..., "--env", metavar="ENVIRONMENT", help="The environment.")
PROJECT_REQUIRED: Any = typer.Option(..., "--project", "-p", help="The project's name.")
COMMENT: Any = typer.Option("", "--comment", "-m", help="A comment for the audit trail.")
WAIT: Any = typer.Option(False, "--wait", help="Follow the deployment's progress until it ends.")


def register(app: typer.Typer) -> None:
    if any(group.name == "approvals" for group in app.registered_groups):
        return  # one module, several command names in COMMANDS
    app.add_typer(approvals_app)
    app.add_typer(deployments_app)
    app.command("approve")(approve)
    app.command("reject")(reject)
    app.command("deploy")(deploy)
    app.command("rollback")(rollback)
    app.command("releases")(list_releases)


@approvals_app.command("list")
def list_approvals(
    project: str | None = typer.Option(None, "--project", "-p", help="Only this project."),
    server: str = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Jobs waiting for approval (or a wait timer or freeze window), oldest first."""
    from shipline.cli.client import connect, items, print_json
    from shipline.cli.tables import print_table, short_ref, when

    with connect(server, token) as api:
        page = api.get("/approvals", params={"project": project} if project else None)
    if json_out:
        print_json(page)
        return
    rows = [
        [
            a["project"],
            str(a["run_id"]),
            a["job"],
            a["environment"],
            f"{a['approvals']}/{a['required']}",
            a["actor"],
            short_ref(a["ref"]),
            when(a["created_at"]),
        ]
        for a in items(page)
    ]
    print_table(["project", "run", "job", "environment", "approvals", "by", "ref", "since"], rows)


def _decide(decision: str, run: int, env: str, comment: str, server: str, token: str | None) -> Any:
    from shipline.cli.client import connect

    with connect(server, token) as api:
        return api.post(f"/runs/{run}/environments/{env}/{decision}", {"comment": comment})


def approve(
    run: int = typer.Argument(..., help="The run's id."),
    env: str = ENV_REQUIRED,
    comment: str = COMMENT,
    server: str = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Approve the run's jobs waiting for ENV (one of its reviewers; never the run's own
    starter when the environment prevents self-review)."""
    from shipline.cli.client import items, print_json

    page = _decide("approve", run, env, comment, server, token)
    if json_out:
        print_json(page)
        return
    for gate in items(page):
        state = "released" if gate["state"] == "approved" else "still waiting"
        sys.stdout.write(f"approved job {gate['job_id']} of run {run} for {env}: {state}\n")


def reject(
    run: int = typer.Argument(..., help="The run's id."),
    env: str = ENV_REQUIRED,
    comment: str = COMMENT,
    server: str = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Reject the run's jobs waiting for ENV: they fail with your name and comment."""
    from shipline.cli.client import items, print_json

    page = _decide("reject", run, env, comment, server, token)
    if json_out:
        print_json(page)
        return
    for gate in items(page):
        sys.stdout.write(f"rejected job {gate['job_id']} of run {run} for {env}\n")


def _follow(api: Any, deployment: dict[str, Any], json_out: bool) -> dict[str, Any]:
    seq = 0
    while True:
        answer = api.get(f"/deployments/{deployment['id']}/progress", params={"after": seq})
        for line in answer["lines"]:
            if not json_out:
                sys.stdout.write(f"{line}\n")
                sys.stdout.flush()
        seq = answer["seq"]
        current: dict[str, Any] = answer["deployment"]
        if current["state"] not in ("queued", "in_progress"):
            return current
        time.sleep(0.5)


def _report(deployment: dict[str, Any], json_out: bool) -> None:
    from shipline.cli.client import print_json

    if json_out:
        print_json(deployment)
    else:
        release = deployment["release"]
        sys.stdout.write(
            f"deployment {deployment['id']} ({deployment['kind']}) of release {release['id']} "
            f"to {deployment['environment']}: {deployment['state']}"
            + (f" — {deployment['reason']}" if deployment["reason"] else "")
            + "\n"
        )
    if deployment["state"] not in ("queued", "in_progress", "success"):
        raise typer.Exit(1)


def deploy(
    env: str = typer.Argument(..., metavar="ENV", help="The environment."),
    release: int = typer.Option(..., "--release", help="The release's id (see deployments)."),
    project: str = PROJECT_REQUIRED,
    wait: bool = WAIT,
    server: str = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Deploy a release to ENV (or roll forward after a rollback), with the environment's
    gates: you must be one of its reviewers; the artifact is verified again."""
    from shipline.cli.client import connect

    with connect(server, token) as api:
        made = api.post(f"/projects/{project}/environments/{env}/deployments", {"release": release})
        if wait:
            made = _follow(api, made, json_out)
    _report(made, json_out)


def rollback(
    env: str = typer.Argument(..., metavar="ENV", help="The environment."),
    to: int | None = typer.Option(
        None,
        "--to",
        metavar="RELEASE",
        help="A release that was live in ENV (see `shipline releases ENV`). Default: the "
        "one live before the current one.",
    ),
    project: str = PROJECT_REQUIRED,
    wait: bool = WAIT,
    server: str = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Roll ENV back to the release that ran before the current one (or RELEASE)."""
    from shipline.cli.client import connect

    with connect(server, token) as api:
        made = api.post(f"/projects/{project}/environments/{env}/rollback", {"release": to})
        if wait:
            made = _follow(api, made, json_out)
    _report(made, json_out)


def list_releases(
    env: str = typer.Argument(..., metavar="ENV", help="The environment."),
    project: str = typer.Option(
        ...,
        "--project",
        "-p",
        envvar="SHIPLINE_PROJECT",
        help="The project's name (env SHIPLINE_PROJECT).",
    ),
    limit: int = typer.Option(20, "--limit", min=1, max=100),
    server: str = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """ENV's release history, newest first: release, when, by whom, from which run and
    commit, the outcome and (for a rolled back one) why. `rollback --to` takes a release
    from it."""
    from shipline.cli.client import connect, items, print_json
    from shipline.cli.tables import print_table, short_ref, when

    with connect(server, token) as api:
        page = api.get(f"/projects/{project}/environments/{env}/releases", params={"limit": limit})
    if json_out:
        print_json(page)
        return
    rows = [
        [
            str(e["release_id"]),
            e["outcome"]
            + (f" -> {e['rolled_back_to']}" if e["rolled_back_to"] is not None else ""),
            e["kind"],
            e["actor"],
            str(e["run_id"]),
            f"{short_ref(e['ref'])}@{e['sha'][:7]}",
            when(e["finished_at"]),
            (f"{e['cause']}: " if e["cause"] else "") + e["reason"][:70],
        ]
        for e in items(page)
    ]
    print_table(["release", "outcome", "kind", "by", "run", "commit", "when", "reason"], rows)


@deployments_app.command("list")
def list_deployments(
    project: str = typer.Argument(..., help="The project's name."),
    env: str | None = typer.Option(None, "--env", help="Only this environment."),
    limit: int = typer.Option(20, "--limit", min=1, max=100),
    server: str = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Release history, newest first: release, when, by whom, run, commit, outcome."""
    from shipline.cli.client import connect, items, print_json
    from shipline.cli.tables import print_table, short_ref, when

    params: dict[str, object] = {"limit": limit}
    if env:
        params["environment"] = env
    with connect(server, token) as api:
        page = api.get(f"/projects/{project}/deployments", params=params)
    if json_out:
        print_json(page)
        return
    rows = [
        [
            str(d["id"]),
            d["environment"],
            str(d["release"]["id"]),
            d["kind"],
            d["state"],
            d["actor"],
            str(d["release"]["run_id"]),
            f"{short_ref(d['ref'])}@{d['sha'][:7]}",
            when(d["created_at"]),
            d["reason"][:60],
        ]
        for d in items(page)
    ]
    print_table(
        ["id", "env", "release", "kind", "state", "by", "run", "commit", "when", "reason"], rows
    )


@deployments_app.command("show")
def show(
    deployment: int = typer.Argument(..., help="The deployment's id."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Follow until it ends."),
    server: str = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """A deployment and its progress."""
    from shipline.cli.client import connect, print_json

    with connect(server, token) as api:
        found = api.get(f"/deployments/{deployment}")
        if follow:
            found = _follow(api, found, json_out)
        else:
            answer = api.get(f"/deployments/{deployment}/progress")
            if not json_out:
                for line in answer["lines"]:
                    sys.stdout.write(f"{line}\n")
    if json_out:
        print_json(found)
        return
    _report(found, False)
