"""The run's scheduling decisions, without processes: needs, if, matrix, fail-fast."""

from __future__ import annotations

import textwrap

from shipline.domain.status import Conclusion
from shipline.engine.dag import Finished, RunState, Skip, Start
from shipline.plan.compile import compile_plan
from shipline.plan.events import Event
from shipline.spec.workflow import load_workflow

EVENT = Event(name="push", ref="refs/heads/main", sha="0" * 40)


def state(text: str, **kwargs: object) -> RunState:
    spec, diagnostics = load_workflow(textwrap.dedent(text), "w.yml")
    assert spec is not None, diagnostics
    plan = compile_plan(spec, EVENT, **kwargs)  # type: ignore[arg-type]
    return RunState(plan, github={"ref": EVENT.ref, "event_name": "push"})


def started(decisions: list[Start | Skip]) -> list[str]:
    return [d.job.key for d in decisions if isinstance(d, Start)]


def skipped(decisions: list[Start | Skip]) -> dict[str, Conclusion]:
    return {d.job.key: d.conclusion for d in decisions if isinstance(d, Skip)}


def finish(
    s: RunState, key: str, conclusion: Conclusion = Conclusion.SUCCESS, **outputs: str
) -> list[Start | Skip]:
    job = s.running[key]
    s.record(Finished(key, job.job_id, conclusion, outputs))
    return s.decide()


CHAIN = """
    on: push
    jobs:
      a: {runs-on: x, steps: [{run: 'true'}]}
      b: {runs-on: x, needs: a, steps: [{run: 'true'}]}
      c: {runs-on: x, needs: [a], steps: [{run: 'true'}]}
      always: {runs-on: x, needs: b, if: always(), steps: [{run: 'true'}]}
      on-failure: {runs-on: x, needs: b, if: failure(), steps: [{run: 'true'}]}
"""


def test_jobs_start_as_soon_as_their_own_needs_finish() -> None:
    s = state(CHAIN)
    assert started(s.decide()) == ["a"]
    assert sorted(started(finish(s, "a"))) == ["b", "c"]
    assert s.decide() == []  # nothing new until something ends
    decisions = finish(s, "b")
    assert started(decisions) == ["always"]
    assert skipped(decisions) == {"on-failure": Conclusion.SKIPPED}
    finish(s, "c")
    finish(s, "always")
    assert s.finished()
    assert s.conclusion() is Conclusion.SUCCESS


def test_a_failed_need_skips_dependents_but_not_always_or_failure() -> None:
    s = state(CHAIN)
    s.decide()
    finish(s, "a")
    decisions = finish(s, "b", Conclusion.FAILURE)
    assert sorted(started(decisions)) == ["always", "on-failure"]
    assert s.needs_context(s.running["always"]) == {"b": {"result": "failure", "outputs": {}}}
    finish(s, "c")
    finish(s, "always")
    finish(s, "on-failure")
    assert s.conclusion() is Conclusion.FAILURE


def test_if_sees_needs_outputs_and_github() -> None:
    s = state("""
        on: push
        jobs:
          a: {runs-on: x, steps: [{run: 'true'}]}
          b:
            runs-on: x
            needs: a
            if: needs.a.outputs.go == 'yes' && github.ref == 'refs/heads/main'
            steps: [{run: 'true'}]
          c: {runs-on: x, needs: a, if: "needs.a.outputs.go == 'no'", steps: [{run: 'true'}]}
    """)
    s.decide()
    decisions = finish(s, "a", go="yes")
    assert started(decisions) == ["b"]
    assert skipped(decisions) == {"c": Conclusion.SKIPPED}


def test_fail_fast_cancels_the_other_cells() -> None:
    s = state("""
        on: push
        jobs:
          t:
            runs-on: x
            strategy: {matrix: {n: [1, 2, 3]}, max-parallel: 2}
            steps: [{run: 'true'}]
    """)
    assert started(s.decide()) == ["t (1)", "t (2)"]  # max-parallel holds the third back
    job = s.running["t (1)"]
    s.record(Finished(job.key, job.job_id, Conclusion.FAILURE))
    to_stop, cancelled = s.fail_fast(job)
    assert [j.key for j in to_stop] == ["t (2)"]
    assert [c.job.key for c in cancelled] == ["t (3)"]


def test_without_fail_fast_the_other_cells_go_on() -> None:
    s = state("""
        on: push
        jobs:
          t:
            runs-on: x
            strategy: {matrix: {n: [1, 2]}, fail-fast: false}
            steps: [{run: 'true'}]
    """)
    s.decide()
    job = s.running["t (1)"]
    s.record(Finished(job.key, job.job_id, Conclusion.FAILURE))
    assert s.fail_fast(job) == ([], [])


def test_dynamic_matrix_expands_from_outputs() -> None:
    s = state("""
        on: push
        jobs:
          setup: {runs-on: x, steps: [{run: 'true'}]}
          t:
            runs-on: x
            needs: setup
            strategy:
              matrix:
                v: ${{ fromJSON(needs.setup.outputs.versions) }}
            steps: [{run: 'true'}]
    """)
    s.decide()
    decisions = finish(s, "setup", versions='["3.11", "3.12"]')
    assert started(decisions) == ["t (3.11)", "t (3.12)"]


def test_a_bad_dynamic_matrix_fails_the_job() -> None:
    s = state("""
        on: push
        jobs:
          setup: {runs-on: x, steps: [{run: 'true'}]}
          t:
            runs-on: x
            needs: setup
            strategy: {matrix: {v: "${{ fromJSON(needs.setup.outputs.versions) }}"}}
            steps: [{run: 'true'}]
    """)
    s.decide()
    decisions = finish(s, "setup", versions="not json")
    assert skipped(decisions) == {"t": Conclusion.FAILURE}
    assert s.conclusion() is Conclusion.FAILURE


def test_cancelled_run_cancels_what_has_not_started() -> None:
    s = state(CHAIN)
    s.decide()
    assert [j.key for j in s.cancel()] == ["a"]
    decisions = finish(s, "a", Conclusion.CANCELLED)
    assert skipped(decisions)["b"] is Conclusion.CANCELLED
    assert started(decisions) == ["always"]  # always() runs even in a cancelled run
    assert s.conclusion() is Conclusion.CANCELLED


def test_needs_of_unselected_jobs_are_skipped() -> None:
    s = state(CHAIN, jobs=["a"])
    assert started(s.decide()) == ["a"]
    finish(s, "a")
    assert s.finished()
