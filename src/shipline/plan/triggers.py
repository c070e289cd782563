"""Does an event start a workflow? GitHub's `on:` rules, with the reason when it doesn't."""

from __future__ import annotations

from shipline.plan.events import Event
from shipline.spec.filters import paths_allowed, ref_allowed
from shipline.spec.models import WorkflowSpec

# Activity types a pull_request trigger listens to when `types` is not given.
DEFAULT_PR_TYPES = ("opened", "synchronize", "reopened")


def triggered(workflow: WorkflowSpec, event: Event) -> tuple[bool, str]:
    """(True, "") when `event` starts `workflow`, else (False, why not)."""
    trigger = workflow.triggers.get(event.name)
    if trigger is None:
        listens = ", ".join(e.name for e in workflow.triggers.events) or "nothing"
        return False, f"the workflow is not triggered by {event.name} (on: {listens})"
    f = trigger.filters
    if event.name == "push":
        has_branch = f.branches is not None or f.branches_ignore is not None
        has_tag = f.tags is not None or f.tags_ignore is not None
        if event.is_tag:
            if has_branch and not has_tag:
                return False, "push filters name only branches, and this is a tag"
            if has_tag and not ref_allowed(event.ref_name, f.tags, f.tags_ignore):
                return False, f"tag {event.ref_name} does not match the tags filters"
            # Path filters are not evaluated for pushes of tags.
            return True, ""
        if has_tag and not has_branch:
            return False, "push filters name only tags, and this is a branch"
        if has_branch and not ref_allowed(event.ref_name, f.branches, f.branches_ignore):
            return False, f"branch {event.ref_name} does not match the branches filters"
        if not paths_allowed(event.changed_paths, f.paths, f.paths_ignore):
            return False, "no changed path matches the paths filters"
        return True, ""
    if event.name in ("pull_request", "pull_request_target"):
        types = trigger.types or DEFAULT_PR_TYPES
        if event.action and event.action not in types:
            return False, f"pull request activity {event.action} is not in types {list(types)}"
        base = event.base_ref or event.ref_name
        if not ref_allowed(base, f.branches, f.branches_ignore):
            return False, f"base branch {base} does not match the branches filters"
        if not paths_allowed(event.changed_paths, f.paths, f.paths_ignore):
            return False, "no changed path matches the paths filters"
        return True, ""
    if (
        event.name == "schedule"
        and event.schedule is not None
        and event.schedule not in workflow.triggers.schedules
    ):
        return False, f"no schedule {event.schedule!r} in this workflow"
    if trigger.types and event.action and event.action not in trigger.types:
        return False, f"activity {event.action} is not in types {list(trigger.types)}"
    return True, ""
