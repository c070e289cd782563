"""Signing in with a user name and password, and signing out."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from shipline.engine.errors import RateLimited, Unauthenticated
from shipline.server.deps import ServicesDep
from shipline.server.web.render import pages, path
from shipline.server.web.session import (
    CSRF_FIELD,
    LOGIN_COOKIE,
    CsrfRefused,
    Form,
    Viewer,
    clear_session,
    login_nonce,
    read_form,
    set_login_nonce,
    set_session,
)

router = APIRouter()


def _next(request: Request, wanted: str) -> str:
    """Where to go after signing in: a page of this dashboard, never another site."""
    root = request.scope.get("root_path", "")
    ok = (
        wanted.startswith(f"{root}/")
        and not wanted.startswith("//")
        and "\\" not in wanted
        and wanted.isprintable()
        and len(wanted) <= 2000
    )
    return wanted if ok else path(request, "projects")


def _form(request: Request, *, name: str = "", error: str = "", status: int = 200) -> Response:
    nonce, new = login_nonce(request)
    context = {
        "login_nonce": nonce,
        "name": name,
        "error": error,
        "next": _next(request, request.query_params.get("next", "")),
    }
    response = pages(request).render(request, "login.html", context, status=status)
    if new:
        set_login_nonce(response, request, nonce)
    return response


@router.get("/login", name="login")
def login_page(request: Request) -> Response:
    return _form(request)


@router.post("/login", name="login_submit")
async def login(request: Request, svc: ServicesDep) -> Response:
    form = await read_form(request)
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    if not cookie or not hmac.compare_digest(form.get(CSRF_FIELD, "").encode(), cookie.encode()):
        raise CsrfRefused
    name = form.get("name", "").strip()[:100]
    client = request.client.host if request.client is not None else "unknown"
    try:
        token, expires = await run_in_threadpool(
            svc.context.access.login, name, form.get("password", ""), client
        )
    except Unauthenticated:
        return _form(request, name=name, error="Wrong user name or password.", status=401)
    except RateLimited as exc:
        seconds = max(1, int(exc.retry_after.total_seconds() + 0.999))
        response = _form(
            request,
            name=name,
            error=f"Too many failed sign-ins: try again in {seconds} s.",
            status=429,
        )
        response.headers["Retry-After"] = str(seconds)
        return response
    response = RedirectResponse(_next(request, form.get("next", "")), status_code=303)
    set_session(response, request, token, expires - svc.context.clock.now())
    response.delete_cookie(LOGIN_COOKIE, path="/")
    return response


@router.post("/logout", name="logout")
async def logout(request: Request, who: Viewer, form: Form, svc: ServicesDep) -> Response:
    """Revokes the session's token, so that a copy of the cookie is worthless too."""
    await run_in_threadpool(svc.context.access.revoke_token, who, who.token_id)
    response = RedirectResponse(path(request, "login"), status_code=303)
    clear_session(response, request)
    return response
