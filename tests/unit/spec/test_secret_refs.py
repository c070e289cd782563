"""Which secrets a job names: the only ones the server delivers to it."""

from __future__ import annotations

import textwrap

import pytest

from shipline.spec.secret_refs import job_secret_references, may_reach_job_token
from shipline.spec.workflow import load_workflow


def refs(text: str, job: str = "j") -> tuple[set[str], bool]:
    spec, diagnostics = load_workflow(textwrap.dedent(text), "ci.yml")
    assert spec is not None, [d.format() for d in diagnostics]
    found = spec.job(job)
    assert found is not None
    result = job_secret_references(spec, found)
    return set(result.names), result.dynamic


def test_names_in_steps_env_with_if_outputs_and_workflow_env() -> None:
    names, dynamic = refs(
        """
        on: push
        env: {W: "${{ secrets.wf_level }}"}
        jobs:
          j:
            runs-on: x
            if: secrets.JOB_IF != ''
            env: {A: "${{ secrets.Job_Env }}"}
            outputs: {o: "${{ secrets.OUT }}"}
            steps:
              - run: echo "${{ secrets.IN_RUN }}"
                if: ${{ secrets['STEP_IF'] }}
                env: {B: "${{ format('{0}', secrets.STEP_ENV) }}"}
              - uses: actions/checkout@v4
                with: {token: "${{ secrets.WITH_TOKEN }}"}
              - run: echo "${{ github.token }} ${{ secrets.GITHUB_TOKEN }}"
          other:
            runs-on: x
            steps: [{run: "echo ${{ secrets.OTHER_JOB }}"}]
        """
    )
    assert names == {
        "WF_LEVEL",
        "JOB_IF",
        "JOB_ENV",
        "OUT",
        "IN_RUN",
        "STEP_IF",
        "STEP_ENV",
        "WITH_TOKEN",
    }
    assert not dynamic


def test_dynamic_access_is_reported_and_names_nothing() -> None:
    names, dynamic = refs(
        """
        on: push
        jobs:
          j:
            runs-on: x
            strategy: {matrix: {n: [A, B]}}
            steps:
              - run: echo "${{ secrets[matrix.n] }} ${{ toJSON(secrets) }}"
        """
    )
    assert names == set()
    assert dynamic


def test_a_job_without_secrets_names_none() -> None:
    names, dynamic = refs(
        """
        on: push
        jobs:
          j: {runs-on: x, steps: [{run: "echo secrets are ${{ github.sha }}"}]}
        """
    )
    assert (names, dynamic) == (set(), False)


@pytest.mark.parametrize(
    ("steps", "reachable"),
    [
        ('- run: echo "${{ github.sha }} ${{ secrets.DEPLOY_KEY }}"', False),
        ("- run: make\n  if: github.event_name == 'push'", False),
        ('- run: echo "${{ github.token }}"', True),
        ("- run: echo \"${{ github['TOKEN'] }}\"", True),
        ("- run: echo hi\n  env: {T: '${{ secrets.GITHUB_TOKEN }}'}", True),
        ("- run: echo hi\n  env: {T: '${{ secrets.github_token }}'}", True),
        ('- run: echo "${{ toJSON(github) }}"', True),
        ('- run: echo "${{ toJSON(secrets) }}"', True),
        ('- run: echo "${{ secrets[matrix.name] }}"', True),
        ('- run: echo "${{ github[matrix.key] }}"', True),
        ("- uses: actions/checkout@v4", True),
        ("- uses: shipline/deploy@v1\n  with: {environment: prod}", True),
    ],
)
def test_a_job_may_reach_its_token_only_through_an_action_or_an_expression(
    steps: str, reachable: bool
) -> None:
    """The embedded runner issues no job token to a job that cannot reach one."""
    body = textwrap.indent(steps, " " * 6)
    text = f"on: push\njobs:\n  j:\n    runs-on: x\n    steps:\n{body}\n"
    spec, diagnostics = load_workflow(text, "ci.yml")
    assert spec is not None, [d.format() for d in diagnostics]
    job = spec.job("j")
    assert job is not None
    assert may_reach_job_token(spec, job) is reachable


def test_the_workflow_env_and_a_job_output_can_reach_the_token_too() -> None:
    for text in (
        """
        on: push
        env: {T: "${{ github.token }}"}
        jobs: {j: {runs-on: x, steps: [{run: "echo $T"}]}}
        """,
        """
        on: push
        jobs:
          j:
            runs-on: x
            outputs: {t: "${{ secrets.GITHUB_TOKEN }}"}
            steps: [{run: "true"}]
        """,
    ):
        spec, diagnostics = load_workflow(textwrap.dedent(text), "ci.yml")
        assert spec is not None, [d.format() for d in diagnostics]
        job = spec.job("j")
        assert job is not None
        assert may_reach_job_token(spec, job)
