"""`jobs.<id>.sandbox`: Shipline's extension key, read into the model and checked by lint."""

from __future__ import annotations

import textwrap

from shipline.spec.models import SandboxRequest
from shipline.spec.workflow import load_workflow
from tests.unit.spec._lint import at, errors, lint

JOB = """
on: push
jobs:
  build:
    runs-on: ubuntu-latest
    sandbox:
{sandbox}
    steps:
      - run: echo hi
"""


def workflow(sandbox: str) -> str:
    return JOB.format(sandbox=textwrap.indent(textwrap.dedent(sandbox).strip("\n"), " " * 6))


def test_a_valid_sandbox_section_is_read_into_the_job() -> None:
    text = workflow(
        """
        network: off
        memory: 1.5G
        processes: 256
        """
    )
    assert errors(lint(text)) == []
    spec, _ = load_workflow(textwrap.dedent(text).lstrip("\n"), "w.yml")
    assert spec is not None
    assert spec.jobs[0].sandbox == SandboxRequest(network=False, memory=3 << 29, processes=256)


def test_network_accepts_booleans_and_on_off() -> None:
    for value, expected in (("on", True), ("true", True), ("OFF", False), ("false", False)):
        spec, _ = load_workflow(
            textwrap.dedent(workflow(f"network: {value}")).lstrip("\n"), "w.yml"
        )
        assert spec is not None
        assert spec.jobs[0].sandbox == SandboxRequest(network=expected)


def test_mistakes_are_reported_where_they_are() -> None:
    found = lint(
        workflow(
            """
            network: maybe
            memory: 512
            processes: -3
            disk: 10G
            """
        )
    )
    assert "must be on or off" in at(found, 6, 16, "syntax-check").message
    memory = at(found, 7, 15, "syntax-check")
    assert "at least 4M" in memory.message
    assert "512M, not 512" in memory.hint
    assert "positive whole number" in at(found, 8, 18, "syntax-check").message
    assert 'unexpected key "disk" for "sandbox" section' in at(found, 9, 7, "syntax-check").message


def test_a_size_without_a_number_is_an_error() -> None:
    found = lint(workflow("memory: lots"))
    assert "must be a size like 512M or 2G" in at(found, 6, 15, "syntax-check").message


def test_values_cannot_be_expressions() -> None:
    found = lint(workflow("memory: ${{ matrix.mem }}"))
    assert "cannot be an expression" in at(found, 6, 15, "syntax-check").message


def test_sandbox_must_be_a_mapping() -> None:
    found = lint(JOB.format(sandbox="      - off").replace("sandbox:\n", "sandbox:\n"))
    assert any("sandbox" in e for e in errors(found))
