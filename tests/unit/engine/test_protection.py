"""Protection rules applied: refs, trust, freeze windows, reviewers."""

from __future__ import annotations

from datetime import UTC, datetime

from shipline.domain.records import Role, Trust
from shipline.engine.protection import freeze_until, may_review, ref_refusal, trust_refusal
from shipline.spec.environment_models import FreezeWindow, ProtectionRules, Reviewers


def test_refs_allowed_by_branch_and_tag_patterns() -> None:
    anything = ProtectionRules()
    assert ref_refusal(anything, "refs/heads/feature/x") is None
    rules = ProtectionRules(branches=("main", "release/*"), tags=None)
    assert ref_refusal(rules, "refs/heads/main") is None
    assert ref_refusal(rules, "refs/heads/release/1.2") is None
    refused = ref_refusal(rules, "refs/heads/feature/x")
    assert (
        refused
        == "branch 'feature/x' may not deploy here (allowed branch patterns: main, release/*)"
    )
    assert ref_refusal(rules, "refs/tags/v1") is not None  # no tag patterns: no tags
    assert ref_refusal(rules, "refs/pull/3/merge") is not None
    tags = ProtectionRules(tags=("v*", "!v*-rc*"))
    assert ref_refusal(tags, "refs/tags/v1.0") is None
    assert ref_refusal(tags, "refs/tags/v1.0-rc1") is not None
    assert ref_refusal(tags, "refs/heads/main") is not None


def test_untrusted_runs_never_deploy_unless_allowed() -> None:
    assert trust_refusal(ProtectionRules(), Trust.TRUSTED) is None
    assert "untrusted" in (trust_refusal(ProtectionRules(), Trust.UNTRUSTED) or "")
    assert trust_refusal(ProtectionRules(allow_untrusted=True), Trust.UNTRUSTED) is None


def test_freeze_windows_open_after_each_cron_firing_for_their_duration() -> None:
    # Fridays 18:00 UTC for 63 hours: until Monday 09:00.
    rules = ProtectionRules(freeze=(FreezeWindow("0 18 * * 5", 63 * 3600),))
    friday_noon = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)  # a Friday
    assert freeze_until(rules, friday_noon) is None
    saturday = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    assert freeze_until(rules, saturday) == datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    monday = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    assert freeze_until(rules, monday) is None
    assert freeze_until(ProtectionRules(), saturday) is None


def test_reviewers_by_user_or_role_default_maintainers() -> None:
    default = ProtectionRules()
    assert may_review(default, "m", Role.MAINTAINER, False)
    assert not may_review(default, "d", Role.DEVELOPER, False)
    assert may_review(default, "root", None, True)
    named = ProtectionRules(reviewers=Reviewers(users=("bob",), roles=(), required=1))
    assert may_review(named, "bob", Role.VIEWER, False)
    assert not may_review(named, "carol", Role.MAINTAINER, False)
    devs = ProtectionRules(reviewers=Reviewers(roles=("developer",), required=2))
    assert may_review(devs, "d", Role.DEVELOPER, False)
    assert not may_review(devs, "v", Role.VIEWER, False)
