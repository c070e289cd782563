"""`compile_plan`: DAG order, selections with `-j`/`--matrix`, digest, dynamic matrices."""

from __future__ import annotations

import textwrap

import pytest

from shipline.plan.compile import PlanError, compile_plan, topological_order
from shipline.plan.events import Event
from shipline.spec.models import WorkflowSpec
from shipline.spec.workflow import load_workflow

PUSH = Event(name="push", ref="refs/heads/main", sha="a" * 40)


def workflow(text: str) -> WorkflowSpec:
    spec, diagnostics = load_workflow(textwrap.dedent(text), "w.yml")
    assert spec is not None, diagnostics
    return spec


def jobs_yaml(**needs: list[str]) -> str:
    lines = ["on: push", "jobs:"]
    for job_id, job_needs in needs.items():
        lines += [f"  {job_id}:", "    runs-on: ubuntu-latest"]
        if job_needs:
            lines.append(f"    needs: [{', '.join(job_needs)}]")
        lines.append("    steps: [{run: echo " + job_id + "}]")
    return "\n".join(lines) + "\n"


def test_order_puts_needs_first() -> None:
    wf = workflow(jobs_yaml(deploy=["test", "build"], test=["build"], build=[], lint=[]))
    order = compile_plan(wf, PUSH).order
    assert sorted(order) == ["build", "deploy", "lint", "test"]
    assert order.index("build") < order.index("test") < order.index("deploy")


def test_independent_jobs_keep_file_order() -> None:
    wf = workflow(jobs_yaml(c=[], a=[], b=[]))
    assert topological_order(wf) == ("c", "a", "b")


def test_cycle_error_names_the_cycle() -> None:
    wf = workflow(jobs_yaml(start=[], a=["start", "c"], b=["a"], c=["b"]))
    with pytest.raises(PlanError) as info:
        compile_plan(wf, PUSH)
    message = str(info.value)
    assert "cycle" in message
    assert "a -> c -> b -> a" in message


def test_job_needing_itself_is_a_cycle() -> None:
    wf = workflow(jobs_yaml(a=["a"]))
    with pytest.raises(PlanError, match="a -> a"):
        compile_plan(wf, PUSH)


def test_unknown_need_is_named() -> None:
    wf = workflow(jobs_yaml(a=[], b=["missing"]))
    with pytest.raises(PlanError, match='job "b" needs job "missing", which does not exist'):
        compile_plan(wf, PUSH)


def test_select_job_keeps_its_needs_closure() -> None:
    wf = workflow(jobs_yaml(build=[], test=["build"], deploy=["test"], lint=[], docs=["lint"]))
    plan = compile_plan(wf, PUSH, jobs=["deploy"])
    assert [j.job_id for j in plan.jobs] == ["build", "test", "deploy"]
    assert dict(plan.not_selected) == {
        "lint": "not selected with -j",
        "docs": "not selected with -j",
    }


def test_select_unknown_job_is_an_error_listing_jobs() -> None:
    wf = workflow(jobs_yaml(build=[], test=["build"]))
    with pytest.raises(PlanError, match=r"no job nope in w\.yml \(jobs: build, test\)"):
        compile_plan(wf, PUSH, jobs=["nope"])


MATRIX = """
on: push
jobs:
  lint:
    runs-on: ubuntu-latest
    steps: [{run: ruff .}]
  test:
    runs-on: ubuntu-latest
    strategy:
      matrix:
        python-version: ["3.11", "3.12"]
        os: [ubuntu, macos]
    steps: [{run: pytest}]
  other:
    runs-on: ubuntu-latest
    strategy:
      matrix:
        node: [18, 20]
    steps: [{run: npm test}]
"""


