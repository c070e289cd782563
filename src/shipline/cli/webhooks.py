"""`shipline webhooks`: a project's webhook secret and deliveries (over the API)."""

from __future__ import annotations

import sys
from urllib.parse import quote

import typer

from shipline.cli.client import JSON_OPTION, SERVER_OPTION, TOKEN_OPTION

webhooks_app = typer.Typer(
    name="webhooks",
    help="Webhooks from GitHub, GitLab and Gitea: secret, deliveries, redeliver.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def register(app: typer.Typer) -> None:
    app.add_typer(webhooks_app)


def _path(project: str) -> str:
    return f"/projects/{quote(project, safe='')}"


@webhooks_app.command("secret")
def secret(
    project: str = typer.Argument(..., help="The project's name."),
    server: str = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Make a new webhook secret (shown once; the previous one stops working)."""
    from shipline.cli.client import connect, print_json

    with connect(server, token) as api:
        out = api.post(f"{_path(project)}/webhook/secret")
    if json_out:
        print_json(out)
        return
    sys.stdout.write(f"secret: {out['secret']}\n")
    for forge, url in out["urls"].items():
        sys.stdout.write(f"{forge} payload URL: {url}\n")


@webhooks_app.command("deliveries")
def deliveries(
    project: str = typer.Argument(..., help="The project's name."),
    limit: int = typer.Option(20, "--limit", min=1, max=100),
    server: str = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """The project's webhook deliveries, newest first, with what came of each."""
    from shipline.cli.client import connect, items, print_json
    from shipline.cli.tables import print_table, when

    with connect(server, token) as api:
        page = api.get(f"{_path(project)}/deliveries", {"limit": limit})
    if json_out:
        print_json(page)
        return
    rows = [
        [
            str(d["id"]),
            d["forge"],
            d["event"],
            d["delivery_id"][:24],
            d["outcome"],
            ",".join(map(str, d["runs"])),
            when(d["received_at"]),
            d["detail"][:60],
        ]
        for d in items(page)
    ]
    print_table(["id", "forge", "event", "delivery", "outcome", "runs", "received", "detail"], rows)


@webhooks_app.command("redeliver")
def redeliver(
    project: str = typer.Argument(..., help="The project's name."),
    delivery: int = typer.Argument(..., help="The delivery's id (see `deliveries`)."),
    server: str = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Process a stored delivery again (admins of the project)."""
    from shipline.cli.client import connect, print_json

    with connect(server, token) as api:
        out = api.post(f"{_path(project)}/deliveries/{delivery}/redeliver")
    if json_out:
        print_json(out)
        return
    sys.stdout.write(f"delivery {out['id']}: {out['outcome']} {out['detail']}\n")
