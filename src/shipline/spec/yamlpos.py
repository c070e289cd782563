"""YAML 1.2 documents as trees of nodes that remember where they came from.

GitHub reads workflows as YAML 1.2 (so `on:` is a string key, not the boolean YAML 1.1
makes of it). Every node keeps its line and column so that lint and the loaders can point
at the exact place of a mistake. Anchors and aliases are resolved (an alias shares the
anchored node); merge keys (`<<`) are expanded.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field

from shipline.spec.diagnostics import Diagnostic, Severity

ScalarValue = str | int | float | bool | None

_TAG = "tag:yaml.org,2002:"
_NON_STRING_TAGS = frozenset(_TAG + t for t in ("int", "float", "bool", "null"))


@dataclass(eq=False, slots=True)
class Node:
    """Base of the three node kinds; `line` and `col` count from 1."""

    line: int
    col: int


@dataclass(eq=False, slots=True)
class Scalar(Node):
    """A scalar with its YAML 1.2 core-schema value.

    `style` is None for plain scalars, `'` or `"` for quoted ones, `|` or `>` for block
    scalars and "" for a value left empty (`key:` with nothing after it); `lines` is the
    whole document's text, kept to map offsets inside the value back to line and column
    (`position_of`).
    """

    value: ScalarValue
    style: str | None = None
    lines: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        """The value as a string, as GitHub would coerce it."""
        v = self.value
        if v is None:
            return ""
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, float) and v.is_integer() and not math.isinf(v):
            return str(int(v))
        return str(v)

    def position_of(self, offset: int) -> tuple[int, int]:
        """Line and column (1-based) of the character `offset` of the value's text."""
        text = self.text
        if self.style in ("|", ">"):
            before = text[:offset]
            row = before.count("\n")
            col_in_line = offset - (before.rfind("\n") + 1)
            line_no = self.line + 1 + row
            indent = 0
            # Skip blank lines of the block, which carry no indentation of their own.
            if 0 < line_no <= len(self.lines):
                raw = self.lines[line_no - 1]
                indent = len(raw) - len(raw.lstrip(" "))
            return line_no, indent + col_in_line + 1
        quote = 1 if self.style in ("'", '"') else 0
        if "\n" not in text[:offset]:
            return self.line, self.col + quote + offset
        return self.line, self.col


@dataclass(eq=False, slots=True)
class Mapping(Node):
    """A mapping; keys are scalars (complex keys are reported and dropped)."""

    pairs: list[tuple[Scalar, Node]] = field(default_factory=list)

    def get(self, key: str) -> Node | None:
        for k, v in self.pairs:
            if k.text == key:
                return v
        return None

    def key_node(self, key: str) -> Scalar | None:
        for k, _ in self.pairs:
            if k.text == key:
                return k
        return None

    def keys(self) -> list[str]:
        return [k.text for k, _ in self.pairs]

    def __contains__(self, key: object) -> bool:
        return any(k.text == key for k, _ in self.pairs)

    def __iter__(self) -> Iterator[tuple[Scalar, Node]]:
        return iter(self.pairs)


@dataclass(eq=False, slots=True)
class Sequence(Node):
    """A sequence of nodes."""

    items: list[Node] = field(default_factory=list)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.items)


def to_python(node: Node | None) -> object:
    """The plain Python value of a node (dicts, lists, scalars)."""
    if node is None:
        return None
    if isinstance(node, Scalar):
        return node.value
    if isinstance(node, Sequence):
        return [to_python(i) for i in node.items]
    assert isinstance(node, Mapping)
    return {k.text: to_python(v) for k, v in node.pairs}


def describe(node: Node | None) -> str:
    """The kind of a node in words, for messages ("a mapping", "a string", ...)."""
    if node is None:
        return "nothing"
    if isinstance(node, Mapping):
        return "a mapping"
    if isinstance(node, Sequence):
        return "a sequence"
    assert isinstance(node, Scalar)
    v = node.value
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int | float):
        return "a number"
    return "a string"


