"""toJSON and fromJSON: GitHub's pretty JSON (2-space indent) and its JSON reader."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Final

from shipline.spec.expressions.memory import Counter
from shipline.spec.expressions.values import Value, format_number, to_number

_ESCAPE: Final = re.compile('["\\\\\x00-\x1f\x85\u2028\u2029]')
_SHORT: Final = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
}


class JsonError(ValueError):
    """fromJSON was given text that is not JSON."""


def quote(s: str) -> str:
    """A JSON string literal, escaped as Newtonsoft.Json escapes it (non-ASCII kept)."""
    return '"' + _ESCAPE.sub(_escape_one, s) + '"'


def _escape_one(m: re.Match[str]) -> str:
    c = m.group()
    return _SHORT.get(c) or f"\\u{ord(c):04x}"


def to_json(v: Value, counter: Counter | None = None) -> str:
    """What `toJSON(v)` gives: indented JSON, numbers written as GitHub writes them.

    `counter`, when given, is charged for every piece written and raises
    `MemoryExceeded` once the text grows past its limit.
    """
    out: list[str] = []
    _write(v, out, counter, 0, "")
    return "".join(out)


def _emit(out: list[str], counter: Counter | None, piece: str) -> None:
    if counter is not None:
        counter.add(piece)
    out.append(piece)


def _write(v: object, out: list[str], counter: Counter | None, level: int, prefix: str) -> None:
    # `prefix` is what separates the value from what precedes it (",\n  " or ": "); GitHub
    # writes and counts each value together with its prefix.
    if isinstance(v, list | tuple):
        if not v:
            _emit(out, counter, prefix + "[]")
            return
        _emit(out, counter, prefix + "[")
        inner = "\n" + "  " * (level + 1)
        for i, item in enumerate(v):
            _write(item, out, counter, level + 1, inner if i == 0 else "," + inner)
        _emit(out, counter, "\n" + "  " * level + "]")
    elif isinstance(v, Mapping):
        if not v:
            _emit(out, counter, prefix + "{}")
            return
        _emit(out, counter, prefix + "{")
        inner = "\n" + "  " * (level + 1)
        for i, (key, item) in enumerate(v.items()):
            _emit(out, counter, (inner if i == 0 else "," + inner) + quote(str(key)))
            _write(item, out, counter, level + 1, ": ")
        _emit(out, counter, "\n" + "  " * level + "}")
    else:
        _emit(out, counter, prefix + _scalar(v))


def _scalar(v: object) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return format_number(to_number(v))
    if isinstance(v, str):
        return quote(v)
    return "{}"  # GitHub writes values it cannot traverse as an empty object


def from_json(text: str) -> Value:
    """The value `fromJSON(text)` gives; all numbers become floats, as GitHub's are doubles."""
    try:
        result: Value = json.loads(text, parse_int=float, strict=False)
    except (ValueError, RecursionError) as e:
        raise JsonError(str(e)) from e
    return result
