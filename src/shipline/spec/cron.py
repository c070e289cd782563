"""Cron expressions of `on.schedule[].cron`, read the way GitHub Actions reads them.

Five fields, `minute hour day-of-month month day-of-week`, always in UTC. Each field is
`*` or a comma-separated list of `n`, `a-b`, `*/step`, `a-b/step` or `a/step` (from `a` to
the field's maximum, as robfig/cron reads it, the parser actionlint uses). Months accept
`JAN`–`DEC` and days of the week `SUN`–`SAT`, in any case. Day of week is `0`–`6` with
Sunday as 0; `7` is rejected, as actionlint rejects it and GitHub documents only `0`–`6`.
There are no `?`, `L`, `W`, `#` or `@daily` shorthands.

The POSIX day rule: when both day-of-month and day-of-week are restricted, a day matches
if either does; otherwise both must. A field is restricted unless it is `*` (or `*/1`), so
`*/2` restricts, as in robfig/cron.
"""

from __future__ import annotations

import bisect
import itertools
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

__all__ = ["CronError", "CronSchedule", "parse_cron"]

_MINUTE = timedelta(minutes=1)
_DAY = timedelta(days=1)
# The longest gap a satisfiable schedule can have is Feb 29 across 2100 (8 years), so a
# search horizon of 8 years never rejects a schedule that does fire.
_HORIZON = timedelta(days=8 * 366)
# 2000-2027 is one full 28-year Gregorian cycle (2000 is a leap year): every combination
# of month, day of month and weekday, Feb 29 included, occurs in it, so the distances
# between matching days seen there are the ones every other year from 1901 to 2099 has.
_CYCLE_START, _CYCLE_END = date(2000, 1, 1), date(2028, 1, 1)
_NUMBER = re.compile(r"[0-9]+")
_UNRESTRICTED = frozenset({"*", "*/1"})


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int]


_MONTH_NAMES = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_DAY_NAMES = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
_FIELDS = (
    _Field("minute", 0, 59, {}),
    _Field("hour", 0, 23, {}),
    _Field("day-of-month", 1, 31, {}),
    _Field("month", 1, 12, {name: i for i, name in enumerate(_MONTH_NAMES, start=1)}),
    _Field("day-of-week", 0, 6, {name: i for i, name in enumerate(_DAY_NAMES)}),
)


@dataclass(frozen=True, slots=True)
class CronError:
    """Why a cron expression was rejected; a value, not an exception.

    `offset` counts from 0 in the expression: the start of the offending list element,
    or the end of the expression when fields are missing.
    """

    message: str
    offset: int


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """A parsed cron expression: the sets of values each field allows.

    `dom_restricted`/`dow_restricted` say whether day-of-month/day-of-week were written as
    something other than `*`, which decides the POSIX either-or day rule.
    """

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    dom_restricted: bool
    dow_restricted: bool

    def matches(self, when: datetime) -> bool:
        """Whether the schedule fires in the minute of `when` (seconds are ignored).

        `when` is timezone-aware (converted to UTC) or naive, meaning UTC.
        """
        t = _utc_naive(when)
        return t.minute in self.minutes and t.hour in self.hours and self._day_matches(t.date())

    def next_after(self, when: datetime) -> datetime:
        """The first minute strictly after `when` at which the schedule fires.

        The result is aware (UTC) when `when` is aware, naive UTC when it is naive. Raises
        `ValueError` when the schedule never fires (`0 0 30 2 *`): nothing within 8 years.
        """
        t = _utc_naive(when).replace(second=0, microsecond=0) + _MINUTE
        hours, minutes = sorted(self.hours), sorted(self.minutes)
        try:
            limit = t + _HORIZON
            # Each step jumps to the next candidate month, day, hour or minute, so a
            # search over years takes a few thousand steps at most.
            while t <= limit:
                if t.month not in self.months:
                    t = _first_of_next_month(t)
                    continue
                if not self._day_matches(t.date()):
                    t = datetime.combine(t.date() + _DAY, time())
                    continue
                if t.hour not in self.hours:
                    k = bisect.bisect_right(hours, t.hour)
                    if k == len(hours):
                        t = datetime.combine(t.date() + _DAY, time())
                        continue
                    t = t.replace(hour=hours[k], minute=0)
                if t.minute not in self.minutes:
                    k = bisect.bisect_right(minutes, t.minute)
                    if k == len(minutes):
                        t = t.replace(minute=0) + timedelta(hours=1)
                        continue
                    t = t.replace(minute=minutes[k])
                return t.replace(tzinfo=UTC) if when.tzinfo is not None else t
        except OverflowError:
            pass  # ran past datetime.max: no firing representable
        raise ValueError(f"cron schedule {self.expression!r} never fires after {when}")

    def interval_minutes_min(self) -> int | None:
        """The shortest gap in minutes between two consecutive firings; None if it never fires.

        Lint compares it with GitHub's minimum of 5 minutes. The gap is exact, including
        the one across midnight (`0,59 0,23 * * *` fires at 23:59 and 00:00: 1 minute).
        """
        day_gap = self._min_day_gap()
        if day_gap is None:
            return None
        times = sorted(h * 60 + m for h in self.hours for m in self.minutes)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        gaps.append(day_gap * 24 * 60 - times[-1] + times[0])
        return min(gaps)

    def _day_matches(self, d: date) -> bool:
        if d.month not in self.months:
            return False
        dom = d.day in self.days
        dow = (d.weekday() + 1) % 7 in self.weekdays  # Python counts from Monday
        if self.dom_restricted and self.dow_restricted:
            return dom or dow
        return dom and dow  # the unrestricted one is the full range

    def _min_day_gap(self) -> int | None:
        """Fewest days between two consecutive days on which the schedule fires."""
        if not (self.dom_restricted or self.dow_restricted) and len(self.months) == 12:
            return 1
        best: int | None = None
        previous: date | None = None
        d = _CYCLE_START
        while d < _CYCLE_END:
            if self._day_matches(d):
                if previous is not None:
                    gap = (d - previous).days
                    if gap == 1:
                        return 1
                    best = gap if best is None else min(best, gap)
                previous = d
            d += _DAY
        # A day that matches at all matches at least 7 times in the cycle (Feb 29), so
        # None here means it never fires.
        return best


