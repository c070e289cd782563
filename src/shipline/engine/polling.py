"""Polling: projects whose forge sends no webhooks set a poll interval; every server runs
a `Poller`, which fetches the remote into the project's mirror (`git fetch`, refs after
`--end-of-options`), compares its branches and tags with those seen at the last poll and
raises the same push events a push to a hosted repository raises (branch or tag created,
updated, deleted).

Many servers, one poll: each tick (the interval's slot in time) is claimed in the database
the way a schedule's tick is (`ScheduleStore.claim_fire`), so one server polls it; and the
refs seen are replaced by compare-and-swap (`PollStore.save`), so even a slow poll that
overlaps the next tick raises each change once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from shipline.domain.clock import Clock
from shipline.domain.errors import ShiplineError
from shipline.domain.records import ProjectRecord, RunRecord
from shipline.domain.source import ZERO_SHA
from shipline.engine.service import SourceRepository
from shipline.plan.protection import RefUpdate
from shipline.store.ports import Store

__all__ = ["POLL_ACTOR", "Poller", "ref_changes"]

log = logging.getLogger(__name__)

POLL_ACTOR = "poll"
# The name a poll tick is claimed under in the schedule firings.
_CLAIM_WORKFLOW = "(poll)"

# Raises the events of ref changes: `SourceService.pushed`.
RaisePushes = Callable[..., list[RunRecord]]


def ref_changes(before: Mapping[str, str], after: Mapping[str, str]) -> list[RefUpdate]:
    """The ref updates that turn `before` into `after` (ref -> commit), by ref name."""
    updates = []
    for ref in sorted(set(before) | set(after)):
        old, new = before.get(ref, ZERO_SHA), after.get(ref, ZERO_SHA)
        if old != new:
            updates.append(RefUpdate(ref=ref, old=old, new=new))
    return updates


class Poller:
    """Polls the projects that have a poll interval and raises their ref changes."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        repositories: Callable[[ProjectRecord], SourceRepository],
        raise_pushes: RaisePushes,
    ) -> None:
        self.store = store
        self.clock = clock
        self.repositories = repositories
        self.raise_pushes = raise_pushes
        self._slots: dict[int, int] = {}  # project id -> the last slot this server handled
        self._stopping = asyncio.Event()

    def tick(self) -> list[int]:
        """Poll every project whose next slot has come and this server claimed; the ids
        of the runs started."""
        now = self.clock.now()
        with self.store.transaction(write=False) as tx:
            states = tx.polls.all()
        created: list[int] = []
        for state in states:
            slot = int(now.timestamp()) // state.interval * state.interval
            if self._slots.get(state.project_id) == slot:
                continue
            self._slots[state.project_id] = slot
            with self.store.transaction() as tx:
                project = tx.projects.get_by_id(state.project_id)
                claimed = project is not None and tx.schedules.claim_fire(
                    state.project_id,
                    _CLAIM_WORKFLOW,
                    f"@every {state.interval}s",
                    datetime.fromtimestamp(slot, UTC),
                )
            if project is None or not claimed:
                continue
            try:
                created.extend(r.id for r in self.poll(project))
            except ShiplineError as exc:
                log.warning("polling project %s: %s", project.name, exc)
        return created

    def poll(self, project: ProjectRecord) -> list[RunRecord]:
        """Fetch the project's remote and raise what changed since the refs last saved."""
        repo = self.repositories(project)
        repo.fetch()
        current = repo.branches_and_tags()
        with self.store.transaction(write=False) as tx:
            state = tx.polls.get(project.id)
        if state is None:
            return []  # polling was switched off meanwhile
        with self.store.transaction() as tx:
            saved = tx.polls.save(
                project.id, current, generation=state.generation, now=self.clock.now()
            )
        if not saved or state.refs is None:
            return []  # another poll saved first, or this was the first look
        updates: Sequence[RefUpdate] = ref_changes(state.refs, current)
        if not updates:
            return []
        return self.raise_pushes(project, POLL_ACTOR, updates, action="source.poll", fetch=False)

    async def run(self, interval: float = 1.0) -> None:
        """Tick until `stop()`."""
        while not self._stopping.is_set():
            await asyncio.to_thread(self.tick)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), interval)

    def stop(self) -> None:
        self._stopping.set()
