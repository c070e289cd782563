"""`shipline runners`: the admin's view of remote runners — list, pause, resume, remove,
and registration tokens (`shipline runners token create`)."""

from __future__ import annotations

import sys

import typer

from shipline.cli.client import JSON_OPTION, SERVER_OPTION, TOKEN_OPTION

runners_app = typer.Typer(
    name="runners",
    help="Remote runners of a server: list, pause, resume, remove, registration tokens.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
token_app = typer.Typer(
    name="token", help="Runner registration tokens.", no_args_is_help=True, rich_markup_mode=None
)
runners_app.add_typer(token_app)

RUNNER_ID = typer.Argument(..., metavar="ID", min=1, help="The runner's id.")


def register(app: typer.Typer) -> None:
    app.add_typer(runners_app)


@runners_app.command("list")
def list_runners(
    server: str = SERVER_OPTION, token: str | None = TOKEN_OPTION, json_out: bool = JSON_OPTION
) -> None:
    """Every runner: online or offline, last seen, labels, version, current jobs."""
    from shipline.cli.client import connect, items, print_json
    from shipline.cli.tables import print_table, when

    with connect(server, token) as api:
        page = api.get("/runners")
    if json_out:
        print_json(page)
        return
    rows = [
        [
            str(r["id"]),
            r["name"],
            ("paused" if r["paused"] else "online") if r["online"] else "offline",
            when(r.get("last_seen_at")) or "never",
            ",".join(r["labels"]),
            r["version"],
            ",".join(str(j["job_id"]) for j in r["jobs"]) or "-",
        ]
        for r in items(page)
    ]
    print_table(["id", "name", "state", "last seen", "labels", "version", "jobs"], rows)


def _change(action: str, runner_id: int, server: str, token: str | None, json_out: bool) -> None:
    from shipline.cli.client import connect, print_json

    with connect(server, token) as api:
        if action == "remove":
            api.delete(f"/runners/{runner_id}")
            result: object = {"id": runner_id, "removed": True}
        else:
            result = api.post(f"/runners/{runner_id}/{action}")
    if json_out:
        print_json(result)
        return
    done = {"pause": "paused", "resume": "resumed", "remove": "removed"}[action]
    sys.stdout.write(f"{done} runner {runner_id}\n")


@runners_app.command("pause")
def pause(
    runner_id: int = RUNNER_ID,
    server: str = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Give the runner no new jobs (those it runs finish)."""
    _change("pause", runner_id, server, token, json_out)


@runners_app.command("resume")
def resume(
    runner_id: int = RUNNER_ID,
    server: str = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Give a paused runner jobs again."""
    _change("resume", runner_id, server, token, json_out)


@runners_app.command("remove")
def remove(
    runner_id: int = RUNNER_ID,
    server: str = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Remove the runner: its credential is refused from now on."""
    _change("remove", runner_id, server, token, json_out)


@token_app.command("create")
def create_token(
    name: str = typer.Option("runners", "--name", help="What the token is for."),
    expires_hours: int | None = typer.Option(
        None, "--expires-hours", min=1, max=24 * 365, metavar="N", help="Valid N hours [24]."
    ),
    server: str = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """A registration token for `shipline runner register`, printed (alone) this once."""
    from shipline.cli.client import connect, print_json

    body: dict[str, object] = {"name": name}
    if expires_hours is not None:
        body["expires_in_hours"] = expires_hours
    with connect(server, token) as api:
        created = api.post("/runners/registration-tokens", body)
    if json_out:
        print_json(created)
        return
    sys.stderr.write(
        f"created registration token {created['id']} (expires {created['expires_at']}); "
        "it is shown this once:\n"
    )
    sys.stdout.write(f"{created['token']}\n")