def test_matrix_jobs_get_one_planned_job_per_cell() -> None:
    plan = compile_plan(workflow(MATRIX), PUSH)
    test = plan.jobs_of("test")
    assert [j.key for j in test] == [
        "test (3.11, ubuntu)",
        "test (3.11, macos)",
        "test (3.12, ubuntu)",
        "test (3.12, macos)",
    ]
    assert [j.matrix_index for j in test] == [0, 1, 2, 3]
    assert {j.matrix_total for j in test} == {4}
    assert test[1].matrix_dict == {"python-version": "3.11", "os": "macos"}
    assert [j.key for j in plan.jobs_of("lint")] == ["lint"]


def test_matrix_selector_filters_only_jobs_with_that_key() -> None:
    plan = compile_plan(workflow(MATRIX), PUSH, matrix=[("python-version", "3.12")])
    assert [j.key for j in plan.jobs] == [
        "lint",
        "test (3.12, ubuntu)",
        "test (3.12, macos)",
        "other (18)",
        "other (20)",
    ]
    assert {j.matrix_total for j in plan.jobs_of("test")} == {2}
    # The cells left out are named, so `plan` and `run` can say why they do not run.
    assert plan.not_selected == (
        ("test (3.11, ubuntu)", "not selected with --matrix"),
        ("test (3.11, macos)", "not selected with --matrix"),
    )


def test_matrix_selector_matching_no_cell_reports_not_selected() -> None:
    plan = compile_plan(workflow(MATRIX), PUSH, matrix=[("python-version", "2.7")])
    assert ("test", "no matrix cell matches --matrix") in plan.not_selected
    assert [j.key for j in plan.jobs] == ["lint", "other (18)", "other (20)"]


def test_nothing_left_is_an_error() -> None:
    wf = workflow(MATRIX)
    with pytest.raises(PlanError, match="nothing to run"):
        compile_plan(wf, PUSH, jobs=["test"], matrix=[("os", "windows")])


def test_empty_matrix_vector_is_a_plan_error_naming_the_job() -> None:
    wf = workflow("""
        on: push
        jobs:
          t:
            runs-on: ubuntu-latest
            strategy:
              matrix:
                os: []
            steps: [{run: echo}]
    """)
    with pytest.raises(PlanError, match='job "t": matrix vector "os" does not contain any values'):
        compile_plan(wf, PUSH)


def test_digest_is_stable_for_the_same_input() -> None:
    first = compile_plan(workflow(MATRIX), PUSH)
    second = compile_plan(workflow(MATRIX), PUSH)
    assert len(first.digest) == 64
    assert first.digest == second.digest


def test_digest_changes_with_a_step() -> None:
    before = compile_plan(workflow(MATRIX), PUSH)
    after = compile_plan(workflow(MATRIX.replace("run: pytest", "run: pytest -x")), PUSH)
    assert before.digest != after.digest


def test_digest_changes_with_the_event() -> None:
    other = Event(name="push", ref="refs/heads/main", sha="b" * 40)
    assert (
        compile_plan(workflow(MATRIX), PUSH).digest != compile_plan(workflow(MATRIX), other).digest
    )


def test_dynamic_matrix_is_left_for_the_engine() -> None:
    wf = workflow("""
        on: push
        jobs:
          a:
            runs-on: ubuntu-latest
            outputs:
              m: ${{ steps.s.outputs.m }}
            steps:
              - id: s
                run: echo 'm={"v":[1,2]}' >> "$GITHUB_OUTPUT"
          b:
            needs: a
            runs-on: ubuntu-latest
            strategy:
              matrix: ${{ fromJSON(needs.a.outputs.m) }}
            steps: [{run: echo}]
          c:
            needs: a
            runs-on: ubuntu-latest
            strategy:
              matrix:
                v: ${{ fromJSON(needs.a.outputs.m).v }}
            steps: [{run: echo}]
    """)
    plan = compile_plan(wf, PUSH, matrix=[("v", "1")])
    by_key = {j.key: j for j in plan.jobs}
    assert set(by_key) == {"a", "b", "c"}
    assert not by_key["a"].dynamic_matrix
    assert by_key["b"].dynamic_matrix
    assert by_key["c"].dynamic_matrix
    assert by_key["b"].needs == ("a",)
    assert plan.order == ("a", "b", "c")
