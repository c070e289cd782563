"""The `shipline` command: one Typer app, one module per command group.

Heavy imports stay inside the commands so that `shipline run` starts fast.
"""

from __future__ import annotations

import sys

import typer

from shipline import __version__

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
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Shipline: a self-hosted, security-first CI/CD platform."""


def _register() -> None:
    from shipline.cli import expr, lint, plan, run

    run.register(app)
    lint.register(app)
    plan.register(app)
    expr.register(app)


def main() -> None:
    """Entry point of the console script; usage errors exit 2, never with a traceback."""
    _register()
    try:
        app(standalone_mode=True)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)


if __name__ == "__main__":
    main()
