"""The values the deployment controller takes and returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Release:
    """One release ready to run: `directory` holds the unpacked (verified) artifact.

    `id` is unique per release (the control plane's release or deployment id), `version` is
    what humans read (a tag or a commit).
    """

    id: str
    version: str
    directory: Path


class Outcome:
    """How a rollout ended (`RolloutResult.outcome`)."""

    SUCCEEDED = "succeeded"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class RolloutResult:
    """What happened to one rollout.

    `outcome` is `succeeded`, `rolled_back` (the release failed and the environment is back
    on `rolled_back_to`), or `failed` (it failed and could not be rolled back: `reason`
    says why). `cause` is `hooks`, `health`, `analysis` or `target` when it failed.
    `serving` is the release id the environment serves afterwards (None: nothing).
    """

    environment: str
    release_id: str
    outcome: str
    reason: str | None = None
    cause: str | None = None
    rolled_back_to: str | None = None
    serving: str | None = None
    duration: float = 0.0
    events: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.outcome == Outcome.SUCCEEDED


class DeployFailure(Exception):
    """A batch failed: `cause` is `hooks`, `health`, `analysis` or `target`."""

    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause
        self.message = message
