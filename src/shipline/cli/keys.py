"""`shipline keys public`: the server's provenance public key, for `shipline verify`."""

from __future__ import annotations

import sys

import typer

from shipline.cli.client import JSON_OPTION, SERVER_OPTION, TOKEN_OPTION

keys_app = typer.Typer(
    name="keys", help="The server's public keys.", no_args_is_help=True, rich_markup_mode=None
)


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app)


@keys_app.command("public")
def public(
    server: str = SERVER_OPTION, token: str | None = TOKEN_OPTION, json_out: bool = JSON_OPTION
) -> None:
    """Print the PEM of the key the server signs provenance with."""
    from shipline.cli.client import connect, print_json

    with connect(server, token) as api:
        found = api.get("/keys/provenance")
    if json_out:
        print_json(found)
        return
    sys.stdout.write(found["public_key"])
