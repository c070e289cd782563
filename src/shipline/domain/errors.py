"""Errors that cross layers.

Exceptions are for broken infrastructure and for input a user must fix; lint and
validation return diagnostics instead of raising.
"""

from __future__ import annotations


class ShiplineError(Exception):
    """Base of every error Shipline raises on purpose; its message is for the user."""


class UsageError(ShiplineError):
    """The user asked for something that cannot be done as asked (exit code 2)."""


class WorkflowError(ShiplineError):
    """A workflow file is invalid; `diagnostics` says where and why (exit code 2)."""

    def __init__(self, message: str, diagnostics: list[object] | None = None) -> None:
        super().__init__(message)
        self.diagnostics = diagnostics or []
