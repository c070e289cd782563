"""Human output of the client commands: compact aligned tables, with Rich on a terminal
only (a pipe gets plain columns a script can `cut`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

_COLOURS = {
    "success": "green",
    "failure": "red",
    "timed_out": "red",
    "cancelled": "yellow",
    "in_progress": "cyan",
    "queued": "dim",
    "waiting": "magenta",
}


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Rows under upper-case headers; nothing but a note on stderr when there are none."""
    if not rows:
        sys.stderr.write("(none)\n")
        return
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(box=None, pad_edge=False, header_style="bold")
        for header in headers:
            table.add_column(header.upper())
        for row in rows:
            table.add_row(*(_styled(cell) for cell in row))
        Console().print(table)
        return
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = [[h.upper() for h in headers], *[list(r) for r in rows]]
    for line in lines:
        cells = [cell.ljust(width) for cell, width in zip(line, widths, strict=True)]
        sys.stdout.write("  ".join(cells).rstrip() + "\n")


def _styled(cell: str) -> str:
    colour = _COLOURS.get(cell.rsplit("/", maxsplit=1)[-1])
    return f"[{colour}]{cell}[/{colour}]" if colour else cell.replace("[", r"\[")


def print_fields(fields: Sequence[tuple[str, object]]) -> None:
    """`name: value` lines, names aligned; empty values left out."""
    shown = [(k, v) for k, v in fields if v not in (None, "", [], {})]
    width = max((len(k) for k, _ in shown), default=0)
    for key, value in shown:
        sys.stdout.write(f"{key + ':':<{width + 1}} {value}\n")


def state(obj: dict[str, object]) -> str:
    """`status/conclusion` once completed (`completed/success`), else the status."""
    status, conclusion = obj.get("status"), obj.get("conclusion")
    return f"{status}/{conclusion}" if conclusion else str(status or "")


def when(value: object) -> str:
    """An API timestamp as `YYYY-MM-DD HH:MM:SS` (UTC), or empty."""
    if not isinstance(value, str) or not value:
        return ""
    return value.replace("T", " ")[:19]


def short_ref(ref: object) -> str:
    text = str(ref or "")
    for prefix in ("refs/heads/", "refs/tags/"):
        if text.startswith(prefix):
            return text[len(prefix) :]
    return text
