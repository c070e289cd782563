"""Concurrent calls on the same key, from many threads, combined into one call.

A database's group commit, for a change that must hold one lock: the jobs of a wide
matrix end at the same moment, and each end must hold its run's lock. Taken one at a time,
each end pays for the lock, its own round trips and its commit while the others queue
behind it; combined, the ends that queued while one transaction held the lock are applied
together by the next one, paying once.

The first caller on an idle key leads: it applies the waiting items (its own first) in
one call, then hands the lead to the first caller that queued meanwhile and goes back
with its own result. Nobody waits longer than one call besides its own. When a combined
call fails, none of its items took effect (one transaction): each caller then applies its
own item alone, so that one bad item cannot fail the others and each gets its own error.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")
R = TypeVar("R")

# Items applied in one call at most: bounds how long a lock is held (and the leader's wait).
LIMIT = 64


@dataclass(slots=True, eq=False)
class _Waiter(Generic[T, R]):
    item: T
    answered: threading.Event = field(default_factory=threading.Event)
    lead: bool = False
    alone: bool = False  # the combined call failed: apply the item by itself
    result: R | None = None


@dataclass(slots=True, eq=False)
class _Queue(Generic[T, R]):
    waiting: list[_Waiter[T, R]] = field(default_factory=list)


class Combiner(Generic[K, T, R]):
    """`submit(key, item)` returns `apply(key, items)[i]` for its item, where `items` are
    the items submitted on `key` while an earlier call on it ran (see the module
    docstring). `apply` returns one result per item, in their order, or raises; with one
    item, its error is the caller's."""

    def __init__(
        self, apply: Callable[[K, Sequence[T]], Sequence[R]], *, limit: int = LIMIT
    ) -> None:
        self._apply = apply
        self._limit = limit
        self._lock = threading.Lock()
        self._queues: dict[K, _Queue[T, R]] = {}

    def submit(self, key: K, item: T) -> R:
        me: _Waiter[T, R] = _Waiter(item)
        with self._lock:
            queue = self._queues.get(key)
            if queue is None:
                queue = self._queues[key] = _Queue()
                me.lead = True
            queue.waiting.append(me)
        if not me.lead:
            me.answered.wait()
            if me.alone:
                return self._apply(key, [item])[0]
            if not me.lead:
                return me.result  # type: ignore[return-value]  # set with `answered`
        return self._lead(key, queue, me)

    def _lead(self, key: K, queue: _Queue[T, R], me: _Waiter[T, R]) -> R:
        with self._lock:
            batch = queue.waiting[: self._limit]  # `me` first: leaders come from the front
            del queue.waiting[: self._limit]
        try:
            results = self._apply(key, [w.item for w in batch])
            error: BaseException | None = None
        except BaseException as exc:  # handed to each caller below
            results, error = [], exc
        self._hand_over(key, queue)
        if error is None:
            for waiter, result in zip(batch, results, strict=True):
                waiter.result = result
                if waiter is not me:
                    waiter.answered.set()
            return results[0]
        if len(batch) == 1:
            raise error
        for waiter in batch[1:]:
            waiter.alone = True
            waiter.answered.set()
        return self._apply(key, [me.item])[0]

    def _hand_over(self, key: K, queue: _Queue[T, R]) -> None:
        """The next call on `key` is led by the first caller that queued, if any."""
        with self._lock:
            if not queue.waiting:
                del self._queues[key]
                return
            successor = queue.waiting[0]
            successor.lead = True
        successor.answered.set()
