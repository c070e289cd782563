"""The errors services raise for their callers, each with a stable `code` for the API.

The server maps them to responses (`unauthenticated` → 401, `forbidden` → 403,
`not_found` → 404, `conflict` → 409, `invalid` → 422, `rate_limited` → 429); the CLI to
messages. Messages are for the user and never contain a secret.
"""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

from shipline.domain.errors import ShiplineError
from shipline.store import ports


class ServiceError(ShiplineError):
    """A request a service refuses; `code` is stable, `field` names the input at fault."""

    code: ClassVar[str] = "error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class Unauthenticated(ServiceError):
    """No credentials, or credentials that are not valid (here, now, for this endpoint).

    The message is the same whatever went wrong; `reason` says what, for logs and tests.
    """

    code = "unauthenticated"

    def __init__(self, reason: str, message: str = "invalid or missing credentials") -> None:
        super().__init__(message)
        self.reason = reason


class Forbidden(ServiceError):
    """Valid credentials that do not allow this action."""

    code = "forbidden"


class NotFound(ServiceError):
    """Nothing of that name or id that the caller may know about."""

    code = "not_found"


class Invalid(ServiceError):
    """Input that breaks a rule; `field` names it."""

    code = "invalid"


class Conflict(ServiceError, ports.Conflict):
    """Something with that name exists already (also a `store.ports.Conflict`)."""

    code = "conflict"


class RateLimited(ServiceError):
    """Too many attempts; try again after `retry_after`."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: timedelta) -> None:
        super().__init__(message)
        self.retry_after = retry_after
