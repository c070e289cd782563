"""Sizes in bytes as people write them (`512M`, `2G`) and read them (`2 GiB`)."""

from __future__ import annotations

import math

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int | None:
    """Bytes of a size like `512M`, `2G`, `1.5g`, `2GiB`, `1048576`; None if malformed."""
    value = text.strip().lower().removesuffix("ib").removesuffix("b")
    unit = value[-1:] if value[-1:] in _UNITS and value[-1:] else ""
    number = value[: len(value) - len(unit)].strip()
    try:
        amount = float(number)
    except ValueError:
        return None
    if not math.isfinite(amount) or amount < 1:
        return None
    return int(amount * _UNITS[unit])


def format_size(size: int) -> str:
    """`size` bytes in the largest binary unit it reaches: `2 GiB`, `1.5 MiB`."""
    for unit, factor in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor:
            amount = size / factor
            return f"{amount:.0f} {unit}" if amount == int(amount) else f"{amount:.1f} {unit}"
    return f"{size} bytes"
