"""`shipline protection`: a project's branch and tag protection rules (over the API)."""

from __future__ import annotations

import sys
from urllib.parse import quote

import typer

from shipline.cli.client import JSON_OPTION, SERVER_OPTION, TOKEN_OPTION

protection_app = typer.Typer(
    name="protection",
    help="Branch and tag protection of hosted repositories: list, set, delete.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
ROLES = ("admin", "maintainer", "developer")


def register(app: typer.Typer) -> None:
    app.add_typer(protection_app)


def _path(project: str) -> str:
    return f"/projects/{quote(project, safe='')}/protections"


def _describe(rule: dict[str, object]) -> str:
    extras = [
        "force-push allowed" if rule["allow_force_push"] else "no force-push",
        "deletion allowed" if rule["allow_deletion"] else "no deletion",
    ]
    return (
        f"{rule['id']}: {rule['kind']} {rule['pattern']}: push {rule['push_role']} and up, "
        + ", ".join(extras)
    )


@protection_app.command("list")
def list_rules(
    project: str = typer.Argument(..., help="The project's name."),
    server: str = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """The project's protection rules."""
    from shipline.cli.client import connect, items, print_json

    with connect(server, token) as api:
        page = api.get(_path(project))
    if json_out:
        print_json(page)
        return
    rules = items(page)
    if not rules:
        sys.stdout.write("no protection rules: developers may push, force-push and delete\n")
    for rule in rules:
        sys.stdout.write(_describe(rule) + "\n")


@protection_app.command("set")
def set_rule(
    project: str = typer.Argument(..., help="The project's name."),
    pattern: str = typer.Argument(..., help="Branch (or, with --tag, tag) name pattern."),
    tag: bool = typer.Option(False, "--tag", help="The pattern names tags, not branches."),
    push_role: str = typer.Option(
        "maintainer", "--push-role", help=f"Who may push: {', '.join(ROLES)} (and up)."
    ),
    allow_force_push: bool = typer.Option(False, "--allow-force-push"),
    allow_deletion: bool = typer.Option(False, "--allow-deletion"),
    server: str = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Protect branches or tags matching PATTERN (maintainers and up)."""
    from shipline.cli.client import connect, print_json
    from shipline.cli.common import fail_usage

    if push_role not in ROLES:
        fail_usage(f"--push-role must be one of {', '.join(ROLES)}, got {push_role!r}")
    body = {
        "kind": "tag" if tag else "branch",
        "pattern": pattern,
        "push_role": push_role,
        "allow_force_push": allow_force_push,
        "allow_deletion": allow_deletion,
    }
    with connect(server, token) as api:
        rule = api.put(_path(project), body)
    if json_out:
        print_json(rule)
        return
    sys.stdout.write(_describe(rule) + "\n")


@protection_app.command("delete")
def delete_rule(
    project: str = typer.Argument(..., help="The project's name."),
    rule: int = typer.Argument(..., help="The rule's id (see `protection list`)."),
    server: str = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
) -> None:
    """Delete a protection rule (maintainers and up)."""
    from shipline.cli.client import connect

    with connect(server, token) as api:
        api.delete(f"{_path(project)}/{rule}")
    sys.stdout.write(f"deleted protection rule {rule}\n")
