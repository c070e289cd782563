"""Memory accounting that keeps one evaluation under GitHub's 1 MB, counted as GitHub does.

A string costs 26 bytes plus 2 per character, anything else 24. `Counter` limits what one
function builds (format, join, toJSON); `DepthMemory` limits the results held at once
while a tree is evaluated, releasing a node's children once the node has its result.
"""

from __future__ import annotations

from shipline.spec.expressions.errors import MAX_MEMORY

STRING_OVERHEAD = 26
MIN_OBJECT_SIZE = 24


class MemoryExceeded(Exception):
    """Raised inside evaluation; the evaluator reports it against the node at fault."""


def string_bytes(s: str) -> int:
    return STRING_OVERHEAD + 2 * len(s)


class Counter:
    """Bytes built by one function call."""

    __slots__ = ("limit", "total")

    def __init__(self, limit: int = MAX_MEMORY) -> None:
        self.limit = limit
        self.total = 0

    def add(self, s: str) -> None:
        self.add_bytes(string_bytes(s))

    def add_bytes(self, amount: int) -> None:
        self.total += amount
        if self.total > self.limit:
            raise MemoryExceeded


class DepthMemory:
    """Bytes held by the results of the nodes on the current path of the tree."""

    __slots__ = ("depths", "limit", "max_active", "total")

    def __init__(self, limit: int = MAX_MEMORY) -> None:
        self.limit = limit
        self.depths: list[int] = []
        self.max_active = -1
        self.total = 0

    def add(self, depth: int, amount: int, trim: bool) -> None:
        """Records a result at `depth`; `trim` releases what deeper nodes held."""
        if depth == self.max_active:  # the common case: a sibling of the last result
            self.depths[depth] += amount
            self.total += amount
            if self.total > self.limit:
                raise MemoryExceeded
            return
        if trim:
            while self.max_active > depth:
                self.total -= self.depths[self.max_active]
                self.depths[self.max_active] = 0
                self.max_active -= 1
        if depth > self.max_active:
            while len(self.depths) <= depth:
                self.depths.append(0)
            self.max_active = depth
        self.depths[depth] += amount
        self.total += amount
        if self.total > self.limit:
            raise MemoryExceeded
