"""Settings for the commands that run the server (`server`, `db upgrade`): flags over the
environment, and the one-line failures of starting up."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, NoReturn
from urllib.parse import urlsplit, urlunsplit

import typer

if TYPE_CHECKING:
    from shipline.settings import Settings


def load_settings(**flags: object) -> Settings:
    """`Settings` with the given flags on top of `SHIPLINE_*`; an invalid value (of a flag
    or of a variable) is a usage error naming it, exit 2."""
    from pydantic import ValidationError

    from shipline.cli.common import fail_usage
    from shipline.settings import Settings

    try:
        return Settings.with_flags(**flags)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"]) or "settings"
            problems.append(
                f"{name} (--{name.replace('_', '-')} or SHIPLINE_{name.upper()}): {error['msg']}"
            )
        fail_usage("; ".join(problems))


def fail(message: str) -> NoReturn:
    """One line on stderr, exit 1."""
    sys.stdout.flush()
    sys.stderr.write(f"shipline: error: {message}\n")
    raise typer.Exit(1)


def shown_url(url: str) -> str:
    """A database URL fit to print: its password replaced by `***`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.rsplit("@", maxsplit=1)[-1]
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))
