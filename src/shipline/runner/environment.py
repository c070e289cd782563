"""The default environment GitHub gives every step (CI=true, GITHUB_*, RUNNER_*), with
SHIPLINE_* twins."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from shipline.executors.base import JobEnv

if TYPE_CHECKING:
    from shipline.runner.model import JobAssignment

_FILES = {
    "output": "GITHUB_OUTPUT",
    "env": "GITHUB_ENV",
    "path": "GITHUB_PATH",
    "step_summary": "GITHUB_STEP_SUMMARY",
    "state": "GITHUB_STATE",
}


def default_env(
    job: JobAssignment, env: JobEnv, *, step_key: str, files: Mapping[str, Path]
) -> dict[str, str]:
    g = job.github
    event = job.event
    values: dict[str, str] = {
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKFLOW": str(g.get("workflow", "")),
        "GITHUB_WORKFLOW_REF": str(g.get("workflow_ref", "")),
        "GITHUB_RUN_ID": str(g.get("run_id", "")),
        "GITHUB_RUN_NUMBER": str(g.get("run_number", "")),
        "GITHUB_RUN_ATTEMPT": str(g.get("run_attempt", "1")),
        "GITHUB_JOB": job.planned.job_id,
        "GITHUB_ACTION": step_key,
        "GITHUB_ACTOR": str(g.get("actor", "")),
        "GITHUB_TRIGGERING_ACTOR": str(g.get("triggering_actor", "")),
        "GITHUB_REPOSITORY": str(g.get("repository", "")),
        "GITHUB_REPOSITORY_OWNER": str(g.get("repository_owner", "")),
        "GITHUB_EVENT_NAME": event.name,
        "GITHUB_EVENT_PATH": str(g.get("event_path", "")),
        "GITHUB_SHA": event.sha,
        "GITHUB_REF": event.ref,
        "GITHUB_REF_NAME": event.ref_name,
        "GITHUB_REF_TYPE": event.ref_type,
        "GITHUB_REF_PROTECTED": "false",
        "GITHUB_HEAD_REF": event.head_ref or "",
        "GITHUB_BASE_REF": event.base_ref or "",
        "GITHUB_SERVER_URL": str(g.get("server_url", "")),
        "GITHUB_API_URL": str(g.get("api_url", "")),
        "GITHUB_WORKSPACE": str(env.workspace),
        "RUNNER_OS": "Linux",
        "RUNNER_ARCH": "X64",
        "RUNNER_NAME": "shipline",
        "RUNNER_ENVIRONMENT": "self-hosted",
        "RUNNER_TEMP": str(env.temp),
        "RUNNER_TOOL_CACHE": str(env.tool_cache),
        "RUNNER_DEBUG": "1" if job.debug else "",
    }
    values.update(command_file_env(files))
    twins = {
        "SHIPLINE" + key[len("GITHUB") :]: value
        for key, value in values.items()
        if key.startswith("GITHUB_")
    }
    values.update(twins)
    values["SHIPLINE"] = "true"
    return values


def command_file_env(files: Mapping[str, Path]) -> dict[str, str]:
    """GITHUB_OUTPUT, GITHUB_ENV, ... for the step's command `files`, with SHIPLINE_* twins.

    The only part of `default_env` that changes from one step of a job to the next.
    """
    values: dict[str, str] = {}
    for kind, name in _FILES.items():
        if kind in files:
            path = str(files[kind])
            values[name] = path
            values["SHIPLINE" + name[len("GITHUB") :]] = path
    return values
