"""The Typer app of the `shipline` command: one module per command group registers its
commands here. Heavy imports stay inside the commands so that `shipline run` starts fast."""

from __future__ import annotations

from collections.abc import Sequence

import typer

from shipline import __version__
from shipline.cli.common import started

app = typer.Typer(
    name="shipline",
    help="Shipline: a self-hosted, security-first CI/CD platform.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"shipline {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Shipline: a self-hosted, security-first CI/CD platform."""
    if ctx.invoked_subcommand != "run":
        # `run` says so itself, once it has loaded the engine (see `main`).
        started()


# Command (or command group) name -> the module of `shipline.cli` whose `register(app)`
# adds it. A new command group goes here.
COMMANDS = {
    "run": "run",
    "lint": "lint",
    "plan": "plan",
    "expr": "expr",
    "server": "server",
    "db": "db",
    "runs": "runs",
    "projects": "projects",
    "tokens": "tokens",
    "secrets": "secrets",
    "audit": "audit",
    "verify": "verify",
    "keys": "keys",
    "runner": "runner",
    "runners": "runners",
    "protection": "protection",
    "pr": "pr",
    "webhooks": "webhooks",
    "approvals": "deployments",
    "approve": "deployments",
    "reject": "deployments",
    "deploy": "deployments",
    "rollback": "deployments",
    "releases": "deployments",
    "deployments": "deployments",
    "demo": "demo",
}


def register(argv: Sequence[str] = ()) -> typer.Typer:
    """The app with its command groups registered.

    When `argv` starts with a command's name only that command is registered: Typer
    builds the options of every registered command at each start, and `shipline run`
    need not pay for the others. Help and unknown commands get them all.
    """
    import importlib

    wanted = [argv[0]] if argv and argv[0] in COMMANDS else list(COMMANDS)
    for name in wanted:
        importlib.import_module(f"shipline.cli.{COMMANDS[name]}").register(app)
    return app
