"""`FrozenClock`: a `Clock` that stands still until a test moves it."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

DEFAULT_START = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


class FrozenClock:
    """A clock whose time changes only through `advance()` and `set()`.

    Starts at `start` (default 2025-01-01 12:00 UTC); a naive start is taken as UTC.
    Thread-safe, so that code under test may read it from worker threads.
    """

    def __init__(self, start: datetime = DEFAULT_START) -> None:
        self._lock = threading.Lock()
        self._now = _utc(start)

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta | float = 0.0, /, **kwargs: float) -> datetime:
        """Move forward by `delta` (a timedelta or seconds) plus `timedelta(**kwargs)`;
        returns the new time. Moving backwards is refused: real clocks used for
        deadlines do not (use `set()` to model a wall-clock jump)."""
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        step += timedelta(**kwargs)
        if step < timedelta(0):
            raise ValueError("FrozenClock.advance() cannot go backwards; use set()")
        with self._lock:
            self._now += step
            return self._now

    def set(self, when: datetime) -> None:
        """Jump to `when`, forwards or backwards."""
        with self._lock:
            self._now = _utc(when)


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
