"""The records the DORA figures are computed from, read through the store's ports: a
project's deployments since a moment (newest first, page by page) with, for each, when its
release's commit was first seen (the creation of the run that built it)."""

from __future__ import annotations

from datetime import datetime

from shipline.observe.dora import DeploymentFact
from shipline.store.ports import Store

__all__ = ["MAX_DEPLOYMENTS", "deployment_facts"]

# A project with more deployments than this in the window gets figures over the newest.
MAX_DEPLOYMENTS = 5000
_PAGE = 100


def deployment_facts(store: Store, project_id: int, since: datetime) -> list[DeploymentFact]:
    """The project's deployments created at or after `since`, in every environment."""
    facts: list[DeploymentFact] = []
    commits: dict[int, datetime | None] = {}
    cursor: str | None = None
    with store.transaction(write=False) as tx:
        while len(facts) < MAX_DEPLOYMENTS:
            page = tx.deployments.page(project_id, None, limit=_PAGE, cursor=cursor)
            for d in page.items:
                if d.created_at is None or d.created_at < since:
                    return facts
                if d.release_id not in commits:
                    release = tx.releases.get(d.release_id)
                    run = tx.runs.get(release.run_id) if release is not None else None
                    commits[d.release_id] = run.created_at if run is not None else None
                facts.append(
                    DeploymentFact(
                        id=d.id,
                        environment=d.environment,
                        kind=d.kind,
                        state=d.state,
                        release_id=d.release_id,
                        created_at=d.created_at,
                        started_at=d.started_at,
                        finished_at=d.finished_at,
                        committed_at=commits[d.release_id],
                    )
                )
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    return facts
