"""Signed-in browsers: the session cookie, who it stands for, and CSRF tokens for forms.

The session is an ordinary expiring user token from `AccessService.login`, kept in a cookie
that scripts cannot read (`HttpOnly`), that other sites' requests do not carry
(`SameSite=Lax`) and that travels only over TLS when the dashboard is served over TLS
(`Secure`). Signing out revokes the token.

Every form that changes something carries a CSRF token derived from the session token
(HMAC-SHA256 of it), checked in constant time before the action; a request without the
right one is refused (403) and audited. The sign-in form, before there is a session, uses
a random value held in a cookie of its own and repeated in the form (double submit).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from shipline.engine.access import Principal
from shipline.engine.errors import Forbidden, Invalid, Unauthenticated
from shipline.server.deps import Services, ServicesDep
from shipline.server.errors import request_id

SESSION_COOKIE = "shipline_session"
LOGIN_COOKIE = "shipline_login"
CSRF_FIELD = "csrf_token"
MAX_FORM_BYTES = 64 * 1024
LOGIN_COOKIE_SECONDS = 3600
_FORM_TYPE = "application/x-www-form-urlencoded"


class SignInRequired(Exception):
    """The page needs a signed-in user and there is none (or the session ended)."""


class CsrfRefused(Forbidden):
    """A form came without the CSRF token of the session (or of the sign-in form)."""

    def __init__(self) -> None:
        super().__init__(
            "this form has expired or did not come from this dashboard: reload the page "
            "and try again"
        )


def is_tls(request: Request) -> bool:
    """Whether the browser reached us over TLS (uvicorn sets the scheme from its own TLS
    or, behind a trusted proxy, from `X-Forwarded-Proto`)."""
    return request.url.scheme == "https"


def csrf_for(session_token: str) -> str:
    """The CSRF token of a session: only someone holding the session can compute it."""
    return hmac.new(session_token.encode(), b"shipline-dashboard-csrf", hashlib.sha256).hexdigest()


def set_session(response: Response, request: Request, token: str, lifetime: timedelta) -> None:
    """The session cookie, living as long as its token (relative: the browser's clock
    need not agree with the server's)."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max(1, int(lifetime.total_seconds())),
        path="/",
        secure=is_tls(request),
        httponly=True,
        samesite="lax",
    )


def clear_session(response: Response, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/", secure=is_tls(request), httponly=True, samesite="lax"
    )


def login_nonce(request: Request) -> tuple[str, bool]:
    """The sign-in form's CSRF value, and whether it is new (to be set as a cookie)."""
    current = request.cookies.get(LOGIN_COOKIE, "")
    if 20 <= len(current) <= 100:
        return current, False
    return secrets.token_urlsafe(32), True


def set_login_nonce(response: Response, request: Request, nonce: str) -> None:
    response.set_cookie(
        LOGIN_COOKIE,
        nonce,
        max_age=LOGIN_COOKIE_SECONDS,
        path="/",
        secure=is_tls(request),
        httponly=True,
        samesite="lax",
    )


async def read_form(request: Request) -> dict[str, str]:
    """The request's URL-encoded form (first value of each field): empty for another
    content type, `Invalid` for a body over 64 KiB."""
    cached = getattr(request.state, "form", None)
    if isinstance(cached, dict):
        return cached
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != _FORM_TYPE:
        return {}  # no form the dashboard sent: it has no CSRF token either
    body = b""
    async for part in request.stream():
        body += part
        if len(body) > MAX_FORM_BYTES:
            raise Invalid("the form is too large")
    fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    form = {name: values[0] for name, values in fields.items()}
    request.state.form = form
    return form


def _audit(svc: Services, request: Request, actor: str, action: str, reason: str) -> None:
    context = svc.context
    with context.store.transaction() as tx:
        tx.audit.append(
            actor=actor,
            action=action,
            now=context.clock.now(),
            decision="denied",
            target=f"{request.method} {request.url.path}"[:200],
            reason=reason,
            request_id=request_id(request),
        )


def viewer(request: Request, svc: ServicesDep) -> Principal:
    """The signed-in user; `SignInRequired` without a valid session (a refused cookie is
    audited like a refused API token)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise SignInRequired
    try:
        principal = svc.context.access.authenticate(token)
    except Unauthenticated as exc:
        _audit(svc, request, "anonymous", "authenticate", f"session cookie: {exc.reason}")
        raise SignInRequired from exc
    request.state.principal = principal
    request.state.csrf = csrf_for(token)
    return principal


Viewer = Annotated[Principal, Depends(viewer)]


async def checked_form(request: Request, who: Viewer, svc: ServicesDep) -> dict[str, str]:
    """The form of a state-changing request, once its CSRF token is the session's."""
    form = await read_form(request)
    expected = getattr(request.state, "csrf", "")
    given = form.get(CSRF_FIELD, "")
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        await run_in_threadpool(
            _audit, svc, request, who.user_name, "dashboard.csrf", "missing or wrong CSRF token"
        )
        raise CsrfRefused
    return form


Form = Annotated[dict[str, str], Depends(checked_form)]
