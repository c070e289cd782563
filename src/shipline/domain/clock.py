"""The clock services read the time from, so that tests can set it (`testing.FrozenClock`).

Code that needs "now" receives a `Clock`; it never calls `datetime.now()` itself. Times are
timezone-aware UTC datetimes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """A source of the current time."""

    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    """The real time of the machine."""

    def now(self) -> datetime:
        return datetime.now(UTC)
