"""Evaluation of a syntax tree against the caller's contexts."""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache
from typing import Protocol

from shipline.spec.expressions import functions as fn
from shipline.spec.expressions.ast import (
    Call,
    Compare,
    Expr,
    Group,
    Index,
    Literal,
    Logical,
    NamedValue,
    Not,
    Wildcard,
    unparse,
    walk,
)
from shipline.spec.expressions.errors import ExpressionError
from shipline.spec.expressions.memory import (
    MIN_OBJECT_SIZE,
    STRING_OVERHEAD,
    Counter,
    DepthMemory,
    MemoryExceeded,
)
from shipline.spec.expressions.parser import parse_expression, parse_with_names
from shipline.spec.expressions.serialize import JsonError, from_json, to_json
from shipline.spec.expressions.values import (
    MISSING,
    FilteredArray,
    Missing,
    Value,
    equals,
    greater_than,
    is_primitive,
    less_than,
    lookup,
    to_number,
    to_string,
    truthy,
)

_INT32_MAX = 2_147_483_647
_SCALARS = frozenset({bool, int, float, type(None)})
_STATUS_DEFAULTS = {"success": True, "always": True, "failure": False, "cancelled": False}


class FunctionHost(Protocol):
    """What the caller provides at run time for the functions that depend on the run.

    `status_function` answers `success()`, `failure()`, `always()` and `cancelled()`
    (its `name` is lowercased); `hash_files` computes `hashFiles(...)` over the workspace.
    """

    def status_function(self, name: str) -> bool: ...

    def hash_files(self, patterns: list[str]) -> str: ...


NamedValueRef = tuple[str, int]


@lru_cache(maxsize=4096)
def _compile(text: str) -> tuple[Expr, tuple[NamedValueRef, ...]]:
    tree = parse_expression(text)
    return tree, _named_values(tree)


def _named_values(tree: Expr) -> tuple[NamedValueRef, ...]:
    return tuple((n.name, n.offset) for n in walk(tree) if isinstance(n, NamedValue))


def evaluate(
    expr: Expr | str, contexts: Mapping[str, Value], host: FunctionHost | None = None
) -> Value:
    """The value of an expression (text without `${{ }}`, or a parsed tree).

    Context names match case-insensitively. As in GitHub, a name missing from `contexts`
    is an error even on a branch that would not be evaluated (`kind="parsing"`, since
    GitHub finds it while parsing). Without a `host`, `success()` and `always()` are true,
    `failure()` and `cancelled()` false, and `hashFiles()` is an error.
    """
    if isinstance(expr, str):
        try:
            tree, names = _compile(expr)
        except ExpressionError as syntax:
            # Report the error GitHub reports first, which may be an unknown context name.
            try:
                parse_with_names(expr, lambda name: lookup(contexts, name) is not MISSING)
            except ExpressionError as first:
                raise first from None
            raise syntax from None
        text: str | None = expr
    else:
        tree, names, text = expr, _named_values(expr), None
    for name, offset in names:
        if lookup(contexts, name) is MISSING:
            raise ExpressionError(
                "parsing",
                f"Unrecognized named-value: '{name}'",
                text if text is not None else unparse(tree),
                offset if text is not None else -1,
            )
    result = _Evaluator(contexts, host, text, tree).eval(tree, 0)
    return list(result) if isinstance(result, FilteredArray) else result


