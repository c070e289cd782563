"""The projects the signed-in user may see, and a project's overview: its workflows with
their latest run, and its runs with filters (branch, event, status, workflow) page by page.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from shipline.domain.records import Role
from shipline.domain.status import Status
from shipline.engine.errors import Invalid
from shipline.observe.dora import DEFAULT_PRODUCTION, Figures, Window, figures
from shipline.observe.history import deployment_facts
from shipline.server.deps import RequestId, Services, ServicesDep
from shipline.server.web.charts import deployments_chart, lead_time_chart
from shipline.server.web.render import NavItem, pages
from shipline.server.web.session import Viewer
from shipline.store.ports import RunFilter

router = APIRouter()
NAV = NavItem("Projects", "projects")

PAGE_SIZE = 25
Cursor = Annotated[str | None, Query(max_length=200)]
Text = Annotated[str, Query(max_length=255)]


@router.get("/", name="projects")
def projects_page(
    request: Request, who: Viewer, svc: ServicesDep, cursor: Cursor = None
) -> Response:
    page = svc.projects.visible(who, limit=PAGE_SIZE, cursor=cursor or None)
    context = {"projects": page.items, "next_cursor": page.next_cursor, "title": "Projects"}
    return pages(request).render(request, "projects.html", context)


WINDOWS = (7, 30, 90)
# Environment names: letters, digits, '.', '_', '-' (as `engine.environment_files` checks).
_ENVIRONMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")


def _production(value: str) -> frozenset[str]:
    names = frozenset(n.strip() for n in value.split(",") if n.strip())
    if not names:
        return DEFAULT_PRODUCTION
    bad = sorted(n for n in names if not _ENVIRONMENT.match(n))
    if bad or len(names) > 10:
        raise Invalid(
            "production is a comma-separated list of up to 10 environment names",
            field="production",
        )
    return names


def _dora(svc: Services, project_id: int, days: int, production: frozenset[str]) -> Figures:
    window = Window(svc.context.clock.now(), days)
    since = window.start - timedelta(days=1)  # started the day before, finished inside
    return figures(deployment_facts(svc.context.store, project_id, since), window, production)


def _status(value: str) -> Status | None:
    if not value:
        return None
    try:
        return Status(value)
    except ValueError as exc:
        raise Invalid(f"no such status {value!r}", field="status") from exc


@router.get("/projects/{name}", name="project")
async def project_page(
    request: Request,
    who: Viewer,
    svc: ServicesDep,
    request_id: RequestId,
    name: Annotated[str, Path(max_length=100)],
    branch: Text = "",
    event: Text = "",
    status: Text = "",
    workflow: Text = "",
    cursor: Cursor = None,
    days: Annotated[int, Query(ge=1, le=365)] = 30,
    production: Annotated[str, Query(max_length=500)] = "",
) -> Response:
    project = await run_in_threadpool(
        svc.projects.authorize, who, name, Role.VIEWER, action="project.read", request_id=request_id
    )
    flt = RunFilter(
        project_id=project.id,
        status=_status(status),
        ref=f"refs/heads/{branch}" if branch else None,
        event=event or None,
        workflow_file=workflow or None,
    )
    queries = svc.queries
    workflows = await run_in_threadpool(queries.workflows, project.id)
    runs = await run_in_threadpool(queries.runs_page, flt, limit=PAGE_SIZE, cursor=cursor or None)
    dora = await run_in_threadpool(_dora, svc, project.id, days, _production(production))
    context = {
        "title": project.name,
        "project": project,
        "workflows": workflows,
        "runs": runs.items,
        "next_cursor": runs.next_cursor,
        "filters": {"branch": branch, "event": event, "status": status, "workflow": workflow},
        "filtered": any((branch, event, status, workflow)),
        "statuses": [s.value for s in Status],
        "now": svc.context.clock.now(),
        "section": "overview",
        "dora": dora,
        "windows": WINDOWS,
        "production": ",".join(sorted(dora.environments)),
        "deploy_chart": deployments_chart(dora),
        "lead_chart": lead_time_chart(dora),
    }
    return pages(request).render(request, "project.html", context)
