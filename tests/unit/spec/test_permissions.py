"""`permissions:` as a job token's scopes (SECURITY-CASES 22): GitHub's rules, and the cap
for runs that are not trusted."""

from __future__ import annotations

import pytest

from shipline.spec.permissions import (
    DEFAULT,
    SCOPES,
    allows,
    effective_permissions,
    from_token_scopes,
    token_scopes,
)


def test_without_permissions_a_job_gets_the_defaults() -> None:
    assert effective_permissions(None, None, trusted=True) == DEFAULT
    assert DEFAULT["contents"] == "read" and DEFAULT["deployments"] == "write"
    assert DEFAULT["id-token"] == "none"


def test_scopes_the_workflow_does_not_name_are_none() -> None:
    levels = effective_permissions({"contents": "write"}, None, trusted=True)
    assert levels["contents"] == "write"
    assert {s for s, level in levels.items() if level != "none"} == {"contents"}


def test_the_jobs_permissions_replace_the_workflows() -> None:
    levels = effective_permissions("write-all", {"issues": "read"}, trusted=True)
    assert levels["issues"] == "read"
    assert levels["contents"] == "none"


def test_read_all_write_all_and_empty() -> None:
    assert set(effective_permissions("read-all", None, trusted=True).values()) == {"read", "none"}
    write_all = effective_permissions("write-all", None, trusted=True)
    assert write_all["contents"] == "write" and write_all["models"] == "read"
    assert set(effective_permissions({}, None, trusted=True).values()) == {"none"}


@pytest.mark.parametrize("value", ["write-all", {"contents": "write", "id-token": "write"}])
def test_an_untrusted_run_is_capped_at_read(value: object) -> None:
    levels = effective_permissions(value, None, trusted=False)
    assert "write" not in {level for scope, level in levels.items() if scope != "deployments"}
    assert levels["contents"] == "read"
    assert levels["id-token"] == "none"  # no `read` level: nothing


def test_deployments_are_left_to_the_environment_for_untrusted_runs() -> None:
    """An environment decides whether untrusted runs may deploy (`allow_untrusted`, never
    by default): the token keeps what the workflow says, nothing more."""
    assert effective_permissions(None, None, trusted=False)["deployments"] == "write"
    assert effective_permissions("write-all", None, trusted=False)["deployments"] == "write"
    no = effective_permissions({"contents": "write"}, None, trusted=False)
    assert no["deployments"] == "none"


def test_unknown_scopes_bad_levels_and_expressions_give_nothing() -> None:
    value = {"contents": "${{ inputs.level }}", "everything": "write", "issues": "Write"}
    assert set(effective_permissions(value, None, trusted=True).values()) == {"none"}
    assert set(effective_permissions("admin", None, trusted=True).values()) == {"none"}


def test_token_scopes_round_trip_and_write_implies_read() -> None:
    levels = effective_permissions({"contents": "write", "issues": "read"}, None, trusted=True)
    scopes = token_scopes(levels)
    assert len(scopes) == len(SCOPES) and "contents:write" in scopes
    assert from_token_scopes(scopes) == levels
    assert from_token_scopes(()) == DEFAULT  # a token issued before scopes existed
    assert allows(levels, "contents", "read") and allows(levels, "contents", "write")
    assert allows(levels, "issues", "read") and not allows(levels, "issues", "write")
    assert not allows(levels, "deployments", "read")