def parse_cron(expression: str) -> CronSchedule | CronError:
    """Parse a five-field cron expression; a `CronError` says what is wrong and where."""
    fields = [(m.group(), m.start()) for m in re.finditer(r"\S+", expression)]
    if not fields:
        return CronError("cron expression is empty", 0)
    if len(fields) != len(_FIELDS):
        where = fields[len(_FIELDS)][1] if len(fields) > len(_FIELDS) else len(expression)
        return CronError(
            f"expected 5 fields (minute hour day-of-month month day-of-week), found {len(fields)}",
            where,
        )
    sets: list[frozenset[int]] = []
    for (text, offset), spec in zip(fields, _FIELDS, strict=True):
        parsed = _parse_field(text, offset, spec)
        if isinstance(parsed, CronError):
            return parsed
        sets.append(parsed)
    minutes, hours, days, months, weekdays = sets
    return CronSchedule(
        expression=expression,
        minutes=minutes,
        hours=hours,
        days=days,
        months=months,
        weekdays=weekdays,
        dom_restricted=fields[2][0] not in _UNRESTRICTED,
        dow_restricted=fields[4][0] not in _UNRESTRICTED,
    )


def _parse_field(text: str, offset: int, spec: _Field) -> frozenset[int] | CronError:
    values: set[int] = set()
    for element in text.split(","):
        parsed = _parse_element(element, spec)
        if isinstance(parsed, str):
            return CronError(f"{spec.name} field {text!r}: {parsed}", offset)
        values.update(parsed)
        offset += len(element) + 1
    return frozenset(values)


def _parse_element(element: str, spec: _Field) -> range | str:
    """The values of one list element, or why it is invalid."""
    if element == "":
        return "empty list element"
    body, slash, step_text = element.partition("/")
    step = 1
    if slash:
        if not _NUMBER.fullmatch(step_text) or int(step_text) == 0:
            return f"step {step_text!r} in {element!r} must be a positive whole number"
        step = int(step_text)
    if body == "*":
        return range(spec.low, spec.high + 1, step)
    first_text, dash, last_text = body.partition("-")
    first = _parse_value(first_text, spec)
    if isinstance(first, str):
        return first
    if not dash:
        # `a/n` runs from a to the field's maximum, `a` alone is just a.
        return range(first, (spec.high if slash else first) + 1, step)
    last = _parse_value(last_text, spec)
    if isinstance(last, str):
        return last
    if first > last:
        return f"range {body!r} is reversed: {first} comes after {last}"
    return range(first, last + 1, step)


def _parse_value(text: str, spec: _Field) -> int | str:
    if _NUMBER.fullmatch(text):
        value = int(text)
        if not spec.low <= value <= spec.high:
            return f"{value} is out of range {spec.low}-{spec.high}"
        return value
    if text.upper() in spec.names:
        return spec.names[text.upper()]
    if spec.names:
        names = list(spec.names)
        return f"{text!r} is neither a number nor a name {names[0]}-{names[-1]}"
    return f"{text!r} is not a number"


def _utc_naive(when: datetime) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        return when
    return when.astimezone(UTC).replace(tzinfo=None)


def _first_of_next_month(t: datetime) -> datetime:
    if t.month == 12:
        return datetime(t.year + 1, 1, 1)
    return datetime(t.year, t.month + 1, 1)
