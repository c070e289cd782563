"""How a status looks on the dashboard: a word, an icon and a CSS class, never colour alone.

One place decides it for the templates, the DAG's SVG and the live updates (`live.js` is
sent the same `Badge` as JSON), so the three always agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shipline.domain.status import Conclusion, Status
from shipline.engine.principal import utc

__all__ = ["PENDING", "Badge", "badge", "duration", "elapsed"]


@dataclass(frozen=True, slots=True)
class Badge:
    """`key` names the CSS class (`st-<key>`); `icon` is decorative (hidden from screen
    readers), `text` is what is read and shown."""

    key: str
    icon: str
    text: str

    @property
    def css(self) -> str:
        return f"st-{self.key}"

    def as_json(self) -> dict[str, str]:
        return {"key": self.key, "icon": self.icon, "text": self.text}


_BY_STATUS = {
    Status.QUEUED: Badge("queued", "○", "Queued"),
    Status.WAITING: Badge("waiting", "⏸", "Waiting"),
    Status.IN_PROGRESS: Badge("running", "◔", "Running"),
}
_BY_CONCLUSION = {
    Conclusion.SUCCESS: Badge("success", "✓", "Success"),
    Conclusion.FAILURE: Badge("failure", "✗", "Failed"),
    Conclusion.CANCELLED: Badge("cancelled", "⊘", "Cancelled"),
    Conclusion.SKIPPED: Badge("skipped", "↷", "Skipped"),
    Conclusion.TIMED_OUT: Badge("failure", "⧗", "Timed out"),
}
# A job of the plan that has not been created yet (its needs have not finished).
PENDING = Badge("pending", "·", "Pending")


def badge(status: Status, conclusion: Conclusion | None) -> Badge:
    """The badge of a run, job or step."""
    if status is Status.COMPLETED:
        return _BY_CONCLUSION.get(
            conclusion or Conclusion.FAILURE, _BY_CONCLUSION[Conclusion.FAILURE]
        )
    return _BY_STATUS[status]


def elapsed(started: datetime | None, finished: datetime | None, now: datetime) -> float | None:
    """Seconds from start to finish (to `now` while running); None before the start."""
    if started is None:
        return None
    end = utc(finished) if finished is not None else now
    return max(0.0, (end - utc(started)).total_seconds())


def duration(seconds: float | None) -> str:
    """`850 ms`, `12 s`, `3 min 05 s`, `2 h 04 min`; an empty string for None."""
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{round(seconds * 1000)} ms"
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
