"""Cache scopes from a run's trust class. The trust class itself is decided by the server
from where the event came from (`plan.trust`), never from the workflow."""

from __future__ import annotations

from shipline.domain.records import Trust

UNTRUSTED_SCOPE_SUFFIX = "#untrusted"


def cache_scopes(
    project: str, ref: str, default_branch: str, trust: Trust
) -> tuple[str, tuple[str, ...]]:
    """Where a run's caches are saved, and which other scopes its restores may read.

    Scopes are (project, ref, trust class), decided here from what the server recorded —
    never from a cache key. An untrusted run saves only to its own scope, which no trusted
    run ever reads; it may restore the default branch's (trusted) entries. A trusted run
    reads its own ref's and the default branch's trusted entries: never one an untrusted
    run wrote, whatever key it chose (SECURITY-CASES 32, 33).
    """
    default = f"{project}@refs/heads/{default_branch}"
    own = f"{project}@{ref}"
    if trust is not Trust.TRUSTED:
        own += UNTRUSTED_SCOPE_SUFFIX
    return own, tuple(s for s in (default,) if s != own)
