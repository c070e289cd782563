"""`shipline pr`: pull requests of hosted repositories (over the API)."""

from __future__ import annotations

import sys
from typing import Any
from urllib.parse import quote

import typer

from shipline.cli.client import JSON_OPTION, SERVER_OPTION, TOKEN_OPTION

pr_app = typer.Typer(
    name="pr",
    help="Pull requests of hosted repositories: open, list, close.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
PROJECT_OPTION: Any = typer.Option(
    ..., "--project", "-p", envvar="SHIPLINE_PROJECT", help="The project (env SHIPLINE_PROJECT)."
)


def register(app: typer.Typer) -> None:
    app.add_typer(pr_app)


def _path(project: str) -> str:
    return f"/projects/{quote(project, safe='')}/pulls"


def _line(pull: dict[str, Any]) -> str:
    runs = pull.get("runs") or []
    started = f", {len(runs)} run(s): {', '.join(map(str, runs))}" if runs else ""
    return (
        f"#{pull['number']} {pull['title']} ({pull['head']} -> {pull['base']}, {pull['state']}"
        f"{started})"
    )


@pr_app.command("open")
def open_pull(
    head: str = typer.Option(..., "--head", help="The branch with the changes."),
    base: str | None = typer.Option(None, "--base", help="Where to merge (default branch)."),
    title: str | None = typer.Option(None, "--title", help="Default: the head branch's name."),
    body: str = typer.Option("", "--body", help="A description."),
    project: str = PROJECT_OPTION,
    server: str = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Open a pull request; its `opened` runs start at once."""
    from shipline.cli.client import connect, print_json

    request: dict[str, object] = {"head": head, "body": body}
    if base is not None:
        request["base"] = base
    if title is not None:
        request["title"] = title
    with connect(server, token) as api:
        pull = api.post(_path(project), request)
    if json_out:
        print_json(pull)
        return
    sys.stdout.write(f"opened {_line(pull)}\n")


@pr_app.command("list")
def list_pulls(
    project: str = PROJECT_OPTION,
    server: str = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """The project's pull requests, newest first."""
    from shipline.cli.client import connect, items, print_json

    with connect(server, token) as api:
        page = api.get(_path(project))
    if json_out:
        print_json(page)
        return
    for pull in items(page):
        sys.stdout.write(_line(pull) + "\n")


@pr_app.command("close")
def close_pull(
    number: int = typer.Argument(..., help="The pull request's number."),
    project: str = PROJECT_OPTION,
    server: str = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Close a pull request; its `closed` runs start."""
    _change(number, project, "close", "closed", server, token, json_out)


@pr_app.command("reopen")
def reopen_pull(
    number: int = typer.Argument(..., help="The pull request's number."),
    project: str = PROJECT_OPTION,
    server: str = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Reopen a closed pull request at its head branch's commit; its `reopened` runs start."""
    _change(number, project, "reopen", "reopened", server, token, json_out)


def _change(
    number: int, project: str, action: str, done: str, server: str, token: str | None, json: bool
) -> None:
    from shipline.cli.client import connect, print_json

    with connect(server, token) as api:
        pull = api.post(f"{_path(project)}/{number}/{action}")
    if json:
        print_json(pull)
        return
    sys.stdout.write(f"{done} {_line(pull)}\n")
