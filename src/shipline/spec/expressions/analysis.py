"""Static questions about an expression, for lint: which contexts and functions it uses."""

from __future__ import annotations

from dataclasses import dataclass

from shipline.spec.expressions.ast import Call, Expr, Group, Index, Literal, NamedValue, walk


@dataclass(frozen=True, slots=True)
class ContextReference:
    """A use of a context with its longest static property chain.

    `steps.build.outputs.x` is `("steps", ("build", "outputs", "x"))`. Names are lowercased;
    a `*` or a computed index is `None` in `path`. `offset` is that of the context name.
    """

    context: str
    path: tuple[str | None, ...]
    offset: int


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """A function call: `name` as written, how many arguments it has, where it starts."""

    name: str
    args: int
    offset: int


def references(expr: Expr) -> list[ContextReference]:
    """Every context access in the expression, in source order."""
    found: list[ContextReference] = []
    consumed: set[int] = set()  # ids of Index nodes already part of a longer chain
    for node in walk(expr):
        if isinstance(node, Index) and id(node) not in consumed:
            chain = _chain(node, consumed)
            if chain is not None:
                found.append(chain)
        elif isinstance(node, NamedValue) and id(node) not in consumed:
            found.append(ContextReference(node.name.lower(), (), node.offset))
    return found


def _chain(node: Index, consumed: set[int]) -> ContextReference | None:
    """The reference an outermost index node makes, or None if it starts elsewhere."""
    path: list[str | None] = []
    current: Expr = node
    visited: list[int] = []
    while True:
        if isinstance(current, Index):
            visited.append(id(current))
            key = current.key
            if isinstance(key, Literal) and isinstance(key.value, str):
                path.append(key.value.lower())
            else:
                path.append(None)
            current = current.target
        elif isinstance(current, Group):
            visited.append(id(current))
            current = current.inner
        else:
            break
    if not isinstance(current, NamedValue):
        return None
    consumed.update(visited)
    consumed.add(id(current))
    path.reverse()
    return ContextReference(current.name.lower(), tuple(path), current.offset)


def calls(expr: Expr) -> list[FunctionCall]:
    """Every function call in the expression, in source order."""
    return [
        FunctionCall(node.name, len(node.args), node.offset)
        for node in walk(expr)
        if isinstance(node, Call)
    ]
