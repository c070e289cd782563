"""Protection decisions for one ref update (`plan.protection.refusal`)."""

from __future__ import annotations

from shipline.plan.protection import Grant, RefUpdate, refusal

A, B, Z = "a" * 40, "b" * 40, "0" * 40
MAIN = Grant("branch", "main", "maintainer", may_push=True)
RELEASES = Grant("branch", "release/*", "maintainer", may_push=False)
TAGS = Grant("tag", "v*", "admin", may_push=True, allow_deletion=True)


def test_unprotected_refs_may_be_created_moved_forced_and_deleted() -> None:
    for old, new, ff in ((Z, A, None), (A, B, True), (A, B, False), (A, Z, None)):
        assert refusal(RefUpdate("refs/heads/feature", old, new), [MAIN], fast_forward=ff) is None


def test_a_protected_branch_takes_fast_forwards_only() -> None:
    assert refusal(RefUpdate("refs/heads/main", A, B), [MAIN], fast_forward=True) is None
    forced = refusal(RefUpdate("refs/heads/main", A, B), [MAIN], fast_forward=False)
    assert (
        forced
        == "branch main is protected: force-pushes (updates that are not fast-forwards) are refused"
    )
    deleted = refusal(RefUpdate("refs/heads/main", A, Z), [MAIN], fast_forward=None)
    assert deleted == "branch main is protected: it cannot be deleted"


def test_who_may_push_is_the_grant_s_decision() -> None:
    reason = refusal(RefUpdate("refs/heads/release/1.0", A, B), [RELEASES], fast_forward=True)
    assert (
        reason
        == "branch release/1.0 is protected: pushing to it needs the maintainer role (rule 'release/*')"
    )
    assert refusal(RefUpdate("refs/heads/release", A, B), [RELEASES], fast_forward=True) is None


def test_rules_combine_strictly() -> None:
    lenient = Grant("branch", "ma*", "developer", may_push=True, allow_force_push=True)
    assert refusal(RefUpdate("refs/heads/main", A, B), [lenient], fast_forward=False) is None
    assert refusal(RefUpdate("refs/heads/main", A, B), [lenient, MAIN], fast_forward=False)


def test_tags_moving_counts_as_force_and_deletion_follows_the_rule() -> None:
    assert refusal(RefUpdate("refs/tags/v1", Z, A), [TAGS], fast_forward=None) is None
    moved = refusal(RefUpdate("refs/tags/v1", A, B), [TAGS], fast_forward=True)
    assert moved is not None and "force-pushes" in moved
    assert refusal(RefUpdate("refs/tags/v1", A, Z), [TAGS], fast_forward=None) is None
    # a branch rule does not protect a tag of the same name
    assert refusal(RefUpdate("refs/tags/main", A, B), [MAIN], fast_forward=False) is None


def test_refs_outside_branches_and_tags_are_never_pushable() -> None:
    for ref in ("refs/pull/1/head", "refs/notes/commits", "HEAD"):
        reason = refusal(RefUpdate(ref, Z, A), [], fast_forward=None)
        assert reason is not None and "only branches" in reason


def test_grants_survive_their_json_form() -> None:
    for grant in (MAIN, RELEASES, TAGS):
        assert Grant.from_json(grant.to_json()) == grant
