"""A project's environments: the release each one runs, its deployment history (kind,
outcome with its reason, who, when), and the forms to roll back (to the previous release
or a chosen one) and to deploy a release again (a roll forward after a rollback).

Everything goes through `DeploymentService`, as `shipline deploy` / `rollback` and the API
do: it checks the caller is one of the environment's reviewers (maintainer and up), verifies
the release again and audits the request or its refusal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from shipline.domain.deployments import DeploymentKind, DeploymentState, ReleaseRecord
from shipline.domain.errors import ShiplineError
from shipline.domain.records import Role
from shipline.engine.deployments import DeploymentService, DeploymentView
from shipline.engine.errors import Conflict, Invalid
from shipline.engine.principal import Principal
from shipline.engine.rollouts import InstanceProbe, InstanceStatus
from shipline.server.deps import RequestId, Services, ServicesDep
from shipline.server.web.envview import Declared, declared
from shipline.server.web.render import pages, path
from shipline.server.web.session import Form, Viewer
from shipline.server.web.status import Badge

router = APIRouter()

ProjectName = Annotated[str, Path(max_length=100)]
Environment = Annotated[str, Path(min_length=1, max_length=100)]
# How much history the page reads (newest first) and shows per environment.
READ = 300
SHOWN = 25
# Seconds an environment's targets have to say which instances run.
PROBE = 3.0

_STATES = {
    DeploymentState.QUEUED: Badge("queued", "○", "Queued"),
    DeploymentState.IN_PROGRESS: Badge("running", "◔", "In progress"),
    DeploymentState.SUCCESS: Badge("success", "✓", "Success"),
    DeploymentState.FAILURE: Badge("failure", "✗", "Failed"),
    DeploymentState.ROLLED_BACK: Badge("failure", "↶", "Rolled back"),
    DeploymentState.SKIPPED: Badge("skipped", "↷", "Skipped"),
    DeploymentState.REFUSED: Badge("failure", "⊘", "Refused"),
}
KINDS = {
    DeploymentKind.DEPLOY: "deploy",
    DeploymentKind.ROLLBACK: "rollback",
    DeploymentKind.ROLL_FORWARD: "roll forward",
}


def state_badge(state: DeploymentState) -> Badge:
    return _STATES[state]


_INSTANCE_STATES = {
    "running": Badge("success", "●", "Running"),
    "starting": Badge("running", "◔", "Starting"),
    "backoff": Badge("failure", "✗", "Crashing (restarting)"),
    "stopping": Badge("skipped", "◌", "Stopping"),
    "stopped": Badge("skipped", "○", "Stopped"),
}


def instance_badge(state: str) -> Badge:
    return _INSTANCE_STATES.get(state, Badge("skipped", "?", state))


def deployments(svc: Services) -> DeploymentService:
    if svc.context.deployments is None:
        raise Conflict("this server deploys nothing")
    return svc.context.deployments


@dataclass
class EnvironmentView:
    """One environment as the page shows it."""

    name: str
    current: DeploymentView | None = None
    history: list[DeploymentView] = field(default_factory=list)
    # Releases that ran here successfully, newest first, other than the current one.
    earlier: list[ReleaseRecord] = field(default_factory=list)
    # Releases newer than the current one that ran here before (roll forward targets).
    newer: list[ReleaseRecord] = field(default_factory=list)
    # What its file declares (targets, strategy, health check, ...).
    declared: Declared | None = None
    # Its instances as the targets report them now (None: not asked or nothing runs).
    instances: tuple[InstanceStatus, ...] | None = None
    probe_error: str = ""

    @property
    def busy(self) -> bool:
        return any(not v.deployment.state.final for v in self.history)


def environment_views(history: Sequence[DeploymentView]) -> list[EnvironmentView]:
    """Group a project's history (newest first) by environment, production first."""
    found: dict[str, EnvironmentView] = {}
    for view in history:
        env = found.setdefault(
            view.deployment.environment, EnvironmentView(view.deployment.environment)
        )
        if len(env.history) < SHOWN:
            env.history.append(view)
        if view.deployment.state is DeploymentState.SUCCESS and env.current is None:
            env.current = view
    for env in found.values():
        current = env.current.release.id if env.current is not None else None
        seen: set[int] = set() if current is None else {current}
        for view in (v for v in history if v.deployment.environment == env.name):
            release = view.release
            if view.deployment.state is not DeploymentState.SUCCESS or release.id in seen:
                continue
            seen.add(release.id)
            if current is not None and release.id > current:
                env.newer.append(release)
            else:
                env.earlier.append(release)
    return sorted(found.values(), key=lambda e: (e.name.casefold() != "production", e.name))


