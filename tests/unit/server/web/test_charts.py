"""The DORA charts' geometry: bars in proportion on a round axis, in a fitting unit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shipline.domain.deployments import DeploymentKind, DeploymentState
from shipline.observe.dora import DeploymentFact, Window, figures
from shipline.server.web.charts import deployments_chart, lead_time_chart, unit_of

END = datetime(2026, 11, 27, tzinfo=UTC)


def fact(n: int, day: int, state: DeploymentState, lead: timedelta) -> DeploymentFact:
    done = datetime(2026, 11, day, 12, tzinfo=UTC)
    return DeploymentFact(
        n, "production", DeploymentKind.DEPLOY, state, n, done, done, done, done - lead
    )


def test_bars_stack_failed_on_succeeded_and_share_one_scale() -> None:
    ok, bad = DeploymentState.SUCCESS, DeploymentState.FAILURE
    facts = [fact(1, 24, ok, timedelta(hours=1)), fact(2, 24, ok, timedelta(hours=3))]
    facts += [fact(3, 24, bad, timedelta(0)), fact(4, 26, ok, timedelta(minutes=30))]
    chart = deployments_chart(figures(facts, Window(END, 7)))
    bars = {b.title: b for b in chart.bars}
    assert set(bars) == {
        "2026-11-24: 2 succeeded",
        "2026-11-24: 1 failed",
        "2026-11-26: 1 succeeded",
    }
    two, one_bad = bars["2026-11-24: 2 succeeded"], bars["2026-11-24: 1 failed"]
    assert two.height == 2 * bars["2026-11-26: 1 succeeded"].height
    assert one_bad.y + one_bad.height == two.y  # on top of it
    assert two.y + two.height == chart.baseline
    assert [label for _, label in chart.ticks] == ["0", "1", "2", "3"]

    lead = lead_time_chart(figures(facts, Window(END, 7)))
    assert [b.title for b in lead.bars] == [
        "change 1: 1 h 00 min",
        "change 2: 3 h 00 min",
        "change 3: 30 min 00 s",
    ]
    assert lead.ticks[-1][1].endswith(" h")


def test_the_unit_suits_the_longest_bar_and_an_empty_chart_has_an_axis() -> None:
    assert unit_of(timedelta(seconds=3)) == ("s", timedelta(seconds=1))
    assert unit_of(timedelta(minutes=5))[0] == "min"
    assert unit_of(timedelta(hours=30))[0] == "d"
    empty = figures([], Window(END, 30))
    chart = deployments_chart(empty)
    assert chart.bars == () and len(chart.labels) >= 5 and chart.ticks
    assert lead_time_chart(empty).bars == ()
