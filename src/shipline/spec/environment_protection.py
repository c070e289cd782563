"""The protection rules of an environment file, read for the control plane.

`load_protection(text, file)` reads the file's `protection:` section into
`ProtectionRules` (the other sections belong to the deployment controller's parser,
`spec.environment`); an error makes the rules None, and the diagnostics name the place.

    protection:
      reviewers: {users: [alice], roles: [maintainer], required: 1}
      prevent_self_review: true          # default
      branches: [main, "release/*"]      # refs/heads/... allowed to deploy (absent: any)
      tags: ["v*"]                       # refs/tags/... allowed to deploy (absent: any)
      wait_timer: 5m                     # after approval; seconds, or 30s / 5m / 2h
      freeze:                            # no deployment starts inside these windows (UTC)
        - {cron: "0 18 * * 5", duration: 63h}
      allow_untrusted: false             # default: pull-request runs never deploy

Pure: no I/O, no clock.
"""

from __future__ import annotations

import re

from shipline.spec.cron import CronError, parse_cron
from shipline.spec.diagnostics import Diagnostic, Severity
from shipline.spec.environment_models import FreezeWindow, ProtectionRules, Reviewers
from shipline.spec.filters import validate_pattern
from shipline.spec.models import Pos
from shipline.spec.reader import Reader
from shipline.spec.yamlpos import Mapping, Node, Scalar, describe, parse_yaml

__all__ = ["REVIEWER_ROLES", "load_protection", "parse_duration"]

REVIEWER_ROLES = ("developer", "maintainer", "admin")
_KEYS = (
    "reviewers",
    "prevent_self_review",
    "branches",
    "tags",
    "wait_timer",
    "freeze",
    "allow_untrusted",
)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h|d)?\Z")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
# GitHub's wait timer is at most 30 days; a longer one is surely a mistake.
MAX_DURATION = 30 * 86400


def parse_duration(value: object) -> float | None:
    """Seconds from a number or `30s` / `5m` / `2h` / `1d`; None when it is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value >= 0 else None
    if isinstance(value, str):
        match = _DURATION.match(value.strip())
        if match:
            return float(match.group(1)) * _UNIT[match.group(2)]
    return None


class _Protection:
    def __init__(self, reader: Reader) -> None:
        self.r = reader

    def duration(self, node: Node | None, path: str) -> float | None:
        if node is None:
            return None
        seconds = parse_duration(node.value if isinstance(node, Scalar) else None)
        if seconds is None or seconds > MAX_DURATION:
            self.r.error(
                node,
                f'"{path}" must be a duration (seconds, or a number with s, m, h or d) of at '
                f"most 30 days, but it is {describe(node)}",
                path=path,
            )
        return seconds

    def boolean(self, node: Node | None, path: str, default: bool) -> bool:
        if node is None:
            return default
        if isinstance(node, Scalar) and isinstance(node.value, bool):
            return node.value
        self.r.error(node, f'"{path}" must be true or false, but it is {describe(node)}', path=path)
        return default

    def patterns(self, node: Node | None, path: str) -> tuple[str, ...] | None:
        found = self.r.strings(node, path)
        if found is None or node is None:
            return found
        for pattern in found:
            for problem in validate_pattern(pattern, kind="ref"):
                self.r.error(node, f'"{path}": pattern {pattern!r}: {problem.message}', path=path)
        return found

    def reviewers(self, node: Node | None, path: str) -> Reviewers | None:
        mapping = self.r.mapping(node, path, "reviewers")
        if mapping is None:
            return None
        self.r.check_keys(mapping, ("users", "roles", "required"), path, "reviewers")
        users = self.r.strings(mapping.get("users"), f"{path}.users") or ()
        roles = self.r.strings(mapping.get("roles"), f"{path}.roles") or ()
        for role in roles:
            if role not in REVIEWER_ROLES:
                self.r.error(
                    mapping.get("roles") or mapping,
                    f'"{path}.roles": no role {role!r} (roles: {", ".join(REVIEWER_ROLES)})',
                    path=f"{path}.roles",
                )
        required = 1
        count = mapping.get("required")
        if count is not None:
            value = count.value if isinstance(count, Scalar) else None
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10:
                self.r.error(
                    count, f'"{path}.required" must be a whole number from 1 to 10', path=path
                )
            else:
                required = value
        if not users and not roles:
            roles = ("maintainer",)
        if users and not roles and required > len(users):
            self.r.error(
                mapping,
                f'"{path}.required" is {required}, but only {len(users)} user(s) may approve',
                path=f"{path}.required",
            )
        return Reviewers(users=users, roles=roles, required=required)

    def freeze(self, node: Node | None, path: str) -> tuple[FreezeWindow, ...]:
        if node is None:
            return ()
        items = getattr(node, "items", None)
        if items is None:
            self.r.error(node, f'"{path}" must be a sequence of windows', path=path)
            return ()
        windows: list[FreezeWindow] = []
        for i, item in enumerate(items):
            where = f"{path}[{i}]"
            mapping = self.r.mapping(item, where, "freeze")
            if mapping is None:
                continue
            self.r.check_keys(mapping, ("cron", "duration"), where, "freeze", required=("cron",))
            cron = self.r.string(mapping.get("cron"), f"{where}.cron")
            duration = self.duration(mapping.get("duration"), f"{where}.duration")
            if cron is None:
                continue
            parsed = parse_cron(cron)
            if isinstance(parsed, CronError):
                self.r.error(mapping, f'"{where}.cron": {parsed.message}', path=f"{where}.cron")
                continue
            if duration is None or duration <= 0:
                self.r.error(mapping, f'"{where}.duration" is needed (above 0)', path=where)
                continue
            windows.append(FreezeWindow(cron, duration, Pos(item.line, item.col)))
        return tuple(windows)

    def rules(self, node: Mapping | None) -> ProtectionRules:
        if node is None:
            return ProtectionRules()
        path = "protection"
        self.r.check_keys(node, _KEYS, path, "protection")
        return ProtectionRules(
            reviewers=self.reviewers(node.get("reviewers"), f"{path}.reviewers"),
            prevent_self_review=self.boolean(
                node.get("prevent_self_review"), f"{path}.prevent_self_review", True
            ),
            branches=self.patterns(node.get("branches"), f"{path}.branches"),
            tags=self.patterns(node.get("tags"), f"{path}.tags"),
            wait_timer=self.duration(node.get("wait_timer"), f"{path}.wait_timer") or 0.0,
            freeze=self.freeze(node.get("freeze"), f"{path}.freeze"),
            allow_untrusted=self.boolean(
                node.get("allow_untrusted"), f"{path}.allow_untrusted", False
            ),
            pos=Pos(node.line, node.col),
        )


def load_protection(text: str, file: str) -> tuple[ProtectionRules | None, list[Diagnostic]]:
    """The protection rules of environment file `file` (defaults when it has none), or None
    with the errors."""
    root, diagnostics = parse_yaml(text, file)
    reader = Reader(file)
    reader.diagnostics.extend(diagnostics)
    if root is None or (isinstance(root, Scalar) and root.value is None):
        return ProtectionRules(), reader.diagnostics
    if not isinstance(root, Mapping):
        reader.error(root, f"an environment file is a mapping, but it is {describe(root)}")
        return None, reader.diagnostics
    reader_rules = _Protection(reader).rules(
        reader.mapping(root.get("protection"), "protection", "protection")
    )
    if any(d.severity is Severity.ERROR for d in reader.diagnostics):
        return None, reader.diagnostics
    return reader_rules, reader.diagnostics