def _history(svc: Services, who: Principal, name: str) -> list[DeploymentView]:
    service = deployments(svc)
    views: list[DeploymentView] = []
    cursor: str | None = None
    while len(views) < READ:
        page = service.history(who, name, None, limit=100, cursor=cursor)
        views.extend(page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    return views


def _page_context(
    request: Request, name: str, who: Principal, svc: Services, rid: str
) -> dict[str, object]:
    project = svc.projects.authorize(
        who, name, Role.VIEWER, action="deployment.list", request_id=rid
    )
    enabled = svc.context.deployments is not None
    views = environment_views(_history(svc, who, name)) if enabled else []
    if views:
        files = deployments(svc).environment_files(who, name, [v.name for v in views])
        for view in views:
            view.declared = declared(files[view.name])
    return {
        "title": f"Environments · {project.name}",
        "project": project,
        "section": "environments",
        "enabled": enabled,
        "environments": views,
        "can_deploy": svc.context.access.allows(who, project.id, Role.MAINTAINER),
        "state_badge": state_badge,
        "instance_badge": instance_badge,
        "kinds": KINDS,
        "queued": request.query_params.get("queued", "")[:20],
        "probed": svc.context.instances is not None,
    }


async def _probe(probe: InstanceProbe, project: str, view: EnvironmentView) -> None:
    """Ask the environment's targets which instances run; a target that does not answer
    in time is a line on the page, not an error."""
    try:
        view.instances = await asyncio.wait_for(probe.instances(project, view.name), PROBE)
    except TimeoutError:
        view.probe_error = f"the targets did not answer within {PROBE:g} s"
    except (ShiplineError, OSError, ValueError) as exc:
        view.probe_error = f"the targets could not be asked: {exc}"


@router.get("/projects/{name}/environments", name="environments")
async def environments_page(
    request: Request, name: ProjectName, who: Viewer, svc: ServicesDep, rid: RequestId
) -> Response:
    context = await run_in_threadpool(_page_context, request, name, who, svc, rid)
    probe = svc.context.instances
    views = context["environments"]
    assert isinstance(views, list)
    if probe is not None and views:
        await asyncio.gather(*(_probe(probe, name, view) for view in views))
    return pages(request).render(request, "environments.html", context)


def _release(form: dict[str, str], *, required: bool) -> int | None:
    value = form.get("release", "").strip()
    if not value and not required:
        return None
    if not value.isdigit() or not 1 <= int(value) < 2**63:
        raise Invalid("choose a release", field="release")
    return int(value)


def _back(request: Request, name: str, environment: str, deployment: int) -> Response:
    target = path(request, "environments", name=name)
    return RedirectResponse(f"{target}?queued={deployment}#env-{environment}", status_code=303)


@router.post("/projects/{name}/environments/{environment}/rollback", name="env_rollback")
async def rollback(
    request: Request,
    name: ProjectName,
    environment: Environment,
    who: Viewer,
    form: Form,
    svc: ServicesDep,
    rid: RequestId,
) -> Response:
    release = _release(form, required=False)
    queued = await run_in_threadpool(
        deployments(svc).rollback, who, name, environment, release, request_id=rid
    )
    return _back(request, name, environment, queued.id)


@router.post("/projects/{name}/environments/{environment}/deploy", name="env_deploy")
async def deploy(
    request: Request,
    name: ProjectName,
    environment: Environment,
    who: Viewer,
    form: Form,
    svc: ServicesDep,
    rid: RequestId,
) -> Response:
    release = _release(form, required=True)
    assert release is not None
    queued = await run_in_threadpool(
        deployments(svc).deploy, who, name, environment, release, request_id=rid
    )
    return _back(request, name, environment, queued.id)
