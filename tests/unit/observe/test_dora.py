"""The DORA figures over hand-built deployments: which count, and how each is computed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shipline.domain.deployments import DeploymentKind, DeploymentState
from shipline.observe.dora import DeploymentFact, Window, figures, is_production

END = datetime(2026, 11, 27, 0, 0, tzinfo=UTC)
WINDOW = Window(END, days=7)
DEPLOY, ROLLBACK, FORWARD = (
    DeploymentKind.DEPLOY,
    DeploymentKind.ROLLBACK,
    DeploymentKind.ROLL_FORWARD,
)
OK, FAILED, ROLLED = DeploymentState.SUCCESS, DeploymentState.FAILURE, DeploymentState.ROLLED_BACK

_ids = iter(range(1, 10_000))


def fact(
    day: int,
    hour: int,
    *,
    state: DeploymentState = OK,
    kind: DeploymentKind = DEPLOY,
    environment: str = "production",
    minutes: int = 10,
    commit_hours_before: float | None = 2,
    release: int = 1,
) -> DeploymentFact:
    """A deployment started on 2026-11-`day` at `hour`:00 that took `minutes`."""
    started = datetime(2026, 11, day, hour, tzinfo=UTC)
    return DeploymentFact(
        id=next(_ids),
        environment=environment,
        kind=kind,
        state=state,
        release_id=release,
        created_at=started - timedelta(minutes=1),
        started_at=started,
        finished_at=started + timedelta(minutes=minutes),
        committed_at=(
            None if commit_hours_before is None else started - timedelta(hours=commit_hours_before)
        ),
    )


def test_nothing_deployed_gives_no_figures_but_a_row_per_day() -> None:
    found = figures([], WINDOW)
    assert (found.deployments, found.per_day, found.changes) == (0, 0.0, 0)
    assert found.lead_time is None and found.change_failure_rate is None
    assert found.time_to_restore is None and found.unrestored == 0
    assert [d.day.day for d in found.days] == [20, 21, 22, 23, 24, 25, 26]


def test_only_production_inside_the_window_counts() -> None:
    facts = [
        fact(21, 10),
        fact(21, 12),
        fact(24, 9, commit_hours_before=5),
        fact(22, 10, environment="staging"),
        fact(10, 10),  # before the window
        fact(27, 1),  # after its end
    ]
    found = figures(facts, WINDOW)
    assert found.deployments == 3
    assert found.per_day == pytest.approx(3 / 7)
    assert {d.day.day: d.succeeded for d in found.days if d.succeeded} == {21: 2, 24: 1}
    # lead times 2h10, 2h10, 5h10: the median is the middle one
    assert found.lead_time == timedelta(hours=2, minutes=10)
    assert found.change_failure_rate == 0.0


def test_production_is_named_case_insensitively_and_can_be_other_names() -> None:
    assert is_production("Production") and not is_production("staging")
    facts = [fact(22, 10, environment="live"), fact(22, 11)]
    assert figures(facts, WINDOW, production={"live"}).deployments == 1
    assert figures(facts, WINDOW, production={"live", "production"}).deployments == 2


def test_failed_and_automatically_rolled_back_changes_and_their_restore_times() -> None:
    facts = [
        fact(21, 10),
        # rolled back by the controller after 15 minutes: restored when it ended
        fact(22, 10, state=ROLLED, minutes=15),
        # failed at 10:00 on the 23rd; the next success ends at 13:10 the same day
        fact(23, 10, state=FAILED, minutes=5),
        fact(23, 13),
    ]
    found = figures(facts, WINDOW)
    assert (found.changes, found.failed_changes) == (4, 2)
    assert found.change_failure_rate == 0.5
    assert sorted(found.restore_times) == [timedelta(minutes=15), timedelta(hours=3, minutes=10)]
    assert found.time_to_restore == (timedelta(minutes=15) + timedelta(hours=3, minutes=10)) / 2
    assert {d.day.day: (d.succeeded, d.failed) for d in found.days if d.succeeded or d.failed} == {
        21: (1, 0),
        22: (0, 1),
        23: (1, 1),
    }
    # a failed change is not a deployment, and has no lead time
    assert found.deployments == 2 and len(found.lead_times) == 2


def test_a_release_rolled_back_by_hand_is_a_failed_change_and_rollbacks_are_not_changes() -> None:
    facts = [
        fact(21, 10, release=1),
        fact(22, 10, release=2),  # live at 10:10 on the 22nd ...
        fact(22, 11, kind=ROLLBACK, release=1, commit_hours_before=48),  # ... back at 11:10
        fact(23, 10, kind=FORWARD, release=3),
    ]
    found = figures(facts, WINDOW)
    assert found.deployments == 4  # every successful deployment, rollbacks too
    assert (found.changes, found.failed_changes) == (3, 1)
    assert found.change_failure_rate == pytest.approx(1 / 3)
    assert found.restore_times == (timedelta(hours=1),)
    assert len(found.lead_times) == 3  # not the rollback's old commit


def test_a_failure_not_restored_yet_is_counted_apart() -> None:
    found = figures([fact(21, 10), fact(25, 10, state=FAILED)], WINDOW)
    assert (found.failed_changes, found.unrestored, found.time_to_restore) == (1, 1, None)


def test_unfinished_deployments_and_unknown_commits_are_left_out() -> None:
    running = DeploymentFact(
        id=next(_ids),
        environment="production",
        kind=DEPLOY,
        state=DeploymentState.IN_PROGRESS,
        release_id=1,
        created_at=datetime(2026, 11, 24, tzinfo=UTC),
        started_at=datetime(2026, 11, 24, tzinfo=UTC),
    )
    found = figures([running, fact(24, 3, commit_hours_before=None)], WINDOW)
    assert (found.deployments, found.changes, found.lead_time) == (1, 1, None)


def test_a_window_has_at_least_one_day() -> None:
    with pytest.raises(ValueError):
        Window(END, days=0)
