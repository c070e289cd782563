"""`triggered`: GitHub's `on:` filter rules for push, pull_request, dispatch and schedule."""

from __future__ import annotations

import textwrap

import pytest

from shipline.plan.events import Event
from shipline.plan.triggers import triggered
from shipline.spec.models import WorkflowSpec
from shipline.spec.workflow import load_workflow


def workflow(on: str) -> WorkflowSpec:
    text = textwrap.dedent(on) + textwrap.dedent("""
        jobs:
          a:
            runs-on: ubuntu-latest
            steps: [{run: echo}]
    """)
    spec, diagnostics = load_workflow(text, "w.yml")
    assert spec is not None, diagnostics
    return spec


def push(ref: str, paths: tuple[str, ...] | None = None) -> Event:
    return Event(name="push", ref=ref, sha="a" * 40, changed_paths=paths)


def pr(action: str | None, base: str = "main", paths: tuple[str, ...] | None = None) -> Event:
    return Event(
        name="pull_request",
        ref="refs/pull/3/merge",
        sha="b" * 40,
        action=action,
        base_ref=base,
        head_ref="feature",
        changed_paths=paths,
    )


def runs(wf: WorkflowSpec, event: Event) -> bool:
    return triggered(wf, event)[0]


def test_push_without_filters_runs_for_branches_and_tags() -> None:
    wf = workflow("on: push\n")
    assert triggered(wf, push("refs/heads/anything")) == (True, "")
    assert runs(wf, push("refs/tags/v1"))


def test_event_not_listened_to() -> None:
    ok, why = triggered(workflow("on: [push]\n"), pr("opened"))
    assert not ok
    assert "not triggered by pull_request" in why
    assert "on: push" in why


def test_only_branch_filters_skip_tag_pushes() -> None:
    wf = workflow("on:\n  push:\n    branches: [main]\n")
    assert runs(wf, push("refs/heads/main"))
    assert not runs(wf, push("refs/heads/dev"))
    ok, why = triggered(wf, push("refs/tags/main"))
    assert not ok
    assert "only branches" in why


def test_only_tag_filters_skip_branch_pushes() -> None:
    wf = workflow("on:\n  push:\n    tags: ['v*']\n")
    assert runs(wf, push("refs/tags/v1.2"))
    assert not runs(wf, push("refs/tags/release"))
    ok, why = triggered(wf, push("refs/heads/v1"))
    assert not ok
    assert "only tags" in why


def test_branches_ignore_counts_as_a_branch_filter() -> None:
    wf = workflow("on:\n  push:\n    branches-ignore: ['dependabot/**']\n")
    assert runs(wf, push("refs/heads/main"))
    assert not runs(wf, push("refs/heads/dependabot/pip/x"))
    assert not runs(wf, push("refs/tags/v1"))


def test_branch_and_tag_filters_each_apply_to_their_kind() -> None:
    wf = workflow("on:\n  push:\n    branches: [main]\n    tags: ['v*']\n")
    assert runs(wf, push("refs/heads/main"))
    assert runs(wf, push("refs/tags/v2"))
    assert not runs(wf, push("refs/heads/v2"))
    assert not runs(wf, push("refs/tags/main"))


def test_branch_patterns_with_negation() -> None:
    wf = workflow("on:\n  push:\n    branches: ['releases/**', '!releases/**-alpha']\n")
    assert runs(wf, push("refs/heads/releases/10"))
    assert not runs(wf, push("refs/heads/releases/10-alpha"))


def test_paths_filter_needs_one_matching_changed_path() -> None:
    wf = workflow("on:\n  push:\n    paths: ['src/**']\n")
    assert runs(wf, push("refs/heads/main", ("README.md", "src/a/b.py")))
    ok, why = triggered(wf, push("refs/heads/main", ("README.md", "docs/x.md")))
    assert not ok
    assert "paths" in why
    # Unknown changed paths (e.g. more than 1,000 commits) let the workflow run.
    assert runs(wf, push("refs/heads/main", None))


def test_paths_ignore_skips_only_when_every_path_is_ignored() -> None:
    wf = workflow("on:\n  push:\n    paths-ignore: ['docs/**']\n")
    assert not runs(wf, push("refs/heads/main", ("docs/a.md",)))
    assert runs(wf, push("refs/heads/main", ("docs/a.md", "src/x.py")))


def test_paths_are_not_evaluated_for_tags() -> None:
    wf = workflow("on:\n  push:\n    paths: ['src/**']\n")
    assert runs(wf, push("refs/tags/v1", ("README.md",)))
    tagged = workflow("on:\n  push:\n    tags: ['v*']\n    paths: ['src/**']\n")
    assert runs(tagged, push("refs/tags/v1", ("README.md",)))


@pytest.mark.parametrize("action", ["opened", "synchronize", "reopened"])
def test_pull_request_default_types_run(action: str) -> None:
    assert runs(workflow("on: pull_request\n"), pr(action))


@pytest.mark.parametrize("action", ["closed", "labeled", "edited", "ready_for_review"])
def test_pull_request_other_types_do_not_run_by_default(action: str) -> None:
    ok, why = triggered(workflow("on: pull_request\n"), pr(action))
    assert not ok
    assert action in why


def test_pull_request_explicit_types() -> None:
    wf = workflow("on:\n  pull_request:\n    types: [closed, labeled]\n")
    assert runs(wf, pr("closed"))
    assert runs(wf, pr("labeled"))
    assert not runs(wf, pr("opened"))


def test_pull_request_branches_filter_the_base_branch() -> None:
    wf = workflow("on:\n  pull_request:\n    branches: [main, 'releases/**']\n")
    assert runs(wf, pr("opened", base="main"))
    assert runs(wf, pr("opened", base="releases/1.0"))
    ok, why = triggered(wf, pr("opened", base="dev"))
    assert not ok
    assert "base branch dev" in why


def test_pull_request_branches_ignore() -> None:
    wf = workflow("on:\n  pull_request:\n    branches-ignore: ['mona/octocat']\n")
    assert not runs(wf, pr("opened", base="mona/octocat"))
    assert runs(wf, pr("opened", base="main"))


def test_pull_request_paths() -> None:
    wf = workflow("on:\n  pull_request:\n    paths: ['**.js']\n")
    assert runs(wf, pr("opened", paths=("app/x.js",)))
    assert not runs(wf, pr("opened", paths=("app/x.py",)))


def test_workflow_dispatch() -> None:
    wf = workflow("on:\n  workflow_dispatch:\n    inputs:\n      level: {default: info}\n")
    assert runs(wf, Event(name="workflow_dispatch", ref="refs/heads/main", sha="c" * 40))
    assert not runs(wf, push("refs/heads/main"))


def test_schedule_runs_only_for_its_own_crons() -> None:
    wf = workflow("on:\n  schedule:\n    - cron: '30 5 * * 1'\n    - cron: '0 0 * * *'\n")
    nightly = Event(name="schedule", ref="refs/heads/main", sha="d" * 40, schedule="0 0 * * *")
    assert runs(wf, nightly)
    other = Event(name="schedule", ref="refs/heads/main", sha="d" * 40, schedule="15 * * * *")
    ok, why = triggered(wf, other)
    assert not ok
    assert "15 * * * *" in why
