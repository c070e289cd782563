"""Cron schedules: parsing, matching, next firing, shortest interval, actionlint corpus."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import ReusedAnchorWarning, YAMLError

from shipline.spec.cron import CronError, CronSchedule, parse_cron
from tests.conformance.corpus import load_corpus


def schedule(expression: str) -> CronSchedule:
    parsed = parse_cron(expression)
    assert isinstance(parsed, CronSchedule), parsed
    return parsed


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "field", "values"),
    [
        ("*/15 * * * *", "minutes", {0, 15, 30, 45}),
        ("5/20 * * * *", "minutes", {5, 25, 45}),
        ("1-10/4 * * * *", "minutes", {1, 5, 9}),
        ("0 1,2,20-22 * * *", "hours", {1, 2, 20, 21, 22}),
        ("0 0 1,15,31 * *", "days", {1, 15, 31}),
        ("0 0 * jan-MAR,Dec *", "months", {1, 2, 3, 12}),
        ("0 0 * * mon-FRI", "weekdays", {1, 2, 3, 4, 5}),
        ("0 0 * * SUN,6", "weekdays", {0, 6}),
        ("0 0 * * */2", "weekdays", {0, 2, 4, 6}),
        ("*/100 * * * *", "minutes", {0}),
        ("  0\t12  * * *  ", "hours", {12}),
    ],
)
def test_parses_fields(expression: str, field: str, values: set[int]) -> None:
    assert getattr(schedule(expression), field) == values


def test_restriction_is_syntactic() -> None:
    s = schedule("0 0 * * *")
    assert (s.dom_restricted, s.dow_restricted) == (False, False)
    assert len(s.days) == 31 and len(s.weekdays) == 7
    # A step restricts even when it starts from `*` (as in the parser actionlint uses).
    s = schedule("0 0 */2 * 0-6/1")
    assert (s.dom_restricted, s.dow_restricted) == (True, True)
    assert not schedule("0 0 */1 * *").dom_restricted


@pytest.mark.parametrize(
    ("expression", "offset", "fragment"),
    [
        ("", 0, "empty"),
        ("   ", 0, "empty"),
        ("0 */3 * *", 9, "found 4"),
        ("0 0 * * * *", 10, "found 6"),
        ("@daily", 6, "found 1"),
        ("60 * * * *", 0, "60 is out of range 0-59"),
        ("0 24 * * *", 2, "out of range 0-23"),
        ("0 0 0 * *", 4, "out of range 1-31"),
        ("0 0 32 * *", 4, "out of range 1-31"),
        ("0 0 * 13 *", 6, "out of range 1-12"),
        ("0 0 * 0 *", 6, "out of range 1-12"),
        ("0 0 * * 7", 8, "out of range 0-6"),
        ("*/0 * * * *", 0, "positive"),
        ("*/x * * * *", 0, "positive"),
        ("1-5/ * * * *", 0, "positive"),
        ("*/-1 * * * *", 0, "positive"),
        ("0 0 * FOO *", 6, "JAN-DEC"),
        ("0 0 * * MONDAY", 8, "SUN-SAT"),
        ("MON * * * *", 0, "not a number"),
        ("0 0 * * 1,2,X", 12, "'X'"),
        ("0 0 1,,2 * *", 6, "empty list element"),
        ("5-1 * * * *", 0, "reversed"),
        ("-1 * * * *", 0, "not a number"),
        ("? * * * *", 0, "not a number"),
        ("0 0 L * *", 4, "not a number"),
        ("0 0 * * 5#2", 8, "'5#2'"),
        ("1-2-3 * * * *", 0, "not a number"),
    ],
)
def test_rejects(expression: str, offset: int, fragment: str) -> None:
    error = parse_cron(expression)
    assert isinstance(error, CronError)
    assert error.offset == offset
    assert fragment in error.message


def test_matches_naive_and_aware_times_as_utc() -> None:
    s = schedule("30 5 * * *")
    assert s.matches(datetime(2024, 6, 1, 5, 30, 59))
    assert s.matches(utc(2024, 6, 1, 5, 30))
    assert s.matches(datetime(2024, 6, 1, 7, 30, tzinfo=timezone(timedelta(hours=2))))
    assert not s.matches(datetime(2024, 6, 1, 5, 30, tzinfo=timezone(timedelta(hours=2))))
    assert not s.matches(utc(2024, 6, 1, 5, 31))


def test_day_of_month_or_day_of_week_when_both_restricted() -> None:
    either = schedule("0 0 13 * 5")  # the 13th, and every Friday
    assert either.matches(utc(2024, 9, 13))  # Friday the 13th
    assert either.matches(utc(2024, 7, 13))  # a Saturday
    assert either.matches(utc(2024, 7, 12))  # a Friday
    assert not either.matches(utc(2024, 7, 11))
    only_dom = schedule("0 0 13 * *")
    assert not only_dom.matches(utc(2024, 7, 12))
    only_dow = schedule("0 0 * * 5")
    assert not only_dow.matches(utc(2024, 7, 13))
    # Month still applies to both halves of the rule.
    assert not schedule("0 0 13 1 5").matches(utc(2024, 7, 12))


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("0 0 1 1 *", utc(2024, 12, 31, 23, 59), utc(2025, 1, 1)),
        ("59 23 31 12 *", utc(2024, 12, 31, 23, 59), utc(2025, 12, 31, 23, 59)),
        ("0 0 31 * *", utc(2024, 4, 1), utc(2024, 5, 31)),
        ("0 0 29 2 *", utc(2024, 3, 1), utc(2028, 2, 29)),
        ("0 0 29 2 *", utc(2023, 1, 1), utc(2024, 2, 29)),
        ("0 0 29 2 *", utc(2097, 3, 1), utc(2104, 2, 29)),  # 2100 is not a leap year
        ("0 12 * * *", utc(2024, 6, 1, 12, 0), utc(2024, 6, 2, 12, 0)),  # strictly after
        ("0 12 * * *", datetime(2024, 6, 1, 11, 59, 59, tzinfo=UTC), utc(2024, 6, 1, 12, 0)),
        ("0 12 * * *", datetime(2024, 6, 1, 12, 0, 30, tzinfo=UTC), utc(2024, 6, 2, 12, 0)),
        ("30 5 * * 1-5", utc(2024, 6, 7, 6), utc(2024, 6, 10, 5, 30)),  # Friday -> Monday
        ("*/5 * * * *", utc(2024, 2, 29, 23, 58), utc(2024, 3, 1)),
        ("15,45 9-17 * * *", utc(2024, 6, 1, 9, 50), utc(2024, 6, 1, 10, 15)),
        ("0 0 13 * 5", utc(2024, 7, 10), utc(2024, 7, 12)),
    ],
)
def test_next_after(expression: str, after: datetime, expected: datetime) -> None:
    assert schedule(expression).next_after(after) == expected


def test_next_after_keeps_the_kind_of_datetime() -> None:
    s = schedule("0 * * * *")
    assert s.next_after(datetime(2024, 1, 1, 10, 30)) == datetime(2024, 1, 1, 11)
    paris = timezone(timedelta(hours=1))
    assert s.next_after(datetime(2024, 1, 1, 10, 30, tzinfo=paris)) == utc(2024, 1, 1, 10)
    assert s.next_after(datetime(2024, 1, 1, 10, 30, tzinfo=paris)).tzinfo is UTC


@pytest.mark.parametrize("expression", ["0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 31 2 *"])
def test_next_after_raises_when_it_never_fires(expression: str) -> None:
    with pytest.raises(ValueError, match="never fires"):
        schedule(expression).next_after(utc(2024, 1, 1))
    assert schedule(expression).interval_minutes_min() is None


def test_next_after_near_the_end_of_time_raises_instead_of_overflowing() -> None:
    with pytest.raises(ValueError, match="never fires"):
        schedule("0 0 1 1 *").next_after(datetime(9999, 6, 1))


@pytest.mark.parametrize(
    ("expression", "minutes"),
    [
        ("*/5 * * * *", 5),
        ("*/4 * * * *", 4),
        ("* */3 * * *", 1),
        ("0 * * * *", 60),
        ("0,10 * * * *", 10),
        ("0,59 0,23 * * *", 1),  # 23:59 then 00:00 the next day
        ("50 23 * * *", 24 * 60),
        ("0 12 * * 1-5", 24 * 60),
        ("0 0 * * 0", 7 * 24 * 60),
        ("0 0 1 * *", 28 * 24 * 60),
        ("0 0 1,31 * *", 24 * 60),  # the 31st, then the 1st of the next month
        ("0 0 29 2 *", 1461 * 24 * 60),
    ],
)
def test_interval_minutes_min(expression: str, minutes: int) -> None:
    assert schedule(expression).interval_minutes_min() == minutes


# --- properties --------------------------------------------------------------------------


def _element(low: int, high: int) -> st.SearchStrategy[str]:
    value = st.integers(low, high)
    pair = st.tuples(value, value).map(sorted)
    step = st.integers(1, high - low + 2)
    return st.one_of(
        value.map(str),
        pair.map(lambda p: f"{p[0]}-{p[1]}"),
        st.tuples(pair, step).map(lambda t: f"{t[0][0]}-{t[0][1]}/{t[1]}"),
        step.map(lambda s: f"*/{s}"),
    )


def _field(low: int, high: int) -> st.SearchStrategy[str]:
    return st.one_of(
        st.just("*"), st.lists(_element(low, high), min_size=1, max_size=3).map(",".join)
    )


# Months that always have the days a schedule asks for keep every drawn schedule firing.
expressions = st.tuples(
    _field(0, 59), _field(0, 23), _field(1, 28), _field(1, 12), _field(0, 6)
).map(" ".join)
moments = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1)
) | st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)


@given(expressions, moments)
def test_next_after_is_the_first_later_firing(expression: str, when: datetime) -> None:
    s = schedule(expression)
    nxt = s.next_after(when)
    assert nxt > when
    assert s.matches(nxt)
    assert nxt.second == 0 and nxt.microsecond == 0
    if nxt - when <= timedelta(days=2):
        # No minute in between fires: checked by brute force when that is cheap.
        t = when.replace(second=0, microsecond=0) + timedelta(minutes=1)
        while t < nxt:
            assert not s.matches(t), t
            t += timedelta(minutes=1)


@given(expressions, moments)
def test_firings_are_never_closer_than_the_shortest_interval(
    expression: str, when: datetime
) -> None:
    s = schedule(expression)
    first = s.next_after(when)
    second = s.next_after(first)
    shortest = s.interval_minutes_min()
    assert shortest is not None
    assert second - first >= timedelta(minutes=shortest)


# --- actionlint corpus -------------------------------------------------------------------


def _crons(case: dict[str, Any]) -> list[tuple[int, str]]:
    """(line, expression) of every `on.schedule[].cron` in a case."""
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ReusedAnchorWarning)  # some cases test anchors
            doc = yaml.load(case["input"])
    except YAMLError:
        return []
    on = doc.get("on") if isinstance(doc, CommentedMap) else None
    entries = on.get("schedule") if isinstance(on, CommentedMap) else None
    if not isinstance(entries, CommentedSeq):
        return []
    return [
        (entry.lc.value("cron")[0] + 1, entry["cron"])
        for entry in entries
        if isinstance(entry, CommentedMap) and isinstance(entry.get("cron"), str)
    ]


def test_corpus_cron_expressions() -> None:
    cases: list[dict[str, Any]] = load_corpus("actionlint/cases.json")
    invalid = too_often = accepted = 0
    for case in cases:
        errors = {e["line"]: e.get("message") or "" for e in case["expected_errors"]}
        for line, expression in _crons(case):
            where = f"{case['id']}:{line} {expression!r}"
            message = errors.get(line)
            parsed = parse_cron(expression)
            if message is None:
                assert isinstance(parsed, CronSchedule), where
                shortest = parsed.interval_minutes_min()
                assert shortest is not None and shortest >= 5, where
                accepted += 1
            elif message.startswith("invalid CRON format"):
                assert isinstance(parsed, CronError), where
                invalid += 1
            elif message.startswith("scheduled job runs too frequently"):
                assert isinstance(parsed, CronSchedule), where
                shortest = parsed.interval_minutes_min()
                assert shortest is not None and shortest < 5, where
                assert f"once per {shortest * 60} seconds" in message, where
                too_often += 1
            elif message == "string should not be empty":
                assert isinstance(parsed, CronError), where
    assert (invalid, too_often) == (1, 2)
    assert accepted >= 8
