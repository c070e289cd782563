"""The signed-in user's API tokens: create one (its secret is shown once, on the page the
form returns, never again), list them, revoke one."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from shipline.engine.access import Principal
from shipline.engine.errors import Invalid
from shipline.server.deps import ServicesDep
from shipline.server.web.render import NavItem, pages, path
from shipline.server.web.session import Form, Viewer

router = APIRouter()
NAV = NavItem("Tokens", "tokens")
MAX_DAYS = 3650


def _page(
    request: Request,
    who: Principal,
    svc: ServicesDep,
    created: Mapping[str, object] | None = None,
    status: int = 200,
) -> Response:
    tokens = sorted(svc.context.access.list_tokens(who), key=lambda t: t.id, reverse=True)
    context = {
        "title": "API tokens",
        "tokens": tokens,
        "created": created,
        "now": svc.context.clock.now(),
    }
    return pages(request).render(request, "tokens.html", context, status=status)


@router.get("/tokens", name="tokens")
def tokens_page(request: Request, who: Viewer, svc: ServicesDep) -> Response:
    return _page(request, who, svc)


def _days(value: str) -> timedelta | None:
    if not value.strip():
        return None
    if not value.strip().isdigit() or not 1 <= int(value) <= MAX_DAYS:
        raise Invalid(
            f"expiry is a number of days from 1 to {MAX_DAYS}, or empty", field="expires_in_days"
        )
    return timedelta(days=int(value))


@router.post("/tokens", name="token_create")
async def create_token(request: Request, who: Viewer, form: Form, svc: ServicesDep) -> Response:
    plaintext, record = await run_in_threadpool(
        svc.context.access.create_token,
        who,
        form.get("name", ""),
        _days(form.get("expires_in_days", "")),
    )
    created = {"name": record.name, "token": plaintext, "expires_at": record.expires_at}
    return await run_in_threadpool(_page, request, who, svc, created, 201)


@router.post("/tokens/{token_id}/revoke", name="token_revoke")
async def revoke_token(
    request: Request,
    token_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    who: Viewer,
    form: Form,
    svc: ServicesDep,
) -> Response:
    await run_in_threadpool(svc.context.access.revoke_token, who, token_id)
    return RedirectResponse(path(request, "tokens"), status_code=303)
