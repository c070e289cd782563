"""DORA figures of a project's delivery, computed from its production deployments.

Pure: `figures(facts, window)` takes plain records and a window and returns the four
figures; nothing here reads a clock, a store or the environment (`observe.history` loads
the records through the store's ports). docs/dashboard.md defines each figure; in short,
over the deployments to production that *finished* inside the window:

- deployments per day: successful deployments (any kind) divided by the window's days,
  and their count per UTC day for the chart;
- lead time: for each successful change (a `deploy` or `roll_forward`, not a rollback),
  from its commit (when Shipline first saw it: the creation of the run that built the
  release) to the end of the deployment; the median is the figure;
- change failure rate: failed changes / changes, where a change is a `deploy` or
  `roll_forward` that ended `success`, `failure` or `rolled_back`, and a failed one
  ended `failure` or `rolled_back`, or succeeded and was the release a later `rollback`
  of the same environment replaced;
- time to restore: for each failed change, from when the failure began (the start of a
  deployment that failed or was rolled back automatically, the end of one that was later
  rolled back by hand) to when a healthy release served again (the end of an automatic
  rollback, else the end of the next successful deployment of that environment); the
  median is the figure, failures not restored yet are counted apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from statistics import median

from shipline.domain.deployments import DeploymentKind, DeploymentState

__all__ = [
    "DEFAULT_PRODUCTION",
    "DayCount",
    "DeploymentFact",
    "Figures",
    "Window",
    "figures",
    "is_production",
]

# The environment whose deployments count, unless the caller names others.
DEFAULT_PRODUCTION = frozenset({"production"})
_CHANGES = (DeploymentKind.DEPLOY, DeploymentKind.ROLL_FORWARD)
_FAILED = (DeploymentState.FAILURE, DeploymentState.ROLLED_BACK)
_ENDED = (DeploymentState.SUCCESS, *_FAILED)


@dataclass(frozen=True, slots=True)
class DeploymentFact:
    """What the figures need of one deployment (times timezone-aware UTC).

    `committed_at` is when its release's commit was first seen (None: unknown)."""

    id: int
    environment: str
    kind: DeploymentKind
    state: DeploymentState
    release_id: int
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    committed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Window:
    """The days ending at `end` (exclusive) over which the figures are computed."""

    end: datetime
    days: int = 30

    def __post_init__(self) -> None:
        if self.days < 1:
            raise ValueError("a window is at least one day")

    @property
    def start(self) -> datetime:
        return self.end - timedelta(days=self.days)

    def holds(self, moment: datetime | None) -> bool:
        return moment is not None and self.start <= moment < self.end


@dataclass(frozen=True, slots=True)
class DayCount:
    """Deployments to production that finished on one UTC day."""

    day: date
    succeeded: int
    failed: int


@dataclass(frozen=True, slots=True)
class Figures:
    """The four figures over a window; None where there was nothing to measure."""

    window: Window
    environments: frozenset[str]
    deployments: int
    per_day: float
    days: tuple[DayCount, ...]
    lead_times: tuple[timedelta, ...]
    lead_time: timedelta | None
    changes: int
    failed_changes: int
    change_failure_rate: float | None
    restore_times: tuple[timedelta, ...]
    time_to_restore: timedelta | None
    unrestored: int


def is_production(environment: str, production: Iterable[str] = DEFAULT_PRODUCTION) -> bool:
    """Whether deployments to `environment` count (names compare case-insensitively)."""
    return environment.casefold() in {name.casefold() for name in production}


def _median(values: Sequence[timedelta]) -> timedelta | None:
    if not values:
        return None
    return timedelta(seconds=median(v.total_seconds() for v in values))


def _ordered(facts: Iterable[DeploymentFact]) -> list[DeploymentFact]:
    return sorted(facts, key=lambda f: (f.finished_at or f.created_at, f.id))


def _rolled_back_by_hand(history: Sequence[DeploymentFact], index: int) -> bool:
    """Whether the next deployment of the environment that ended after `history[index]`
    (a success) is a rollback that succeeded: the release was taken back."""
    for later in history[index + 1 :]:
        if later.state in _ENDED:
            return later.kind is DeploymentKind.ROLLBACK and later.state is DeploymentState.SUCCESS
    return False


def _restored_at(history: Sequence[DeploymentFact], index: int, began: datetime) -> datetime | None:
    failed = history[index]
    if failed.state is DeploymentState.ROLLED_BACK:
        return failed.finished_at  # the controller put the previous release back
    for later in history[index + 1 :]:
        done = later.finished_at
        if later.state is DeploymentState.SUCCESS and done is not None and done >= began:
            return done
    return None


def figures(
    facts: Iterable[DeploymentFact],
    window: Window,
    production: Iterable[str] = DEFAULT_PRODUCTION,
) -> Figures:
    """The DORA figures of the production deployments among `facts` over `window`.

    `facts` may hold other environments and deployments outside the window (later ones
    tell whether a change was rolled back and when service was restored)."""
    names = frozenset(production)
    by_environment: dict[str, list[DeploymentFact]] = {}
    for fact in facts:
        if is_production(fact.environment, names) and fact.state.final:
            by_environment.setdefault(fact.environment, []).append(fact)

    succeeded: list[DeploymentFact] = []
    per_day: dict[date, list[int]] = {}
    lead_times: list[timedelta] = []
    changes = failed_changes = unrestored = 0
    restore_times: list[timedelta] = []
    for history in (_ordered(found) for found in by_environment.values()):
        for index, fact in enumerate(history):
            if not window.holds(fact.finished_at):
                continue
            assert fact.finished_at is not None
            counts = per_day.setdefault(fact.finished_at.date(), [0, 0])
            if fact.state is DeploymentState.SUCCESS:
                succeeded.append(fact)
                counts[0] += 1
            elif fact.state in _FAILED:
                counts[1] += 1
            if fact.kind not in _CHANGES or fact.state not in _ENDED:
                continue
            changes += 1
            if fact.state is DeploymentState.SUCCESS and fact.committed_at is not None:
                lead_times.append(max(timedelta(0), fact.finished_at - fact.committed_at))
            if fact.state in _FAILED:
                began = fact.started_at or fact.created_at
            elif _rolled_back_by_hand(history, index):
                began = fact.finished_at
            else:
                continue
            failed_changes += 1
            restored = _restored_at(history, index, began)
            if restored is None:
                unrestored += 1
            else:
                restore_times.append(max(timedelta(0), restored - began))

    first = window.start.date()
    days = tuple(
        DayCount(day, *per_day.get(day, [0, 0]))
        for day in (first + timedelta(days=n) for n in range(window.days + 1))
        if window.start.date() <= day <= (window.end - timedelta(microseconds=1)).date()
    )
    return Figures(
        window=window,
        environments=names,
        deployments=len(succeeded),
        per_day=len(succeeded) / window.days,
        days=days,
        lead_times=tuple(lead_times),
        lead_time=_median(lead_times),
        changes=changes,
        failed_changes=failed_changes,
        change_failure_rate=failed_changes / changes if changes else None,
        restore_times=tuple(restore_times),
        time_to_restore=_median(restore_times),
        unrestored=unrestored,
    )
