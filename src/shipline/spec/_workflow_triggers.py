"""The `on:` section of a workflow: events, activity types, filters, schedules and inputs.

Split from `workflow.py` (which calls `TriggerReader.triggers`); every mistake becomes a
diagnostic through the shared `Reader`, with actionlint's rule names as codes (`events`
for trigger semantics, `syntax-check` for structure).
"""

from __future__ import annotations

import difflib

from shipline.spec._workflow_inputs import dispatch_inputs, workflow_call
from shipline.spec.models import DispatchInput, EventTrigger, RefFilters, Triggers
from shipline.spec.reader import Reader
from shipline.spec.yamlpos import Mapping, Node, Scalar, Sequence, describe

FILTER_KEYS = ("branches", "branches-ignore", "tags", "tags-ignore", "paths", "paths-ignore")
INPUT_TYPES = ("string", "boolean", "choice", "number", "environment")

# Events GitHub knows, with the activity types each accepts (None: no `types`).
EVENTS: dict[str, tuple[str, ...] | None] = {
    "branch_protection_rule": ("created", "edited", "deleted"),
    "check_run": ("created", "rerequested", "completed", "requested_action"),
    "check_suite": ("completed",),
    "create": None,
    "delete": None,
    "deployment": None,
    "deployment_status": None,
    "discussion": (
        "created",
        "edited",
        "deleted",
        "transferred",
        "pinned",
        "unpinned",
        "labeled",
        "unlabeled",
        "locked",
        "unlocked",
        "category_changed",
        "answered",
        "unanswered",
    ),
    "discussion_comment": ("created", "edited", "deleted"),
    "fork": None,
    "gollum": None,
    "image_version": ("created", "ready"),
    "issue_comment": ("created", "edited", "deleted"),
    "issues": (
        "opened",
        "edited",
        "deleted",
        "transferred",
        "pinned",
        "unpinned",
        "closed",
        "reopened",
        "assigned",
        "unassigned",
        "labeled",
        "unlabeled",
        "locked",
        "unlocked",
        "milestoned",
        "demilestoned",
        "typed",
        "untyped",
    ),
    "label": ("created", "edited", "deleted"),
    "merge_group": ("checks_requested",),
    "milestone": ("created", "closed", "opened", "edited", "deleted"),
    "page_build": None,
    "public": None,
    "project": ("created", "closed", "reopened", "edited", "deleted"),
    "project_card": ("created", "moved", "converted", "edited", "deleted"),
    "project_column": ("created", "updated", "moved", "deleted"),
    "pull_request": (
        "assigned",
        "unassigned",
        "labeled",
        "unlabeled",
        "opened",
        "edited",
        "closed",
        "reopened",
        "synchronize",
        "converted_to_draft",
        "ready_for_review",
        "locked",
        "unlocked",
        "review_requested",
        "review_request_removed",
        "auto_merge_enabled",
        "auto_merge_disabled",
        "milestoned",
        "demilestoned",
        "enqueued",
        "dequeued",
    ),
    "pull_request_review": ("submitted", "edited", "dismissed"),
    "pull_request_review_comment": ("created", "edited", "deleted"),
    "push": None,
    "registry_package": ("published", "updated"),
    "release": (
        "published",
        "unpublished",
        "created",
        "edited",
        "deleted",
        "prereleased",
        "released",
    ),
    "repository_dispatch": (),
    "schedule": None,
    "status": None,
    "watch": ("started",),
    "workflow_call": None,
    "workflow_dispatch": None,
    "workflow_run": ("completed", "requested", "in_progress"),
}
EVENTS["pull_request_target"] = EVENTS["pull_request"]

