"""`shipline db upgrade`: bring the database to the newest schema revision.

`shipline server` does this on every start; running it explicitly suits deployments that
migrate before they roll out new servers.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

db_app = typer.Typer(
    name="db", help="The server's database: upgrade.", no_args_is_help=True, rich_markup_mode=None
)


def register(app: typer.Typer) -> None:
    app.add_typer(db_app)


@db_app.command("upgrade")
def upgrade(
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
) -> None:
    """Run the migrations the database has not had yet and print its revision."""
    from shipline.cli.settings_flags import fail, load_settings, shown_url
    from shipline.wiring import upgrade_database

    settings = load_settings(database_url=database, state_dir=state_dir)
    where = shown_url(settings.database_url)
    try:
        before, after = upgrade_database(settings)
    except OSError as exc:
        fail(f"cannot use the state directory {settings.state_dir}: {exc.strerror or exc}")
    except Exception as exc:  # a database that cannot be reached or migrated
        lines = str(exc).strip().splitlines()
        fail(f"cannot upgrade the database {where}: {lines[0] if lines else type(exc).__name__}")
    if before == after:
        sys.stdout.write(f"{where}: already at revision {after}\n")
    else:
        sys.stdout.write(f"{where}: upgraded from {before or 'an empty database'} to {after}\n")