class _Converter:
    def __init__(self, file: str, lines: tuple[str, ...]) -> None:
        self.file = file
        self.lines = lines
        self.diagnostics: list[Diagnostic] = []
        self._done: dict[int, Node] = {}
        self._anchors: dict[int, tuple[str, int, int]] = {}  # anchored node -> name, place
        self._aliased: set[int] = set()
        self._active: set[int] = set()

    def error(self, code: str, line: int, col: int, message: str) -> None:
        self.diagnostics.append(Diagnostic(code, Severity.ERROR, self.file, line, col, message))

    def convert(self, raw: object) -> Node:
        key = id(raw)
        if key in self._done:
            self._aliased.add(key)
            return self._done[key]
        mark = raw.start_mark  # type: ignore[attr-defined]
        line, col = mark.line + 1, mark.column + 1
        anchor = getattr(raw, "anchor", None)
        if isinstance(anchor, str) and anchor:
            self._anchors[key] = (anchor, line, col)
        kind = type(raw).__name__
        if kind == "ScalarNode":
            node: Node = self._scalar(raw, line, col)
        elif kind == "SequenceNode":
            if key in self._active:
                self.error("yaml", line, col, "recursive alias")
                return Sequence(line, col)
            self._active.add(key)
            node = Sequence(line, col, [self.convert(i) for i in raw.value])  # type: ignore[attr-defined]
            self._active.discard(key)
        else:
            if key in self._active:
                self.error("yaml", line, col, "recursive alias")
                return Mapping(line, col)
            self._active.add(key)
            node = self._mapping(raw, line, col)
            self._active.discard(key)
        self._done[key] = node
        return node

    def _scalar(self, raw: object, line: int, col: int) -> Scalar:
        tag: str = raw.tag  # type: ignore[attr-defined]
        text: str = raw.value  # type: ignore[attr-defined]
        style = raw.style  # type: ignore[attr-defined]
        value: ScalarValue = text
        if style is None and tag.startswith(_TAG):
            value = _resolve(tag[len(_TAG) :], text)
        elif style in ("'", '"') and tag in _NON_STRING_TAGS:
            kind = "DoubleQuoted" if style == '"' else "SingleQuoted"
            self.error(
                "syntax-check",
                line,
                col,
                f"the scalar style '{kind}' is not valid with the tag '{tag}'",
            )
        return Scalar(line, col, value, style, self.lines)

    def unused_anchors(self) -> list[Diagnostic]:
        """Anchors no alias refers to: harmless, but usually a leftover or a typo."""
        return [
            Diagnostic(
                "syntax-check",
                Severity.WARNING,
                self.file,
                line,
                col,
                f'anchor "{name}" is defined but not used',
            )
            for key, (name, line, col) in self._anchors.items()
            if key not in self._aliased
        ]

    def _mapping(self, raw: object, line: int, col: int) -> Mapping:
        result = Mapping(line, col)
        seen: dict[str, Scalar] = {}
        merged: list[tuple[Scalar, Node]] = []
        for raw_key, raw_value in raw.value:  # type: ignore[attr-defined]
            if raw_key.tag == _TAG + "merge":
                mark = raw_key.start_mark
                self.error(
                    "syntax-check",
                    mark.line + 1,
                    mark.column + 1,
                    'GitHub Actions does not support YAML merge key "<<"',
                )
                merged.extend(self._merge_sources(self.convert(raw_value)))
                continue
            key = self.convert(raw_key)
            if not isinstance(key, Scalar):
                self.error("yaml", key.line, key.col, "a mapping key must be a scalar")
                continue
            if not isinstance(key.value, str):
                # Keys are names: `3.10:` is "3.10" and `null:` is "null", as written.
                key = Scalar(key.line, key.col, str(raw_key.value), key.style, self.lines)
            if key.text in seen:
                first = seen[key.text]
                self.error(
                    "syntax-check",
                    key.line,
                    key.col,
                    f'key "{key.text}" is duplicated (first defined at line {first.line}, '
                    f"col {first.col})",
                )
                continue
            seen[key.text] = key
            value = self.convert(raw_value)
            if isinstance(value, Scalar) and value.value is None and raw_value.value == "":
                # An empty value: point just after the colon, not at the next token.
                end = raw_key.end_mark
                value = Scalar(end.line + 1, end.column + 2, None, "", self.lines)
            result.pairs.append((key, value))
        for key, value in merged:
            if key.text not in seen:
                seen[key.text] = key
                result.pairs.append((key, value))
        return result

    def _merge_sources(self, node: Node) -> list[tuple[Scalar, Node]]:
        if isinstance(node, Mapping):
            return list(node.pairs)
        if isinstance(node, Sequence):
            pairs: list[tuple[Scalar, Node]] = []
            for item in node.items:
                pairs.extend(self._merge_sources(item))
            return pairs
        self.error("yaml", node.line, node.col, "a merge key (<<) needs a mapping")
        return []


def _resolve(kind: str, text: str) -> ScalarValue:
    """A plain scalar's value under YAML 1.2's core schema."""
    if kind == "null":
        return None
    if kind == "bool":
        return text.lower() == "true"
    if kind == "int":
        t = text.replace("_", "")
        try:
            if t.lower().startswith(("0o", "+0o", "-0o")):
                return int(t.replace("o", "").replace("O", ""), 8)
            if t.lower().startswith(("0x", "+0x", "-0x")):
                return int(t, 16)
            return int(t)
        except ValueError:
            return text
    if kind == "float":
        low = text.lower()
        if low in (".inf", "+.inf"):
            return math.inf
        if low == "-.inf":
            return -math.inf
        if low == ".nan":
            return math.nan
        try:
            return float(text.replace("_", ""))
        except ValueError:
            return text
    return text


def _too_deep(file: str) -> Diagnostic:
    return Diagnostic(
        "syntax-check", Severity.ERROR, file, 1, 1, "could not parse as YAML: nesting is too deep"
    )


def parse_yaml(text: str, file: str) -> tuple[Node | None, list[Diagnostic]]:
    """Parse one YAML document; never raises for bad input.

    Returns the root node (None for an empty or unparseable document) and the problems
    found, each with the position the YAML parser reported.
    """
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    lines = tuple(text.splitlines())
    yaml = YAML(typ="safe", pure=True)
    yaml.version = (1, 2)
    try:
        with warnings.catch_warnings():
            # Re-defined anchors are legal YAML; ruamel only warns about them.
            warnings.simplefilter("ignore")
            raw = yaml.compose(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        col = mark.column + 1 if mark else 1
        problem = exc.problem or exc.context or "invalid YAML"
        message = f"could not parse as YAML: {problem}"
        if exc.context and exc.problem:
            message = f"could not parse as YAML: {exc.context}, {exc.problem}"
        return None, [Diagnostic("syntax-check", Severity.ERROR, file, line, col, message)]
    except RecursionError:
        return None, [_too_deep(file)]
    except YAMLError as exc:
        return None, [
            Diagnostic(
                "syntax-check", Severity.ERROR, file, 1, 1, f"could not parse as YAML: {exc}"
            )
        ]
    if raw is None:
        return None, []
    converter = _Converter(file, lines)
    try:
        root = converter.convert(raw)
    except RecursionError:
        return None, [_too_deep(file)]
    return root, converter.diagnostics + converter.unused_anchors()
