"""`SqlQueueSignals` (the `QueueSignals` port): wake-ups after commits that queued jobs or
asked running jobs to stop.

Within a process the store calls the listeners itself once such a transaction committed.
On PostgreSQL the transaction also sends `NOTIFY shipline_queue, '<signal>'` (through
`SqlEventStore.publish`, once per signal and transaction), which PostgreSQL delivers at
commit, and only then, to every session that listens: each process that has listeners
keeps one connection of its own in `LISTEN` and passes what arrives on. Long polls on every
server are so woken within milliseconds of a job being queued on any of them, without a
broker and without polling the table.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from sqlalchemy.engine import make_url

from shipline.store.ports import SIGNAL_QUEUED, SIGNAL_STOP
from shipline.store.sql.engine import is_sqlite

log = logging.getLogger(__name__)

CHANNEL = "shipline_queue"
# How long the listening connection waits for a notification before it checks whether it
# should stop; and how long it waits before connecting again after an error.
_TICK = 1.0
_RECONNECT = 1.0

Listener = Callable[[str], None]


def libpq_url(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL (`postgresql+psycopg://...`) as psycopg's conninfo."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class SqlQueueSignals:
    """Queue signals of one `SqlStore`: in-process after each commit, and on PostgreSQL
    also from other processes through LISTEN/NOTIFY (a daemon thread, started by the first
    `listen`)."""

    def __init__(self, url: str) -> None:
        self.reaches_other_processes = not is_sqlite(url)
        self._url = url
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()
        # Set once the listening connection has run LISTEN (tests and benchmarks wait).
        self.listening = threading.Event()
        # Notifications received from the database (the wake-up path; for tests).
        self.received = 0

    def listen(self, listener: Listener) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(listener)
            if self.reaches_other_processes and self._thread is None and not self._closed.is_set():
                self._thread = threading.Thread(
                    target=self._listen_loop, name="shipline-listen", daemon=True
                )
                self._thread.start()

        def stop() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return stop

    def fire(self, signals: Iterable[str]) -> None:
        """Tell this process's listeners (the store calls it after a commit)."""
        with self._lock:
            listeners = list(self._listeners)
        for signal in signals:
            for listener in listeners:
                try:
                    listener(signal)
                except Exception:  # one broken listener must not starve the others
                    log.exception("a queue signal listener failed")

    def close(self) -> None:
        self._closed.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=_TICK * 3)

    def _listen_loop(self) -> None:
        import psycopg

        first = True
        while not self._closed.is_set():
            try:
                with psycopg.connect(libpq_url(self._url), autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    if not first:  # a signal may have come while we were away
                        self.fire((SIGNAL_QUEUED, SIGNAL_STOP))
                    first = False
                    while not self._closed.is_set():
                        for note in conn.notifies(timeout=_TICK):
                            self.fire((note.payload,))
                            self.received += 1
            except psycopg.Error as exc:
                self.listening.clear()
                log.warning("listening for queue signals failed (%s); connecting again", exc)
                self._closed.wait(_RECONNECT)
