"""Values and GitHub's coercion rules: truthiness, numbers, strings, loose comparison.

GitHub numbers are doubles. Values coming from Python may be `int` or `float`; both are
numbers here (and `bool` is never one, although Python makes it an `int`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Final, TypeAlias

Value: TypeAlias = bool | int | float | str | list["Value"] | dict[str, "Value"] | None
"""A value of the expression language, as JSON would hold it."""

# Kinds, in the order GitHub's ValueKind names them in messages.
NULL: Final = 0
BOOLEAN: Final = 1
NUMBER: Final = 2
STRING: Final = 3
ARRAY: Final = 4
OBJECT: Final = 5
KIND_NAMES: Final = ("Null", "Boolean", "Number", "String", "Array", "Object")

# Char.IsWhiteSpace in .NET, which `String.Trim()` strips before a string becomes a number.
_WHITESPACE: Final = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_DECIMAL: Final = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_HEX: Final = re.compile(r"0x[0-9a-fA-F]+")
_OCTAL: Final = re.compile(r"0o[0-7]+")


class FilteredArray(list[Value]):
    """The array a `*` filter yields: indexing it applies the index to every element."""

    __slots__ = ()


class Missing:
    """Marker for a property that an object does not have (unlike one holding null)."""

    __slots__ = ()


MISSING: Final = Missing()


def kind_of(v: object) -> int:
    """The kind of a value; anything that is neither a sequence nor a mapping is an object."""
    if v is None:
        return NULL
    if isinstance(v, bool):
        return BOOLEAN
    if isinstance(v, int | float):
        return NUMBER
    if isinstance(v, str):
        return STRING
    if isinstance(v, list | tuple):
        return ARRAY
    return OBJECT


def is_primitive(v: object) -> bool:
    return v is None or isinstance(v, bool | int | float | str)


def truthy(v: Value) -> bool:
    """GitHub's truthiness: null, false, 0, -0, NaN and '' are false; everything else true."""
    if v is None:
        return False
    if isinstance(v, bool):
        return v
    if isinstance(v, int | float):
        return not (v == 0 or math.isnan(v))
    if isinstance(v, str):
        return len(v) > 0
    return True


def parse_number(text: str) -> float:
    """A string as a number, following JavaScript's `Number()` the way GitHub's runner does.

    Blank is 0; decimals with exponent; `0x` hex and `0o` octal (32-bit, as .NET reads them);
    `Infinity`; anything else is NaN.
    """
    s = text.strip(_WHITESPACE)
    if not s:
        return 0.0
    if _DECIMAL.fullmatch(s):
        return float(s)
    if _HEX.fullmatch(s):
        return _int32(int(s[2:], 16))
    if _OCTAL.fullmatch(s):
        return _int32(int(s[2:], 8))
    if s in ("Infinity", "+Infinity"):
        return math.inf
    if s == "-Infinity":
        return -math.inf
    return math.nan


def _int32(n: int) -> float:
    # .NET parses hex and octal into an Int32, reading the top bit as the sign.
    if n > 0xFFFFFFFF:
        return math.nan
    return float(n - 0x1_0000_0000 if n > 0x7FFFFFFF else n)


def to_number(v: object) -> float:
    """The number a value coerces to for comparison: null 0, booleans 1/0, objects NaN."""
    if v is None:
        return 0.0
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    if isinstance(v, float):
        return v
    if isinstance(v, int):
        return _int_to_float(v)
    if isinstance(v, str):
        return parse_number(v)
    return math.nan


def _int_to_float(n: int) -> float:
    try:
        return float(n)
    except OverflowError:
        return math.inf if n > 0 else -math.inf


def format_number(n: float) -> str:
    """A number as GitHub writes it: .NET's "G15" (15 significant digits, `1E+15`)."""
    if math.isnan(n):
        return "NaN"
    if n == math.inf:
        return "Infinity"
    if n == -math.inf:
        return "-Infinity"
    if n == 0:
        return "0"  # also -0
    # Python's "g" switches to scientific notation exactly where .NET's "G" does.
    return format(n, ".15g").replace("e", "E")


def to_string(v: Value) -> str:
    """GitHub's string coercion, used by format(), join() and `${{ }}` interpolation."""
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return format_number(v)
    if isinstance(v, int):
        return format_number(_int_to_float(v))
    return KIND_NAMES[kind_of(v)]


@lru_cache(maxsize=4096)
def _upper_char(c: str) -> str:
    # .NET's OrdinalIgnoreCase maps one UTF-16 unit to one (so 'ß' stays 'ß'), and GitHub
    # keeps the dotless 'ı' apart from 'I'.
    if c == "ı":
        return c
    u = c.upper()
    return u if len(u) == 1 else c


def fold(s: str) -> str:
    """The form two strings are compared in, ignoring case the way GitHub does."""
    if s.isascii():
        return s.upper()
    return "".join(_upper_char(c) for c in s)


def _has_astral(s: str) -> bool:
    return not s.isascii() and any(ord(c) > 0xFFFF for c in s)


def _ordinal_greater(a: str, b: str) -> bool:
    # GitHub compares UTF-16 code units; code points sort differently only above U+FFFF.
    if _has_astral(a) or _has_astral(b):
        return a.encode("utf-16-be", "surrogatepass") > b.encode("utf-16-be", "surrogatepass")
    return a > b


def _coerce(left: object, right: object) -> tuple[int, object, int, object]:
    lk, rk = kind_of(left), kind_of(right)
    while lk != rk:
        # Number with string: the string becomes a number; null and booleans become numbers
        # (left side first) and are compared again.
        if (lk == STRING and rk == NUMBER) or lk in (NULL, BOOLEAN):
            left, lk = to_number(left), NUMBER
        elif (lk == NUMBER and rk == STRING) or rk in (NULL, BOOLEAN):
            right, rk = to_number(right), NUMBER
        else:
            break
    return lk, left, rk, right


def equals(left: object, right: object) -> bool:
    """`==`: loose equality, strings ignoring case, objects and arrays by reference."""
    lk, lv, rk, rv = _coerce(left, right)
    if lk != rk:
        return False
    if lk == NULL:
        return True
    if lk == NUMBER:
        a, b = to_number(lv), to_number(rv)
        return a == b  # NaN is never equal
    if lk == STRING:
        assert isinstance(lv, str) and isinstance(rv, str)
        return lv == rv or fold(lv) == fold(rv)
    if lk == BOOLEAN:
        return lv is rv
    return lv is rv


def greater_than(left: object, right: object) -> bool:
    """`>` after the same coercion as `==`; mismatched kinds compare false."""
    lk, lv, rk, rv = _coerce(left, right)
    if lk != rk:
        return False
    if lk == NUMBER:
        return to_number(lv) > to_number(rv)
    if lk == STRING:
        assert isinstance(lv, str) and isinstance(rv, str)
        return _ordinal_greater(fold(lv), fold(rv))
    if lk == BOOLEAN:
        return lv is True and rv is False
    return False


def less_than(left: object, right: object) -> bool:
    """`<`, the mirror of `greater_than`."""
    return greater_than(right, left)


def lookup(obj: Mapping[str, Value], key: str) -> Value | Missing:
    """A property of an object, matching the name without regard to case."""
    if isinstance(obj, dict):
        found: Value | Missing = obj.get(key, MISSING)
        if found is not MISSING:
            return found
    elif key in obj:
        return obj[key]
    folded = fold(key)
    for name, value in obj.items():
        if fold(name) == folded:
            return value
    return MISSING


def elements(v: object) -> Sequence[Value]:
    """The items of an array value."""
    assert isinstance(v, list | tuple)
    return v
