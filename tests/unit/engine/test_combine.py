"""Calls on the same key from many threads are combined; a failed combined call falls
back to each item alone. Real threads: the queued callers are seen waiting before the
first call is let go."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from shipline.engine.combine import Combiner


class Recorder:
    """An `apply` that records its calls; the first call on `block` waits for `release`."""

    def __init__(self, fail: Callable[[Sequence[int]], bool] = lambda items: False) -> None:
        self.calls: list[tuple[str, list[int]]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.block = True
        self.fail = fail

    def __call__(self, key: str, items: Sequence[int]) -> list[str]:
        self.calls.append((key, list(items)))
        if self.block:
            self.block = False
            self.entered.set()
            assert self.release.wait(10)
        if self.fail(items):
            raise ValueError(f"bad batch {list(items)}")
        return [f"{key}:{item}" for item in items]


def queued(combiner: Combiner[str, int, str], key: str, count: int) -> None:
    """Wait until `count` callers queue on `key` behind the running call."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        queue = combiner._queues.get(key)
        if queue is not None and len(queue.waiting) >= count:
            return
        time.sleep(0.001)
    raise AssertionError(f"{count} callers never queued on {key!r}")


def test_one_caller_gets_its_own_call() -> None:
    apply = Recorder()
    apply.block = False
    combiner = Combiner(apply)
    assert combiner.submit("run", 1) == "run:1"
    assert combiner.submit("run", 2) == "run:2"
    assert apply.calls == [("run", [1]), ("run", [2])]
    assert combiner._queues == {}


def test_callers_queued_behind_a_call_are_applied_together_in_order() -> None:
    apply = Recorder()
    combiner = Combiner(apply)
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(combiner.submit, "run", 0)
        assert apply.entered.wait(10)
        later: list[Future[str]] = []
        for item in range(1, 6):
            later.append(pool.submit(combiner.submit, "run", item))
            queued(combiner, "run", item)  # in submission order
        other = pool.submit(combiner.submit, "other", 9)  # another key does not wait
        assert other.result(10) == "other:9"
        apply.release.set()
        assert first.result(10) == "run:0"
        assert [f.result(10) for f in later] == [f"run:{i}" for i in range(1, 6)]
    assert apply.calls == [("run", [0]), ("other", [9]), ("run", [1, 2, 3, 4, 5])]
    assert combiner._queues == {}


def test_a_combined_call_takes_the_limit_at_most() -> None:
    apply = Recorder()
    combiner = Combiner(apply, limit=2)
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(combiner.submit, "run", 0)
        assert apply.entered.wait(10)
        later = []
        for item in range(1, 6):
            later.append(pool.submit(combiner.submit, "run", item))
            queued(combiner, "run", item)
        apply.release.set()
        assert [f.result(10) for f in [first, *later]] == [f"run:{i}" for i in range(6)]
    assert [items for _, items in apply.calls] == [[0], [1, 2], [3, 4], [5]]


def test_a_failed_combined_call_applies_each_item_alone() -> None:
    apply = Recorder(fail=lambda items: 3 in items)
    combiner = Combiner(apply)
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(combiner.submit, "run", 0)
        assert apply.entered.wait(10)
        later = {}
        for count, item in enumerate((1, 3, 5), start=1):
            later[item] = pool.submit(combiner.submit, "run", item)
            queued(combiner, "run", count)
        apply.release.set()
        assert first.result(10) == "run:0"
        assert later[1].result(10) == "run:1"
        assert later[5].result(10) == "run:5"
        with pytest.raises(ValueError, match=r"bad batch \[3\]"):  # its own error, alone
            later[3].result(10)
    assert apply.calls[:2] == [("run", [0]), ("run", [1, 3, 5])]
    assert sorted(items[0] for _, items in apply.calls[2:]) == [1, 3, 5]
    assert combiner._queues == {}


def test_a_lone_callers_error_is_its_own() -> None:
    apply = Recorder(fail=lambda items: True)
    apply.block = False
    combiner = Combiner(apply)
    with pytest.raises(ValueError, match=r"bad batch \[7\]"):
        combiner.submit("run", 7)
    assert combiner._queues == {}  # the key is free again
