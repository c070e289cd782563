"""The syntax tree of an expression: frozen nodes, each with the offset of its token."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal as TypingLiteral
from typing import TypeAlias

from shipline.spec.expressions.lexer import is_legal_identifier
from shipline.spec.expressions.values import format_number


@dataclass(frozen=True, slots=True)
class Literal:
    """`null`, `true`, a number or a string literal (numbers are always floats)."""

    value: bool | float | str | None
    offset: int


@dataclass(frozen=True, slots=True)
class NamedValue:
    """A context name such as `github`, as written."""

    name: str
    offset: int


@dataclass(frozen=True, slots=True)
class Wildcard:
    """The `*` of `a.*` or `a[*]`."""

    offset: int


@dataclass(frozen=True, slots=True)
class Index:
    """`target.name`, `target[key]` or a `*` filter; `offset` is that of `.` or `[`."""

    target: Expr
    key: Expr
    offset: int
    dotted: bool = False


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expr
    offset: int


@dataclass(frozen=True, slots=True)
class Compare:
    """`==`, `!=`, `<`, `<=`, `>` or `>=`; `offset` is that of the operator."""

    op: TypingLiteral["==", "!=", "<", "<=", ">", ">="]
    left: Expr
    right: Expr
    offset: int


@dataclass(frozen=True, slots=True)
class Logical:
    """A chain of `&&` or of `||`; it yields the deciding operand, not a boolean."""

    op: TypingLiteral["&&", "||"]
    operands: tuple[Expr, ...]
    offset: int


@dataclass(frozen=True, slots=True)
class Group:
    """A parenthesised expression."""

    inner: Expr
    offset: int


@dataclass(frozen=True, slots=True)
class Call:
    """A function call; `name` is as written (function names ignore case)."""

    name: str
    args: tuple[Expr, ...]
    offset: int


Expr: TypeAlias = Literal | NamedValue | Wildcard | Index | Not | Compare | Logical | Group | Call


def children(node: Expr) -> tuple[Expr, ...]:
    """The direct sub-expressions of a node, in source order."""
    if isinstance(node, Index):
        return (node.target, node.key)
    if isinstance(node, Not):
        return (node.operand,)
    if isinstance(node, Compare):
        return (node.left, node.right)
    if isinstance(node, Logical):
        return node.operands
    if isinstance(node, Call):
        return node.args
    if isinstance(node, Group):
        return (node.inner,)
    return ()


def walk(expr: Expr) -> Iterator[Expr]:
    """Every node of the tree, parents before children, in source order."""
    stack = [expr]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(children(node)))


def unparse(node: Expr) -> str:
    """Expression text that parses back to the same tree (up to redundant parentheses)."""
    if isinstance(node, Literal):
        v = node.value
        if v is None:
            return "null"
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, float):
            return format_number(v)
        return "'" + v.replace("'", "''") + "'"
    if isinstance(node, NamedValue):
        return node.name
    if isinstance(node, Wildcard):
        return "*"
    if isinstance(node, Index):
        target = unparse(node.target)
        key = node.key
        if isinstance(key, Wildcard):
            return f"{target}.*"
        if (
            isinstance(key, Literal)
            and isinstance(key.value, str)
            and is_legal_identifier(key.value)
        ):
            return f"{target}.{key.value}"
        return f"{target}[{unparse(key)}]"
    if isinstance(node, Not):
        return f"!{unparse(node.operand)}"
    if isinstance(node, Compare):
        return f"{unparse(node.left)} {node.op} {unparse(node.right)}"
    if isinstance(node, Logical):
        return f" {node.op} ".join(unparse(o) for o in node.operands)
    if isinstance(node, Group):
        return f"({unparse(node.inner)})"
    return f"{node.name}({', '.join(unparse(a) for a in node.args)})"
