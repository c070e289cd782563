"""The event that starts a run (push, pull_request, workflow_dispatch, schedule)."""

from __future__ import annotations

from dataclasses import dataclass, field

from shipline.spec.models import Data


@dataclass(frozen=True, slots=True)
class Event:
    """What happened, as far as workflows care.

    `ref` is the full ref (`refs/heads/main`, `refs/tags/v1`, `refs/pull/3/merge`);
    `changed_paths` None means unknown (path filters then let the workflow run);
    `payload` becomes `github.event`.
    """

    name: str
    ref: str
    sha: str
    repository: str = "local/repository"
    actor: str = "shipline"
    before: str | None = None
    base_ref: str | None = None
    head_ref: str | None = None
    action: str | None = None
    changed_paths: tuple[str, ...] | None = None
    inputs: tuple[tuple[str, Data], ...] = ()
    schedule: str | None = None
    payload: Data = field(default=None)

    @property
    def ref_name(self) -> str:
        for prefix in ("refs/heads/", "refs/tags/"):
            if self.ref.startswith(prefix):
                return self.ref[len(prefix) :]
        return self.ref

    @property
    def ref_type(self) -> str:
        return "tag" if self.ref.startswith("refs/tags/") else "branch"

    @property
    def is_tag(self) -> bool:
        return self.ref.startswith("refs/tags/")
