"""`shipline secrets`: set (the value from stdin or a hidden prompt, never argv), list,
rm — through the API — and rotate-key, run by the operator on the server's machine."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from shipline.cli.client import JSON_OPTION, SERVER_OPTION, TOKEN_OPTION

secrets_app = typer.Typer(
    name="secrets",
    help="A project's secrets: set, list, rm; rotate-key re-seals all under a new key.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

ENV_OPTION = typer.Option(
    "", "--env", metavar="ENVIRONMENT", help="Scope the secret to this environment."
)


def register(app: typer.Typer) -> None:
    app.add_typer(secrets_app)


def read_value(name: str) -> str:
    """The value from a hidden prompt (asked twice) on a terminal, else all of stdin
    (one trailing newline dropped, so `echo VALUE |` and files work)."""
    from shipline.cli.client import fail

    if sys.stdin.isatty():
        import getpass

        first = getpass.getpass(f"value of {name}: ")
        if getpass.getpass(f"value of {name} (again): ") != first:
            fail("the two values differ; nothing was changed")
        return first
    data = sys.stdin.read()
    return data[:-1] if data.endswith("\n") else data


@secrets_app.command("set")
def set_secret(
    project: str = typer.Argument(..., help="The project's name."),
    name: str = typer.Argument(..., help="The secret's name (letters, digits, _)."),
    env: str = ENV_OPTION,
    server: str = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Create or replace a secret. The value is read from stdin, or asked for without echo
    on a terminal; it is never taken from the command line (`ps` shows that to everyone)."""
    from shipline.cli.client import connect, print_json

    value = read_value(name)
    with connect(server, token) as api:
        info = api.put(f"/projects/{project}/secrets/{name}", {"value": value, "environment": env})
    if json_out:
        print_json(info)
        return
    scope = f"environment {info['environment']}" if info["environment"] else "the project"
    sys.stdout.write(f"set secret {info['name']} of {project} ({scope})\n")
    for warning in info.get("warnings", []):
        sys.stderr.write(f"warning: {warning}\n")


@secrets_app.command("list")
def list_secrets(
    project: str = typer.Argument(..., help="The project's name."),
    server: str = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """The project's secrets: name, scope, who changed it and when. Never values."""
    from shipline.cli.client import connect, items, print_json
    from shipline.cli.tables import print_table, when

    with connect(server, token) as api:
        page = api.get(f"/projects/{project}/secrets")
    if json_out:
        print_json(page)
        return
    rows = [
        [s["name"], s["environment"] or "(project)", s["updated_by"], when(s["updated_at"])]
        for s in items(page)
    ]
    print_table(["name", "scope", "changed by", "changed"], rows)


@secrets_app.command("rm")
def remove(
    project: str = typer.Argument(..., help="The project's name."),
    name: str = typer.Argument(..., help="The secret's name."),
    env: str = ENV_OPTION,
    server: str = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Delete a secret; jobs claimed from now on no longer receive it."""
    from shipline.cli.client import connect, print_json

    with connect(server, token) as api:
        api.request("DELETE", f"/projects/{project}/secrets/{name}", params={"environment": env})
    if json_out:
        print_json({"name": name.upper(), "environment": env, "deleted": True})
        return
    sys.stdout.write(f"deleted secret {name.upper()} of {project}\n")


@secrets_app.command("rotate-key")
def rotate_key(
    new_key_file: Path | None = typer.Option(
        None,
        "--new-key-file",
        help="The new master key (base64 of 32 bytes), when the operator provides the key; "
        "by default a new key is generated into the state directory.",
    ),
    database: str | None = typer.Option(
        None,
        "--database",
        metavar="URL",
        show_default=False,
        help="SQLAlchemy URL [env SHIPLINE_DATABASE_URL; SQLite in the state directory].",
    ),
    state_dir: Path | None = typer.Option(
        None,
        "--state-dir",
        show_default=False,
        help="The server's state directory [env SHIPLINE_STATE_DIR].",
    ),
    json_out: bool = JSON_OPTION,
) -> None:
    """Re-seal every secret under a new master key, in one transaction. Run it on the
    server's machine (it reads the key); running servers pick the new key up."""
    from shipline.cli.client import print_json
    from shipline.cli.settings_flags import fail, load_settings
    from shipline.domain.errors import ShiplineError
    from shipline.wiring import rotate_secrets_key

    settings = load_settings(database_url=database, state_dir=state_dir)
    try:
        count, key_id = rotate_secrets_key(settings, new_key_file)
    except (ShiplineError, OSError) as exc:
        fail(f"cannot rotate the secrets key: {exc}")
    if json_out:
        print_json({"secrets": count, "key_id": key_id})
        return
    sys.stdout.write(f"re-sealed {count} secret(s) under master key {key_id}\n")
