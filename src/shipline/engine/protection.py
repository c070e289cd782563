"""The protection rules of an environment, applied: which refs may deploy, whether a
freeze window is open, who may review. Pure functions over `ProtectionRules`."""

from __future__ import annotations

from datetime import datetime, timedelta

from shipline.domain.records import Role, Trust
from shipline.spec.cron import CronSchedule, parse_cron
from shipline.spec.environment_models import ProtectionRules, Reviewers
from shipline.spec.filters import match_patterns

DEFAULT_REVIEWERS = Reviewers(roles=("maintainer",), required=1)


def ref_refusal(rules: ProtectionRules, ref: str) -> str | None:
    """Why `ref` (`refs/heads/x`, `refs/tags/y`) may not deploy, or None when it may.

    With neither `branches` nor `tags` every ref may; once one is set, a ref must match the
    patterns of its kind (a kind without patterns never deploys)."""
    if rules.branches is None and rules.tags is None:
        return None
    if ref.startswith("refs/heads/"):
        name, patterns, kind = ref.removeprefix("refs/heads/"), rules.branches, "branch"
    elif ref.startswith("refs/tags/"):
        name, patterns, kind = ref.removeprefix("refs/tags/"), rules.tags, "tag"
    else:
        return f"ref {ref!r} is neither a branch nor a tag"
    if patterns is None or not match_patterns(name, patterns):
        allowed = ", ".join(patterns or ()) or "none"
        return f"{kind} {name!r} may not deploy here (allowed {kind} patterns: {allowed})"
    return None


def trust_refusal(rules: ProtectionRules, trust: Trust) -> str | None:
    """Why a run of this trust class may not deploy (untrusted: never, by default)."""
    if trust is Trust.TRUSTED or rules.allow_untrusted:
        return None
    return (
        "the run is untrusted (a pull request): its code may not deploy to this environment "
        "(protection.allow_untrusted is false)"
    )


def freeze_until(rules: ProtectionRules, now: datetime) -> datetime | None:
    """When the freeze window open at `now` ends (the latest end of those open), or None."""
    end: datetime | None = None
    for window in rules.freeze:
        schedule = parse_cron(window.cron)
        if not isinstance(schedule, CronSchedule):
            continue  # the loader refused invalid expressions already
        length = timedelta(seconds=window.duration)
        # A firing in (now - duration, now] opens a window that is still open.
        start = schedule.next_after(now - length - timedelta(minutes=1))
        while start <= now:
            if start + length > now and (end is None or start + length > end):
                end = start + length
            start = schedule.next_after(start)
    return end


def reviewers(rules: ProtectionRules) -> Reviewers | None:
    """Who must approve (None: nobody needs to)."""
    return rules.reviewers


def may_review(rules: ProtectionRules, user: str, role: Role | None, is_admin: bool) -> bool:
    """Whether `user` (with `role` in the project) is one of the environment's reviewers."""
    wanted = rules.reviewers or DEFAULT_REVIEWERS
    if user in wanted.users:
        return True
    have = Role.ADMIN if is_admin else role
    return have is not None and any(have.allows(Role(r)) for r in wanted.roles)