# Which filters each event accepts (the rest of `FILTER_KEYS` are reported as unavailable).
_EVENT_FILTERS: dict[str, tuple[str, ...]] = {
    "push": FILTER_KEYS,
    "pull_request": ("branches", "branches-ignore", "paths", "paths-ignore"),
    "pull_request_target": ("branches", "branches-ignore", "paths", "paths-ignore"),
    "merge_group": ("branches", "branches-ignore"),
    "workflow_run": ("branches", "branches-ignore"),
}
_FILTER_OWNERS = {
    "branches": "merge_group, push, pull_request, pull_request_target, workflow_run events",
    "branches-ignore": "merge_group, push, pull_request, pull_request_target, workflow_run events",
    "tags": "push event",
    "tags-ignore": "push event",
    "paths": "push, pull_request, pull_request_target events",
    "paths-ignore": "push, pull_request, pull_request_target events",
}
_EXTRA_KEYS: dict[str, tuple[str, ...]] = {
    "workflow_run": ("workflows",),
    "workflow_call": ("inputs", "outputs", "secrets"),
    "image_version": ("names", "versions"),
}
CALL_INPUT_TYPES = ("boolean", "number", "string")
MAX_DISPATCH_INPUTS = 25
_TZ_AREAS = frozenset(
    [
        "Africa",
        "America",
        "Antarctica",
        "Arctic",
        "Asia",
        "Atlantic",
        "Australia",
        "Brazil",
        "Canada",
        "Chile",
        "Etc",
        "Europe",
        "Indian",
        "Mexico",
        "Pacific",
        "US",
    ]
)


