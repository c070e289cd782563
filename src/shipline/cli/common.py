"""Helpers shared by the commands: usage errors, diagnostics output, K=V options."""

from __future__ import annotations

import gc
import sys
from typing import NoReturn

import typer

from shipline.domain.errors import WorkflowError


def started() -> None:
    """The command has loaded its modules: freeze them out of the cyclic collector's
    sight (they live as long as the process) and turn the collector back on."""
    gc.freeze()
    gc.enable()


def fail_usage(message: str) -> NoReturn:
    sys.stderr.write(f"shipline: error: {message}\n")
    raise typer.Exit(2)


def print_workflow_error(exc: WorkflowError) -> None:
    sys.stderr.write(f"shipline: error: {exc}\n")
    for d in exc.diagnostics:
        text = getattr(d, "format", None)
        sys.stderr.write(f"  {text() if callable(text) else d}\n")


def key_values(items: list[str], option: str) -> list[tuple[str, str]]:
    out = []
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            fail_usage(f"{option} takes KEY=VALUE, got {item!r}")
        out.append((key, value))
    return out