class _Evaluator:
    __slots__ = ("contexts", "host", "memory", "text", "tree")

    def __init__(
        self,
        contexts: Mapping[str, Value],
        host: FunctionHost | None,
        text: str | None,
        tree: Expr,
    ) -> None:
        self.contexts = contexts
        self.host = host
        self.text = text
        self.tree = tree
        self.memory = DepthMemory()

    def error(self, message: str, node: Expr) -> ExpressionError:
        if self.text is None:
            return ExpressionError("evaluation", message, unparse(self.tree), -1)
        return ExpressionError("evaluation", message, self.text, node.offset)

    def eval(self, node: Expr, level: int) -> Value:
        try:
            result = self.dispatch(node, level)
            # Memory, counted as GitHub does: a primitive result releases what its
            # operands held. Inlined: this runs for every node.
            if type(result) is str:
                self.memory.add(level, STRING_OVERHEAD + 2 * len(result), True)
            elif type(result) in _SCALARS:
                self.memory.add(level, MIN_OBJECT_SIZE, True)
            elif type(result) is FilteredArray:
                self.memory.add(level, MIN_OBJECT_SIZE + 8 * len(result), False)
            else:
                self.memory.add(level, MIN_OBJECT_SIZE, is_primitive(result))
        except fn.FunctionFailure as e:
            raise self.error(e.message, node) from None
        except MemoryExceeded:
            raise self.error(
                "The maximum allowed memory size was exceeded while evaluating the following "
                f"expression: {unparse(node)}",
                node,
            ) from None
        return result

    def dispatch(self, node: Expr, level: int) -> Value:
        if type(node) is Literal:
            return node.value
        if type(node) is NamedValue:
            found = lookup(self.contexts, node.name)
            return None if isinstance(found, Missing) else found
        if type(node) is Index:
            return self.index(node, level + 1)
        if type(node) is Compare:
            return self.compare(node, level + 1)
        if isinstance(node, Logical):
            result: Value = None
            stop_when = node.op == "||"
            for operand in node.operands:
                result = self.eval(operand, level + 1)
                if truthy(result) is stop_when:
                    break
            return result
        if isinstance(node, Call):
            return self.call(node, level + 1)
        if isinstance(node, Not):
            return not truthy(self.eval(node.operand, level + 1))
        if isinstance(node, Group):
            return self.eval(node.inner, level + 1)
        raise ExpressionError("evaluation", "A '*' may only follow '.' or '['", "*", node.offset)

    def compare(self, node: Compare, level: int) -> bool:
        left = self.eval(node.left, level)
        right = self.eval(node.right, level)
        op = node.op
        if op == "==":
            return equals(left, right)
        if op == "!=":
            return not equals(left, right)
        if op == ">":
            return greater_than(left, right)
        if op == "<":
            return less_than(left, right)
        if op == ">=":
            return equals(left, right) or greater_than(left, right)
        return equals(left, right) or less_than(left, right)

    def index(self, node: Index, level: int) -> Value:
        target = self.eval(node.target, level)
        star = isinstance(node.key, Wildcard)
        if isinstance(target, FilteredArray):
            key = None if star else self.eval(node.key, level)
            return _filter(target, star, key)
        if isinstance(target, Mapping):
            if star:
                return FilteredArray(target.values())
            key = self.eval(node.key, level)
            if not is_primitive(key):
                return None
            found = lookup(target, to_string(key))
            return None if isinstance(found, Missing) else found
        if isinstance(target, list | tuple):
            if star:
                return FilteredArray(target)
            i = _int_index(self.eval(node.key, level))
            return target[i] if i is not None and i < len(target) else None
        return FilteredArray() if star else None

    def call(self, node: Call, level: int) -> Value:
        name = node.name.lower()
        args = node.args
        if name in fn.STATUS_FUNCTIONS:
            if self.host is None:
                return _STATUS_DEFAULTS[name]
            return bool(self.host.status_function(name))
        if name == "case":
            return self.case(args, level)
        if name == "format":
            return self.format(args, level)
        values = [self.eval(a, level) for a in args]
        if name == "contains":
            return fn.contains(values[0], values[1])
        if name == "startswith":
            return fn.starts_with(values[0], values[1])
        if name == "endswith":
            return fn.ends_with(values[0], values[1])
        if name == "join":
            return fn.join(
                values[0], values[1] if len(values) > 1 else None, Counter(), len(values) > 1
            )
        if name == "tojson":
            return to_json(values[0], Counter())
        if name == "fromjson":
            try:
                return from_json(to_string(values[0]))
            except JsonError as e:
                raise self.error(f"Error parsing fromJson: {e}", node) from None
        if name == "hashfiles":
            if self.host is None:
                raise self.error("hashFiles() is not available in this context", node)
            return self.host.hash_files([to_string(v) for v in values])
        raise self.error(f"Unrecognized function: '{node.name}'", node)

    def case(self, args: tuple[Expr, ...], level: int) -> Value:
        for i in range(0, len(args) - 1, 2):
            predicate = self.eval(args[i], level)
            if not isinstance(predicate, bool):
                raise fn.FunctionFailure("case predicate must evaluate to a boolean value")
            if predicate:
                return self.eval(args[i + 1], level)
        return self.eval(args[-1], level)

    def format(self, args: tuple[Expr, ...], level: int) -> str:
        fs = to_string(self.eval(args[0], level))
        segments = fn.parse_format(fs, len(args) - 1)
        counter = Counter()
        for segment in segments:
            if isinstance(segment, str) and segment:
                counter.add(segment)
        # Like GitHub, an argument is evaluated only if the format string refers to it.
        cache: dict[int, Value] = {}
        parts: list[str] = []
        for segment in segments:
            if isinstance(segment, str):
                parts.append(segment)
                continue
            arg, specifiers = segment
            if arg not in cache:
                cache[arg] = self.eval(args[arg + 1], level)
            if specifiers:
                raise fn.invalid_specifiers(specifiers, cache[arg])
            text = to_string(cache[arg])
            if text:
                counter.add(text)
            parts.append(text)
        return "".join(parts)


def _int_index(key: Value) -> int | None:
    n = to_number(key)
    if math.isnan(n) or n < 0:
        return None
    n = math.floor(n) if n != math.inf else n
    return int(n) if n <= _INT32_MAX else None


def _filter(items: FilteredArray, star: bool, key: Value) -> FilteredArray:
    """Applies an index to every element of a filtered array, keeping what it finds."""
    result = FilteredArray()
    name = to_string(key) if not star and is_primitive(key) else None
    position = None if star else _int_index(key)
    for item in items:
        if isinstance(item, Mapping):
            if star:
                result.extend(item.values())
            elif name is not None:
                found = lookup(item, name)
                if not isinstance(found, Missing):
                    result.append(found)
        elif isinstance(item, list | tuple):
            if star:
                result.extend(item)
            elif position is not None and position < len(item):
                result.append(item[position])
    return result
