"""The built-in functions: their arities, and those that need only their argument values.

`format`, `case` and the status functions evaluate their arguments lazily or ask the
caller's `FunctionHost`; the evaluator runs them, using the helpers here.
"""

from __future__ import annotations

from typing import Final

from shipline.spec.expressions.memory import Counter
from shipline.spec.expressions.values import (
    ARRAY,
    KIND_NAMES,
    Value,
    elements,
    equals,
    fold,
    is_primitive,
    kind_of,
    to_string,
)

MAX_ARGS: Final = 255

KNOWN_FUNCTIONS: Final[dict[str, tuple[int, int]]] = {
    "always": (0, 0),
    "cancelled": (0, 0),
    "case": (3, MAX_ARGS),
    "contains": (2, 2),
    "endswith": (2, 2),
    "failure": (0, 0),
    "format": (1, MAX_ARGS),
    "fromjson": (1, 1),
    "hashfiles": (1, MAX_ARGS),
    "join": (1, 2),
    "startswith": (2, 2),
    "success": (0, 0),
    "tojson": (1, 1),
}
"""Lowercased function name -> (fewest, most) arguments."""

STATUS_FUNCTIONS: Final = frozenset({"always", "cancelled", "failure", "success"})


class FunctionFailure(Exception):
    """A function rejected its arguments; the evaluator adds where it happened."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def contains(search: Value, item: Value) -> bool:
    """Substring (ignoring case) of a primitive, or loose-equal element of an array."""
    if is_primitive(search):
        if is_primitive(item):
            return fold(to_string(item)) in fold(to_string(search))
        return False
    if kind_of(search) == ARRAY:
        return any(equals(item, element) for element in elements(search))
    return False


def starts_with(text: Value, prefix: Value) -> bool:
    if not (is_primitive(text) and is_primitive(prefix)):
        return False
    return fold(to_string(text)).startswith(fold(to_string(prefix)))


def ends_with(text: Value, suffix: Value) -> bool:
    if not (is_primitive(text) and is_primitive(suffix)):
        return False
    return fold(to_string(text)).endswith(fold(to_string(suffix)))


def join(items: Value, separator: Value, counter: Counter, has_separator: bool = True) -> str:
    """Array items as strings with `separator` (default ","); a primitive as a string."""
    if is_primitive(items):
        return to_string(items)
    if kind_of(items) != ARRAY:
        return ""
    sep = to_string(separator) if has_separator and is_primitive(separator) else ","
    parts: list[str] = []
    for i, item in enumerate(elements(items)):
        piece = to_string(item)
        if i:
            counter.add(sep)
            parts.append(sep)
        counter.add(piece)
        parts.append(piece)
    return "".join(parts)


FormatSegment = str | tuple[int, str]
"""Literal text, or (argument index, format specifiers)."""


def parse_format(fs: str, arg_count: int) -> list[FormatSegment]:
    """Splits a format string into text and `{N}` references, as GitHub's format() does.

    `{{` and `}}` are braces; any other brace, an index over 255 or one without an
    argument is an error.
    """
    segments: list[FormatSegment] = []
    index = 0
    n = len(fs)
    while index < n:
        lbrace = fs.find("{", index)
        rbrace = fs.find("}", index)
        if lbrace >= 0 and (rbrace < 0 or rbrace > lbrace):
            if fs.startswith("{", lbrace + 1):
                segments.append(fs[index : lbrace + 1])
                index = lbrace + 2
                continue
            ref = _read_reference(fs, lbrace + 1) if rbrace > lbrace + 1 else None
            if ref is None:
                raise FunctionFailure(f"The following format string is invalid: {fs}")
            arg, specifiers, rbrace = ref
            if arg >= arg_count:
                raise FunctionFailure(
                    "The following format string references more arguments than were "
                    f"supplied: {fs}"
                )
            if lbrace > index:
                segments.append(fs[index:lbrace])
            segments.append((arg, specifiers))
            index = rbrace + 1
        elif rbrace >= 0:
            if not fs.startswith("}", rbrace + 1):
                raise FunctionFailure(f"The following format string is invalid: {fs}")
            segments.append(fs[index : rbrace + 1])
            index = rbrace + 2
        else:
            segments.append(fs[index:])
            break
    return segments


def _read_reference(fs: str, start: int) -> tuple[int, str, int] | None:
    """`N}` or `N:specifiers}` at `start`: (N, specifiers, offset of the closing brace)."""
    end = start
    while end < len(fs) and "0" <= fs[end] <= "9":
        end += 1
    if end == start or int(fs[start:end]) > MAX_ARGS:
        return None
    arg = int(fs[start:end])
    if fs.startswith("}", end):
        return arg, "", end
    if not fs.startswith(":", end):
        return None
    specifiers: list[str] = []
    i = end + 1
    while i < len(fs):
        if fs[i] != "}":
            specifiers.append(fs[i])
            i += 1
        elif fs.startswith("}", i + 1):
            specifiers.append("}")
            i += 2
        else:
            return arg, "".join(specifiers), i
    return None


def invalid_specifiers(specifiers: str, value: Value) -> FunctionFailure:
    kind = KIND_NAMES[kind_of(value)]
    return FunctionFailure(
        f"The format specifiers '{specifiers}' are not valid for objects of type '{kind}'"
    )
