"""The demo's report: its status, its `--json` document, and why a run failed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shipline.demo.session import Demo, DemoOptions, DemoReport, Service


def report(conclusion: str | None, served: str | None) -> DemoReport:
    out = DemoReport(state_dir=Path("/s"), server_url="http://h:1", commit="a" * 40)
    out.run_id, out.run_number, out.conclusion = 7, 3, conclusion
    out.services = {
        "staging": Service("staging", "http://h:2/", "rolling", served),
        "production": Service("production", "http://h:3/", "canary", "a" * 12),
    }
    return out


def test_success_needs_the_run_and_both_services() -> None:
    assert report("success", "a" * 12).status == "success"
    assert report("success", "old").status == "failure"
    assert report("failure", "a" * 12).status == "failure"
    assert report(None, None).status == "in_progress"
    errored = report("success", "a" * 12)
    errored.error = "boom"
    assert errored.status == "failure"


def test_the_json_document() -> None:
    document = report("success", "a" * 12).to_json()
    assert document["version"] == "aaaaaaaaaaaa"
    assert document["run"] == {
        "id": 7,
        "number": 3,
        "url": "http://h:1/ui/runs/7",
        "conclusion": "success",
    }
    assert document["approval"]["command"] == "shipline approve 7 --env production"
    assert document["services"]["staging"] == {
        "url": "http://h:2/",
        "strategy": "rolling",
        "version": "aaaaaaaaaaaa",
    }
    assert set(document) == {
        "status",
        "error",
        "state_dir",
        "server_url",
        "dashboard",
        "project",
        "repository",
        "commit",
        "version",
        "run",
        "approval",
        "services",
    }


def test_why_jobs_failed() -> None:
    demo = Demo(DemoOptions(Path("/s")), lambda _line: None)
    step: dict[str, Any] = {"name": "Run the unit tests", "conclusion": "failure", "exit_code": 1}
    run = {
        "jobs": [
            {"name": "lint", "conclusion": "success", "steps": []},
            {"name": "test (unit)", "conclusion": "failure", "error": None, "steps": [step]},
            {"name": "build", "conclusion": "skipped", "steps": []},
            {"name": "production", "conclusion": "failure", "error": "rejected by bob: no"},
        ]
    }
    assert demo.failed_jobs(run) == [
        "test (unit): step 'Run the unit tests' failure (exit code 1)",
        "production: rejected by bob: no",
    ]
