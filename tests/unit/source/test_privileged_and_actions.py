"""Pure parts of issue 4's triggers: every pull request action of the three forges maps to
GitHub's words; `pull_request_target` refuses checkouts of the pull request's code unless
the job opts in (`plan.trust`, `plan.compile`, lint); poll diffs (`engine.polling`)."""

from __future__ import annotations

import json
import textwrap

import pytest

from shipline.domain.source import ZERO_SHA, Forge
from shipline.engine.polling import ref_changes
from shipline.plan.compile import PlanError, compile_plan
from shipline.plan.events import Event
from shipline.plan.trust import names_pull_head, untrusted_checkouts
from shipline.scm.webhooks import Ignored, parse
from shipline.spec.workflow import load_workflow
from tests.fixtures.webhooks import payload

A, B, C = "a" * 40, "b" * 40, "c" * 40


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("opened", "opened"),
        ("synchronize", "synchronize"),
        ("reopened", "reopened"),
        ("closed", "closed"),
    ],
)
def test_github_pull_request_actions(raw: str, expected: str) -> None:
    data = json.loads(payload("github_pull_request", head=A, base=B))
    data["action"] = raw
    assert parse(Forge.GITHUB, "pull_request", json.dumps(data).encode()).action == expected


@pytest.mark.parametrize(
    ("raw", "oldrev", "expected"),
    [
        ("open", "", "opened"),
        ("update", B, "synchronize"),
        ("reopen", "", "reopened"),
        ("close", "", "closed"),
        ("merge", "", "closed"),
    ],
)
def test_gitlab_merge_request_actions(raw: str, oldrev: str, expected: str) -> None:
    data = json.loads(payload("gitlab_merge_request", head=A))
    data["object_attributes"]["action"] = raw
    if oldrev:
        data["object_attributes"]["oldrev"] = oldrev
    event = parse(Forge.GITLAB, "Merge Request Hook", json.dumps(data).encode())
    assert (event.action, event.ref) == (expected, "refs/merge-requests/1/head")


def test_a_gitlab_update_without_new_commits_starts_nothing() -> None:
    data = json.loads(payload("gitlab_merge_request", head=A))
    data["object_attributes"]["action"] = "update"  # a title or label change
    with pytest.raises(Ignored):
        parse(Forge.GITLAB, "Merge Request Hook", json.dumps(data).encode())


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("opened", "opened"),
        ("synchronized", "synchronize"),
        ("reopened", "reopened"),
        ("closed", "closed"),
    ],
)
def test_gitea_pull_request_actions(raw: str, expected: str) -> None:
    data = json.loads(payload("gitea_pull_request", head=A, base=B))
    data["action"] = raw
    assert parse(Forge.GITEA, "pull_request", json.dumps(data).encode()).action == expected


TARGET = """
    on: pull_request_target
    jobs:
      test:
        {flag}
        runs-on: ubuntu-latest
        steps:
          - uses: actions/checkout@v4
            with: {{ref: "{ref}"}}
          - run: make test
"""


def target_workflow(ref: str, flag: str = ""):  # type: ignore[no-untyped-def]
    spec, diagnostics = load_workflow(
        textwrap.dedent(TARGET.format(ref=ref, flag=flag)), ".shipline/workflows/t.yml"
    )
    assert spec is not None, [d.format() for d in diagnostics]
    return spec


def target_event() -> Event:
    return Event(
        name="pull_request_target",
        ref="refs/heads/main",
        sha=B,
        repository="app",
        actor="outsider",
        base_ref="main",
        head_ref="feature",
        action="opened",
    )


@pytest.mark.parametrize(
    "ref",
    [
        "${{ github.event.pull_request.head.sha }}",
        "${{ github.event.pull_request.head.ref }}",
        "${{ github.head_ref }}",
        "${{ github.event['pull_request']['head']['sha'] }}",
        "refs/pull/${{ github.event.number }}/merge",
        "refs/merge-requests/1/head",
    ],
)
def test_a_privileged_run_may_not_check_out_the_pull_requests_code(ref: str) -> None:
    spec = target_workflow(ref)
    (found,) = untrusted_checkouts(spec.jobs)
    assert (found.job, found.step, found.allowed) == ("test", 0, False)
    with pytest.raises(PlanError, match="unsafe_execute_untrusted_code: true"):
        compile_plan(spec, target_event())
    # the same workflow under `pull_request` (untrusted, no secrets) plans as usual
    plain = Event(name="pull_request", ref="refs/pull/1/head", sha=A, repository="app")
    assert compile_plan(spec, plain).jobs


def test_the_opt_in_lets_the_job_plan_and_is_kept_on_the_job() -> None:
    spec = target_workflow(
        "${{ github.event.pull_request.head.sha }}", flag="unsafe_execute_untrusted_code: true"
    )
    (found,) = untrusted_checkouts(spec.jobs)
    assert found.allowed
    (job,) = compile_plan(spec, target_event()).jobs
    assert job.spec.unsafe_execute_untrusted_code is True


def test_checking_out_the_base_is_fine() -> None:
    spec = target_workflow("${{ github.sha }}")
    assert untrusted_checkouts(spec.jobs) == []
    assert compile_plan(spec, target_event()).jobs


@pytest.mark.parametrize(
    ("value", "problem"),
    [("${{ inputs.unsafe }}", "not an expression"), ('"yes"', "must be a boolean")],
)
def test_lint_knows_the_flag_and_wants_a_literal_boolean(value: str, problem: str) -> None:
    text = textwrap.dedent(
        TARGET.format(ref="main", flag=f"unsafe_execute_untrusted_code: {value}")
    )
    _, diagnostics = load_workflow(text, "t.yml")
    messages = [d.message for d in diagnostics]
    assert any(problem in m and "unsafe_execute_untrusted_code" in m for m in messages), messages


def test_an_unknown_job_key_near_the_flag_is_named() -> None:
    text = textwrap.dedent(TARGET.format(ref="main", flag="unsafe_execute_untrusted: true"))
    _, diagnostics = load_workflow(text, "t.yml")
    assert any("unsafe_execute_untrusted_code" in (d.hint or d.message) for d in diagnostics)


@pytest.mark.parametrize(
    ("ref", "blocked"),
    [
        (A, True),
        (A[:8], True),
        ("feature", True),
        ("refs/heads/feature", True),
        ("refs/pull/1/head", True),
        ("pull/1/merge", True),
        ("main", False),
        (B, False),
        ("v1.0", False),
        ("", False),
    ],
)
def test_evaluated_refs_naming_the_head(ref: str, blocked: bool) -> None:
    assert names_pull_head(ref, A, "feature", 1) is blocked


def test_poll_diffs_are_ref_updates() -> None:
    before = {"refs/heads/main": A, "refs/heads/old": B, "refs/tags/v1": C}
    after = {"refs/heads/main": B, "refs/heads/new": C, "refs/tags/v1": C}
    changes = [(u.ref, u.change) for u in ref_changes(before, after)]
    assert changes == [
        ("refs/heads/main", "updated"),
        ("refs/heads/new", "created"),
        ("refs/heads/old", "deleted"),
    ]
    assert ref_changes(before, before) == []
    (created,) = ref_changes({}, {"refs/tags/v2": A})
    assert (created.old, created.new, created.kind) == (ZERO_SHA, A, "tag")
