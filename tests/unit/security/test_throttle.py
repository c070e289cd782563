"""Login throttle: delays after repeated failures, reset on success, bounded memory."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from shipline.security.throttle import LoginThrottle
from shipline.testing import FrozenClock


def fail(throttle: LoginThrottle, times: int, user: str = "ann", client: str = "10.0.0.1") -> None:
    for _ in range(times):
        assert throttle.attempt(user, client) is None


def test_four_failures_do_not_slow_down() -> None:
    throttle = LoginThrottle(FrozenClock())
    fail(throttle, 4)
    assert throttle.retry_after("ann", "10.0.0.1") is None
    assert throttle.attempt("ann", "10.0.0.1") is None  # the fifth may still go ahead


def test_after_five_failures_attempts_are_refused_for_a_delay() -> None:
    clock = FrozenClock()
    throttle = LoginThrottle(clock)
    fail(throttle, 5)
    assert throttle.retry_after("ann", "10.0.0.1") == timedelta(seconds=30)
    assert throttle.attempt("ann", "10.0.0.1") == timedelta(seconds=30)
    clock.advance(29)
    assert throttle.attempt("ann", "10.0.0.1") == timedelta(seconds=1)
    clock.advance(1)
    assert throttle.attempt("ann", "10.0.0.1") is None


def test_delay_doubles_with_each_failure_up_to_fifteen_minutes() -> None:
    clock = FrozenClock()
    throttle = LoginThrottle(clock)
    fail(throttle, 4)
    delays = []
    for _ in range(8):
        assert throttle.attempt("ann", "10.0.0.1") is None
        wait = throttle.retry_after("ann", "10.0.0.1")
        assert wait is not None
        delays.append(wait.total_seconds())
        clock.advance(wait)
    assert delays == [30, 60, 120, 240, 480, 900, 900, 900]


def test_refused_attempts_do_not_extend_the_delay() -> None:
    clock = FrozenClock()
    throttle = LoginThrottle(clock)
    fail(throttle, 5)
    for _ in range(100):
        throttle.attempt("ann", "10.0.0.1")
    clock.advance(30)
    assert throttle.retry_after("ann", "10.0.0.1") is None


def test_success_resets_the_key() -> None:
    clock = FrozenClock()
    throttle = LoginThrottle(clock)
    fail(throttle, 4)
    assert throttle.attempt("ann", "10.0.0.1") is None
    throttle.succeeded("ann", "10.0.0.1")
    assert throttle.retry_after("ann", "10.0.0.1") is None
    fail(throttle, 4)
    assert throttle.retry_after("ann", "10.0.0.1") is None


def test_keys_are_per_user_and_client() -> None:
    throttle = LoginThrottle(FrozenClock())
    fail(throttle, 5)
    assert throttle.retry_after("ann", "10.0.0.1") is not None
    assert throttle.retry_after("ann", "10.0.0.2") is None
    assert throttle.retry_after("bob", "10.0.0.1") is None


def test_failures_are_forgotten_after_a_quiet_quarter_hour() -> None:
    clock = FrozenClock()
    throttle = LoginThrottle(clock)
    fail(throttle, 4)
    clock.advance(minutes=15)
    fail(throttle, 4)
    assert throttle.retry_after("ann", "10.0.0.1") is None


def test_failures_spread_within_the_window_count() -> None:
    clock = FrozenClock()
    throttle = LoginThrottle(clock)
    for _ in range(5):
        fail(throttle, 1)
        clock.advance(minutes=14)
    # the fifth failure, 14 minutes after the fourth, locked the key
    clock.set(clock.now() - timedelta(minutes=14))
    assert throttle.retry_after("ann", "10.0.0.1") == timedelta(seconds=30)


def test_a_guesser_back_as_soon_as_the_lock_ends_keeps_the_long_delay() -> None:
    clock = FrozenClock()
    throttle = LoginThrottle(clock)
    fail(throttle, 4)
    for _ in range(6):
        fail(throttle, 1)
        clock.advance(throttle.retry_after("ann", "10.0.0.1") or timedelta(0))
    fail(throttle, 1)
    assert throttle.retry_after("ann", "10.0.0.1") == timedelta(minutes=15)


def test_memory_is_bounded_and_forgotten_keys_go_first() -> None:
    clock = FrozenClock()
    throttle = LoginThrottle(clock, max_keys=10)
    fail(throttle, 5, user="victim")
    clock.advance(minutes=1)
    for i in range(9):
        fail(throttle, 1, user=f"u{i}")
    assert len(throttle) == 10
    fail(throttle, 1, user="new")
    assert len(throttle) == 10
    # the oldest key went to make room
    assert throttle.retry_after("victim", "10.0.0.1") is None
    clock.advance(minutes=20)
    fail(throttle, 1, user="later")
    assert len(throttle) == 1


def test_concurrent_attempts_cannot_all_slip_through() -> None:
    throttle = LoginThrottle(FrozenClock())
    results: list[timedelta | None] = []
    lock = threading.Lock()

    def guess() -> None:
        outcome = throttle.attempt("ann", "10.0.0.1")
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=guess) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r is None for r in results) == 5


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        LoginThrottle(FrozenClock(), threshold=0)


def test_frozen_clock_moves_only_when_told() -> None:
    clock = FrozenClock()
    start = clock.now()
    assert start.tzinfo is not None
    assert clock.advance(timedelta(seconds=5), minutes=1) == start + timedelta(seconds=65)
    with pytest.raises(ValueError):
        clock.advance(-1)
    clock.set(start)
    assert clock.now() == start


def test_long_names_are_cut_to_bound_memory() -> None:
    throttle = LoginThrottle(FrozenClock())
    fail(throttle, 5, user="x" * 10_000)
    assert throttle.retry_after("x" * 128, "10.0.0.1") is not None
    assert throttle.retry_after("x" * 20_000, "10.0.0.1") is not None
