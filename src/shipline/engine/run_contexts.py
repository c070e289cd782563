"""The expression contexts the server gives a run: `github` from the stored run, and the
contexts of a workflow's `concurrency` group."""

from __future__ import annotations

from collections.abc import Mapping

from shipline.domain.records import ProjectRecord, RunRecord
from shipline.plan.events import Event
from shipline.spec.expressions import evaluate_template, to_string, truthy


def _text(value: object, *keys: str) -> str | None:
    """`value[k1][k2]...` when it is a string, else None."""
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value if isinstance(value, str) else None


def run_event(run: RunRecord, project: ProjectRecord, payload: object) -> Event:
    inputs = run.inputs if isinstance(run.inputs, dict) else {}
    pull = run.event in ("pull_request", "pull_request_target")
    return Event(
        name=run.event,
        ref=run.ref,
        sha=run.sha,
        repository=project.name,
        actor=run.actor,
        before=_text(payload, "before"),
        head_ref=_text(payload, "pull_request", "head", "ref") if pull else None,
        base_ref=_text(payload, "pull_request", "base", "ref") if pull else None,
        action=_text(payload, "action"),
        inputs=tuple(inputs.items()),
        payload=payload,
    )


def github_context(run: RunRecord, project: ProjectRecord, payload: object) -> dict[str, object]:
    event = run_event(run, project, payload)
    return {
        "event_name": run.event,
        "event": payload if isinstance(payload, dict) else {},
        "sha": run.sha,
        "ref": run.ref,
        "ref_name": event.ref_name,
        "ref_type": event.ref_type,
        "head_ref": event.head_ref or "",
        "base_ref": event.base_ref or "",
        "repository": project.name,
        "repository_owner": project.name.split("/", 1)[0],
        "actor": run.actor,
        "triggering_actor": run.actor,
        "workflow": run.workflow_name,
        "run_id": str(run.id),
        "run_number": str(run.number),
        "run_attempt": str(run.attempt),
    }


def group_contexts(
    ref: str, sha: str, event: str, repository: str, actor: str, inputs: Mapping[str, object]
) -> dict[str, object]:
    ev = Event(name=event, ref=ref, sha=sha)
    github = {
        "ref": ref,
        "sha": sha,
        "event_name": event,
        "repository": repository,
        "actor": actor,
        "ref_name": ev.ref_name,
        "head_ref": "",
        "base_ref": "",
        "workflow": "",
    }
    return {"github": github, "inputs": dict(inputs), "vars": {}}


def evaluate_group(
    text: str,
    ref: str,
    sha: str,
    event: str,
    repository: str,
    actor: str,
    inputs: Mapping[str, object],
) -> str:
    """A workflow's concurrency group, evaluated with github, inputs and vars."""
    contexts = group_contexts(ref, sha, event, repository, actor, inputs)
    value = evaluate_template(text, contexts)  # type: ignore[arg-type]
    return value if isinstance(value, str) else to_string(value)


def evaluate_flag(value: bool | str, ref: str, event: str, inputs: Mapping[str, object]) -> bool:
    if isinstance(value, bool):
        return value
    contexts = group_contexts(ref, "", event, "", "", inputs)
    return truthy(evaluate_template(value, contexts))  # type: ignore[arg-type]