class TriggerReader:
    """Reads `on:` into `Triggers`, reporting every problem through `reader`."""

    def __init__(self, reader: Reader) -> None:
        self.r = reader

    def triggers(self, node: Node | None) -> Triggers:
        r = self.r
        if node is None:
            return Triggers()
        events: list[EventTrigger] = []
        inputs: tuple[DispatchInput, ...] = ()
        schedules: list[str] = []
        if isinstance(node, Scalar | Sequence):
            items = [node] if isinstance(node, Scalar) else node.items
            if isinstance(node, Sequence) and not node.items:
                r.error(node, '"on" section should not be empty', path="on")
            for i, item in enumerate(items):
                if isinstance(item, Scalar) and item.text == "":
                    r.error(item, "string should not be empty", path="on")
                    continue
                name = r.string(item, f"on[{i}]")
                if name == "schedule":
                    r.error(item, "schedule event must be configured with mapping")
                elif name is not None and self._known_event(item, name):
                    events.append(EventTrigger(name))
        elif isinstance(node, Mapping):
            if not node.pairs:
                r.error(node, '"on" section should not be empty', path="on")
            for key, value in node.pairs:
                name = key.text
                if not self._known_event(key, name):
                    continue
                path = f"on.{name}"
                if name == "schedule":
                    schedules.extend(self.schedules(value, path))
                    events.append(EventTrigger(name))
                elif name == "workflow_dispatch":
                    inputs = dispatch_inputs(r, key, value, path)
                    events.append(EventTrigger(name))
                elif name == "workflow_call":
                    workflow_call(r, value, path)
                    events.append(EventTrigger(name))
                else:
                    events.append(self.event(name, value, path))
        return Triggers(tuple(events), inputs, tuple(schedules))

    def _known_event(self, node: Node, name: str) -> bool:
        if name in EVENTS:
            return True
        close = difflib.get_close_matches(name, list(EVENTS), n=1)
        self.r.error(
            node,
            f'unknown Webhook event "{name}". see https://docs.github.com/en/'
            "actions/using-workflows/events-that-trigger-workflows#webhook-events "
            "for list of all Webhook event names",
            code="events",
            path=f"on.{name}",
            hint=f'did you mean "{close[0]}"?' if close else "",
        )
        return False

    def _non_empty_strings(
        self, node: Node | None, path: str, section: str
    ) -> tuple[str, ...] | None:
        """A string or a non-empty sequence of non-empty strings (filters, types, ...)."""
        r = self.r
        if node is None:
            return None
        if isinstance(node, Sequence) and not node.items:
            r.error(node, f'"{section}" section should not be empty', path=path)
            return ()
        items = node.items if isinstance(node, Sequence) else [node]
        for item in items:
            if isinstance(item, Scalar) and item.text == "":
                r.error(item, "string should not be empty", path=path)
        return r.strings(node, path)

    def event(self, name: str, node: Node, path: str) -> EventTrigger:
        r = self.r
        mapping = r.mapping(node, path, name)
        if mapping is None:
            return EventTrigger(name)
        activity = EVENTS.get(name)
        filters = _EVENT_FILTERS.get(name, ())
        allowed = [*(("types",) if activity is not None else ()), *filters]
        allowed += _EXTRA_KEYS.get(name, ())
        for key, _ in mapping.pairs:
            if key.text in FILTER_KEYS and key.text not in filters:
                r.error(
                    key,
                    f'"{key.text}" filter is not available for {name} event. '
                    f"it is only for {_FILTER_OWNERS[key.text]}",
                    code="events",
                    path=f"{path}.{key.text}",
                )
        r.check_keys(mapping, allowed, path, name, ignore=FILTER_KEYS)
        types_node = mapping.get("types")
        types = self._non_empty_strings(types_node, f"{path}.types", "types")
        if types and activity and types_node is not None:
            items = types_node.items if isinstance(types_node, Sequence) else [types_node]
            for item, value in zip(items, types, strict=False):
                if value not in activity:
                    r.error(
                        item,
                        f'invalid activity type "{value}" for "{name}" Webhook event. '
                        f"available types are {', '.join(repr(a) for a in activity)}",
                        code="events",
                        path=f"{path}.types",
                    )
        for extra in ("workflows", "names", "versions"):
            if extra in mapping and extra in allowed:
                value_node = mapping.get(extra)
                if isinstance(value_node, Scalar) and name == "image_version":
                    # GitHub accepts one string; actionlint asks for a list.
                    r.warning(
                        value_node,
                        f'"{extra}" section must be sequence node but got scalar node',
                        path=f"{path}.{extra}",
                    )
                else:
                    self._non_empty_strings(value_node, f"{path}.{extra}", extra)
        values = {k: self._non_empty_strings(mapping.get(k), f"{path}.{k}", k) for k in FILTER_KEYS}
        for a, b in (
            ("branches", "branches-ignore"),
            ("tags", "tags-ignore"),
            ("paths", "paths-ignore"),
        ):
            key_a, key_b = mapping.key_node(a), mapping.key_node(b)
            if values[a] is not None and values[b] is not None and key_a and key_b:
                later = key_a if (key_a.line, key_a.col) > (key_b.line, key_b.col) else key_b
                r.error(
                    later,
                    f'both "{a}" and "{b}" filters cannot be used for '
                    f"the same event \"{name}\". note: use '!' to negate patterns",
                    code="events",
                    path=f"{path}.{a}",
                )
        return EventTrigger(
            name,
            types,
            RefFilters(
                values["branches"],
                values["branches-ignore"],
                values["tags"],
                values["tags-ignore"],
                values["paths"],
                values["paths-ignore"],
            ),
        )

    def schedules(self, node: Node, path: str) -> list[str]:
        r = self.r
        if not isinstance(node, Sequence):
            r.error(
                node,
                f'"schedule" section must be a sequence, but it is {describe(node)}',
                code="events",
                path=path,
            )
            return []
        if not node.items:
            r.error(node, '"schedule" section should not be empty', path=path)
        out: list[str] = []
        for i, item in enumerate(node.items):
            mapping = r.mapping(item, f"{path}[{i}]", "schedule")
            if mapping is None:
                continue
            r.check_keys(
                mapping, ("cron", "timezone"), f"{path}[{i}]", "schedule", required=("cron",)
            )
            cron_node = mapping.get("cron")
            if isinstance(cron_node, Scalar) and cron_node.text == "":
                r.error(cron_node, "string should not be empty", path=f"{path}[{i}].cron")
                continue
            cron = r.string(cron_node, f"{path}[{i}].cron")
            if cron is not None:
                out.append(cron)
            self._timezone(mapping.get("timezone"), f"{path}[{i}].timezone")
        return out

    def _timezone(self, node: Node | None, path: str) -> None:
        if not isinstance(node, Scalar):
            return
        text = node.text
        if text == "":
            self.r.error(node, "string should not be empty", path=path)
            return
        area = text.split("/", 1)[0]
        if text not in ("UTC", "GMT") and ("/" not in text or area not in _TZ_AREAS):
            self.r.error(
                node,
                f'invalid timezone "{text}" in schedule event. it must be a valid IANA '
                "timezone name",
                code="events",
                path=path,
            )
