"""`shipline projects`: list, create, show, trigger runs, set members, polling (over the
API)."""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import quote

import typer

from shipline.cli.client import JSON_OPTION, SERVER_OPTION, TOKEN_OPTION

projects_app = typer.Typer(
    name="projects",
    help="Projects on a server: list, create, show, trigger, members, poll.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
members_app = typer.Typer(
    name="members", help="A project's members and roles.", no_args_is_help=True
)
projects_app.add_typer(members_app)

EVENTS = ("workflow_dispatch", "push", "api")
ROLES = ("admin", "maintainer", "developer", "viewer")


def register(app: typer.Typer) -> None:
    app.add_typer(projects_app)


def _project_path(name: str) -> str:
    return f"/projects/{quote(name, safe='')}"


@projects_app.command("list")
def list_projects(
    server: str = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
    json_out: bool = JSON_OPTION,
    limit: int = typer.Option(50, "--limit", min=1, max=100, help="At most this many."),
) -> None:
    """The projects you may see."""
    from shipline.cli.client import connect, items, print_json
    from shipline.cli.tables import print_table, when

    with connect(server, token) as api:
        page = api.get("/projects", {"limit": limit})
    if json_out:
        print_json(page)
        return
    rows = [
        [p["name"], p["repository"], p["default_branch"], when(p.get("created_at"))]
        for p in items(page)
    ]
    print_table(["name", "repository", "default branch", "created"], rows)


@projects_app.command("create")
def create(
    name: str = typer.Argument(..., help="lower-case letters, digits, '.', '_', '-'"),
    repo: str = typer.Option(
        ..., "--repo", metavar="PATH_OR_URL", help="The repository the server fetches from."
    ),
    default_branch: str | None = typer.Option(None, "--default-branch", help="Default: main."),
    server: str = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Create a project over a repository (admins). A local path is read by the server,
    so it must be a path on the server's machine; a relative one is made absolute here."""
    from shipline.cli.client import connect, print_json

    body: dict[str, str] = {"name": name, "repository": _repository(repo)}
    if default_branch is not None:
        body["default_branch"] = default_branch
    with connect(server, token) as api:
        project = api.post("/projects", body)
    if json_out:
        print_json(project)
        return
    sys.stdout.write(f"created project {project['name']} ({project['repository']})\n")


def _repository(repo: str) -> str:
    """A git URL as given; an existing local directory as an absolute path."""
    if "://" in repo or (":" in repo and not repo.startswith(("/", "."))):
        return repo  # https://..., ssh://..., git@host:path
    path = Path(repo).expanduser()
    return str(path.resolve()) if path.exists() else repo


@projects_app.command("show")
def show(
    name: str = typer.Argument(..., help="The project's name."),
    server: str = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """One project."""
    from shipline.cli.client import connect, print_json
    from shipline.cli.tables import print_fields, when

    with connect(server, token) as api:
        project = api.get(_project_path(name))
    if json_out:
        print_json(project)
        return
    print_fields(
        [
            ("name", project["name"]),
            ("id", project["id"]),
            ("repository", project["repository"]),
            ("default branch", project["default_branch"]),
            ("created", when(project.get("created_at"))),
        ]
    )


@projects_app.command("trigger")
def trigger(
    name: str = typer.Argument(..., help="The project's name."),
    ref: str | None = typer.Option(None, "--ref", help="Branch, tag or commit (default branch)."),
    workflow: str | None = typer.Option(
        None, "--workflow", help="A workflow file's path or name (default: all triggered)."
    ),
    event: str | None = typer.Option(
        None, "--event", help=f"One of {', '.join(EVENTS)} (default workflow_dispatch)."
    ),
    inputs: list[str] | None = typer.Option(
        None, "--input", metavar="KEY=VALUE", help="A workflow_dispatch input (repeatable)."
    ),
    server: str = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Start runs of a project's workflows, read by the server at the ref's commit."""
    from shipline.cli.client import connect, items, print_json
    from shipline.cli.common import fail_usage, key_values

    if event is not None and event not in EVENTS:
        fail_usage(f"--event must be one of {', '.join(EVENTS)}, got {event!r}")
    body: dict[str, object] = {}
    if ref is not None:
        body["ref"] = ref
    if workflow is not None:
        body["workflow"] = workflow
    if event is not None:
        body["event"] = event
    if inputs:
        body["inputs"] = dict(key_values(inputs, "--input"))
    with connect(server, token) as api:
        page = api.post(f"{_project_path(name)}/runs", body)
    if json_out:
        print_json(page)
        return
    runs = items(page)
    if not runs:
        sys.stderr.write("no workflow is triggered by this event at that ref\n")
    for run in runs:
        sys.stdout.write(
            f"run {run['id']}: {run['workflow_name']} #{run['number']} at "
            f"{run['sha'][:12]} ({run['status']})\n"
        )


@members_app.command("set")
def set_member(
    name: str = typer.Argument(..., help="The project's name."),
    user: str = typer.Argument(..., help="The user's name."),
    role: str = typer.Argument(..., help=f"One of {', '.join(ROLES)}."),
    server: str = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Give a user a role in the project."""
    from shipline.cli.client import connect, print_json
    from shipline.cli.common import fail_usage

    if role not in ROLES:
        fail_usage(f"ROLE must be one of {', '.join(ROLES)}, got {role!r}")
    with connect(server, token) as api:
        member = api.put(f"{_project_path(name)}/members/{quote(user, safe='')}", {"role": role})
    if json_out:
        print_json(member)
        return
    sys.stdout.write(f"{member['user']} is {member['role']} of {member['project']}\n")


@projects_app.command("poll")
def poll(
    name: str = typer.Argument(..., help="The project's name."),
    interval: int | None = typer.Option(
        None, "--interval", min=10, max=86400, help="Seconds between two polls of the remote."
    ),
    off: bool = typer.Option(False, "--off", help="Stop polling."),
    server: str = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Poll the project's remote for new commits (for forges that send no webhooks):
    each branch or tag created, updated or deleted raises a push event. Without
    --interval or --off, show how the project is polled."""
    from shipline.cli.client import connect, print_json
    from shipline.cli.common import fail_usage

    if off and interval is not None:
        fail_usage("give --interval or --off, not both")
    with connect(server, token) as api:
        if off or interval is not None:
            state = api.put(f"{_project_path(name)}/polling", {"interval": interval})
        else:
            state = api.get(f"{_project_path(name)}/polling")
    if json_out:
        print_json(state)
        return
    if state.get("interval") is None:
        sys.stdout.write(f"{name}: not polled\n")
        return
    last = state.get("polled_at") or "never"
    sys.stdout.write(
        f"{name}: polled every {state['interval']}s, last at {last}, {state['refs']} refs\n"
    )
