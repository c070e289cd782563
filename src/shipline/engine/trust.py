"""A run's trust class, decided by the server from the event (never from the workflow).

Code proposed in a pull request is untrusted whatever files it changes (SECURITY-CASES 1,
2): such a run receives no secrets. Everything else the server triggers (pushes, tags,
schedules, dispatches by a developer) runs code already in the repository.
"""

from __future__ import annotations

from shipline.domain.records import Trust

UNTRUSTED_EVENTS = frozenset({"pull_request"})


def trust_of(event: str) -> Trust:
    return Trust.UNTRUSTED if event in UNTRUSTED_EVENTS else Trust.TRUSTED
