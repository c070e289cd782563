"""`on.schedule` evaluated by the server: each cron fires a run of its workflow on the
project's default branch.

The next firing time is computed from "now" whenever a schedule is (re)loaded, so ticks
missed while the server was down are not replayed in a burst: after a restart each schedule
fires at its next due time, once. Schedules are read from the default branch's workflow
files, refreshed every `refresh` seconds. Every server runs a scheduler; each tick is
claimed in the database (`ScheduleStore.claim_fire`), so it starts one run, not one per
server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from shipline.domain.clock import Clock
from shipline.domain.errors import ShiplineError
from shipline.domain.records import ProjectRecord
from shipline.engine.service import RunService, SourceRepository, TriggerRequest
from shipline.spec.cron import CronSchedule, parse_cron
from shipline.spec.workflow import load_workflow
from shipline.store.ports import Store

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Entry:
    """One cron of one workflow of one project, and when it fires next."""

    project_id: int
    workflow: str
    cron: CronSchedule
    next_at: datetime


class Scheduler:
    """Keeps the schedules of every project and triggers the runs that are due."""

    def __init__(
        self,
        store: Store,
        runs: RunService,
        clock: Clock,
        repositories: Callable[[ProjectRecord], SourceRepository],
        *,
        refresh: float = 60.0,
    ) -> None:
        self.store = store
        self.runs = runs
        self.clock = clock
        self.repositories = repositories
        self.refresh = refresh
        self.entries: dict[tuple[int, str, str], Entry] = {}
        self._stopping = asyncio.Event()

    def load(self) -> None:
        """Read every project's schedules at its default branch; keep the next firing time
        of schedules that did not change, compute it from now for new ones."""
        now = self.clock.now()
        found: dict[tuple[int, str, str], Entry] = {}
        for project in self._projects():
            try:
                for workflow, cron in self._schedules(project):
                    key = (project.id, workflow, cron.expression)
                    old = self.entries.get(key)
                    found[key] = old or Entry(project.id, workflow, cron, cron.next_after(now))
            except (ShiplineError, ValueError) as exc:
                log.warning("schedules of project %s: %s", project.name, exc)
        self.entries = found

    def _projects(self) -> list[ProjectRecord]:
        projects: list[ProjectRecord] = []
        cursor: str | None = None
        with self.store.transaction() as tx:
            while True:
                page = tx.projects.page(limit=200, cursor=cursor)
                projects.extend(page.items)
                if page.next_cursor is None:
                    return projects
                cursor = page.next_cursor

    def _schedules(self, project: ProjectRecord) -> list[tuple[str, CronSchedule]]:
        repo = self.repositories(project)
        repo.fetch()
        _, sha = repo.resolve(project.default_branch)
        out: list[tuple[str, CronSchedule]] = []
        for path in repo.workflow_files(sha):
            spec, _ = load_workflow(repo.read(sha, path), path)
            if spec is None:
                continue
            for expression in spec.triggers.schedules:
                cron = parse_cron(expression)
                if isinstance(cron, CronSchedule):
                    out.append((path, cron))
        return out

    def tick(self) -> list[int]:
        """Trigger every schedule that is due; returns the ids of the runs created."""
        now = self.clock.now()
        created: list[int] = []
        for entry in list(self.entries.values()):
            if entry.next_at > now:
                continue
            due = entry.next_at
            # The next firing after now, not after the missed one: no burst of catch-ups.
            entry.next_at = entry.cron.next_after(now)
            with self.store.transaction() as tx:
                project = tx.projects.get_by_id(entry.project_id)
                # Servers sharing the database: the first to claim this tick fires it.
                claimed = project is not None and tx.schedules.claim_fire(
                    project.id, entry.workflow, entry.cron.expression, due
                )
            if project is None or not claimed:
                continue
            try:
                runs = self.runs.trigger(
                    project,
                    TriggerRequest(
                        ref=project.default_branch, workflow=entry.workflow, event="schedule"
                    ),
                    actor="schedule",
                )
            except ShiplineError as exc:
                log.warning("schedule %s of %s: %s", entry.cron.expression, entry.workflow, exc)
                continue
            created.extend(r.id for r in runs)
        return created

    async def run(self, interval: float = 1.0) -> None:
        """Load and tick until `stop()`; reload every `refresh` seconds."""
        loop = asyncio.get_running_loop()
        loaded_at = -self.refresh
        while not self._stopping.is_set():
            if loop.time() - loaded_at >= self.refresh:
                await asyncio.to_thread(self.load)
                loaded_at = loop.time()
            await asyncio.to_thread(self.tick)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), interval)

    def stop(self) -> None:
        self._stopping.set()
