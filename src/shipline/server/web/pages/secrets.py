"""A project's secrets: names, scopes (the project or one environment), who changed each and
when; a form to set one and a form to delete one. No value is ever sent to the browser: the
set form's value field is a password input that the answer (a redirect) never fills, and
`SecretService` returns no values at all. It checks roles (list: developer, set and delete:
maintainer) and audits every change."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from shipline.domain.records import Role
from shipline.server.deps import RequestId, ServicesDep
from shipline.server.web.render import pages, path
from shipline.server.web.session import Form, Viewer

router = APIRouter()

ProjectName = Annotated[str, Path(max_length=100)]


@router.get("/projects/{name}/secrets", name="secrets")
def secrets_page(
    request: Request, name: ProjectName, who: Viewer, svc: ServicesDep, rid: RequestId
) -> Response:
    listed = svc.secrets.list(who, name, request_id=rid)
    project = svc.projects.authorize(who, name, Role.DEVELOPER, action="secret.list")
    context = {
        "title": f"Secrets · {project.name}",
        "project": project,
        "section": "secrets",
        "secrets": sorted(listed, key=lambda s: (s.environment, s.name)),
        "can_change": svc.context.access.allows(who, project.id, Role.MAINTAINER),
        "done": request.query_params.get("done", "")[:300],
    }
    return pages(request).render(request, "secrets.html", context)


def _back(request: Request, name: str, message: str) -> Response:
    target = f"{path(request, 'secrets', name=name)}?{urlencode({'done': message})}"
    return RedirectResponse(target, status_code=303)


@router.post("/projects/{name}/secrets", name="secret_set")
async def set_secret(
    request: Request, name: ProjectName, who: Viewer, form: Form, svc: ServicesDep, rid: RequestId
) -> Response:
    info, created = await run_in_threadpool(
        svc.secrets.set,
        who,
        name,
        form.get("name", "").strip(),
        form.get("value", ""),
        environment=form.get("environment", "").strip(),
        request_id=rid,
    )
    scope = f" for environment {info.environment}" if info.environment else ""
    return _back(request, name, f"{info.name}{scope} {'created' if created else 'replaced'}")


@router.post("/projects/{name}/secrets/delete", name="secret_delete")
async def delete_secret(
    request: Request, name: ProjectName, who: Viewer, form: Form, svc: ServicesDep, rid: RequestId
) -> Response:
    secret, environment = form.get("name", ""), form.get("environment", "")
    await run_in_threadpool(
        svc.secrets.remove, who, name, secret, environment=environment, request_id=rid
    )
    scope = f" for environment {environment}" if environment else ""
    return _back(request, name, f"{secret}{scope} deleted")
