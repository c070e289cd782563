"""`shipline tokens`: your API tokens — list, create (the secret is shown once), revoke."""

from __future__ import annotations

import sys

import typer

from shipline.cli.client import JSON_OPTION, SERVER_OPTION, TOKEN_OPTION

tokens_app = typer.Typer(
    name="tokens",
    help="Your API tokens on a server: list, create, revoke.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def register(app: typer.Typer) -> None:
    app.add_typer(tokens_app)


@tokens_app.command("list")
def list_tokens(
    server: str = SERVER_OPTION, token: str | None = TOKEN_OPTION, json_out: bool = JSON_OPTION
) -> None:
    """Your tokens, revoked ones included; never their secrets."""
    from shipline.cli.client import connect, items, print_json
    from shipline.cli.tables import print_table, when

    with connect(server, token) as api:
        page = api.get("/tokens")
    if json_out:
        print_json(page)
        return
    rows = [
        [
            str(t["id"]),
            t["name"],
            "revoked" if t.get("revoked_at") else "active",
            when(t.get("created_at")),
            when(t.get("expires_at")) or "never",
            when(t.get("last_used_at")),
        ]
        for t in items(page)
    ]
    print_table(["id", "name", "state", "created", "expires", "last used"], rows)


@tokens_app.command("create")
def create(
    name: str = typer.Argument(..., help="What the token is for."),
    expires_days: int | None = typer.Option(
        None, "--expires-days", min=1, max=3650, metavar="N", help="Expire after N days."
    ),
    server: str = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Create a token; its secret is printed (on stdout, alone) this once."""
    from shipline.cli.client import connect, print_json

    body: dict[str, object] = {"name": name}
    if expires_days is not None:
        body["expires_in_days"] = expires_days
    with connect(server, token) as api:
        created = api.post("/tokens", body)
    if json_out:
        print_json(created)
        return
    expires = created.get("expires_at") or "never"
    sys.stderr.write(
        f"created token {created['id']} ({created['name']}, expires {expires}); "
        "its secret is shown this once:\n"
    )
    sys.stdout.write(f"{created['token']}\n")


@tokens_app.command("revoke")
def revoke(
    token_id: int = typer.Argument(..., metavar="ID", min=1, help="The token's id."),
    server: str = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Revoke a token: from now on it is refused."""
    from shipline.cli.client import connect, print_json

    with connect(server, token) as api:
        api.delete(f"/tokens/{token_id}")
    if json_out:
        print_json({"id": token_id, "revoked": True})
        return
    sys.stdout.write(f"revoked token {token_id}\n")
