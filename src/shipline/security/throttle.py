"""Slowing down password guessing: a failed login makes the next ones wait.

Per key (user name, client address): once `threshold` failures (default 5) have happened
without a 15-minute quiet period between them, every further attempt is refused until a
delay has passed since the last failure. The delay starts at `base_delay` (30 s) and
doubles with each further failure, up to `max_delay` (15 min). A success resets the key.

Attempts refused while a key is locked are not failures: they neither extend the delay nor
reach the password check. A key is forgotten `window` (15 min) after its last failure or
the end of its lock, whichever is later, so a locked-out guesser who comes back as soon as
the lock ends keeps the long delay.

In memory, per server process, thread-safe. Memory is bounded: at most `max_keys` keys of
at most 2 × 128 characters are kept; when full, forgotten keys go first, then the least
recently failed.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from shipline.domain.clock import Clock

DEFAULT_THRESHOLD = 5
DEFAULT_WINDOW = timedelta(minutes=15)
DEFAULT_BASE_DELAY = timedelta(seconds=30)
DEFAULT_MAX_DELAY = timedelta(minutes=15)
DEFAULT_MAX_KEYS = 10_000
# Longer names and addresses are cut, so that a key's size is bounded too.
MAX_KEY_PART = 128


@dataclass(slots=True)
class _Entry:
    failures: int
    last_failure: datetime
    locked_until: datetime

    def forgotten_at(self, window: timedelta) -> datetime:
        return max(self.last_failure, self.locked_until) + window


class LoginThrottle:
    """Counts failed logins per (user name, client address) and says when to refuse.

    Use: `attempt(user, client)` before checking a password (refuse when it returns a
    wait), then `succeeded(user, client)` when the password was right.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        threshold: int = DEFAULT_THRESHOLD,
        window: timedelta = DEFAULT_WINDOW,
        base_delay: timedelta = DEFAULT_BASE_DELAY,
        max_delay: timedelta = DEFAULT_MAX_DELAY,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        if threshold < 1 or max_keys < 1:
            raise ValueError("threshold and max_keys must be at least 1")
        self._clock = clock
        self._threshold = threshold
        self._window = window
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._max_keys = max_keys
        self._lock = threading.Lock()
        # Least recently failed first: the order eviction follows.
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()

    def retry_after(self, user: str, client: str) -> timedelta | None:
        """How long this key must still wait, or None when an attempt may go ahead
        (a query: it counts nothing)."""
        now = self._clock.now()
        with self._lock:
            entry = self._live_entry(_key(user, client), now)
            if entry is None or now >= entry.locked_until:
                return None
            return entry.locked_until - now

    def attempt(self, user: str, client: str) -> timedelta | None:
        """Ask to check a password: the wait still due (refuse the attempt), or None (go
        ahead). An attempt that goes ahead counts as a failure until `succeeded()` says
        otherwise, so that concurrent guesses cannot all slip through before the first
        one fails."""
        now = self._clock.now()
        key = _key(user, client)
        with self._lock:
            entry = self._live_entry(key, now)
            if entry is not None and now < entry.locked_until:
                return entry.locked_until - now
            if entry is None:
                self._make_room(now)
                entry = _Entry(failures=0, last_failure=now, locked_until=now)
                self._entries[key] = entry
            entry.failures += 1
            entry.last_failure = now
            self._entries.move_to_end(key)
            delay = self._delay(entry.failures)
            if delay is not None:
                entry.locked_until = now + delay
            return None

    def succeeded(self, user: str, client: str) -> None:
        """The attempt was a successful login: the key starts afresh."""
        with self._lock:
            self._entries.pop(_key(user, client), None)

    def __len__(self) -> int:
        """How many keys are remembered (forgotten ones may linger until evicted)."""
        with self._lock:
            return len(self._entries)

    def _delay(self, failures: int) -> timedelta | None:
        excess = failures - self._threshold
        if excess < 0:
            return None
        delay = self._base_delay
        for _ in range(excess):  # doubling stops at the cap: no overflow however many
            if delay >= self._max_delay:
                break
            delay *= 2
        return min(delay, self._max_delay)

    def _live_entry(self, key: tuple[str, str], now: datetime) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is not None and now >= entry.forgotten_at(self._window):
            del self._entries[key]
            return None
        return entry

    def _make_room(self, now: datetime) -> None:
        if len(self._entries) < self._max_keys:
            return
        for key in [k for k, e in self._entries.items() if now >= e.forgotten_at(self._window)]:
            del self._entries[key]
        while len(self._entries) >= self._max_keys:
            self._entries.popitem(last=False)


def _key(user: str, client: str) -> tuple[str, str]:
    return user[:MAX_KEY_PART], client[:MAX_KEY_PART]
