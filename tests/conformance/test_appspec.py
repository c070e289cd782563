"""CodeDeploy AppSpec conformance: the agent's own tests and AWS's example files.

`codedeploy_appspec_cases.json` (aws/aws-codedeploy-agent's application_specification
tests): every valid AppSpec parses and its parsed fields equal the agent's (hooks, files,
permissions, modes, ACL entries, SELinux ranges); every invalid one is rejected with the
agent's exact message, at parse time or by the validation the test calls afterwards.
`appspec_examples.json` (AWS samples and user guide): every file parses; the complete
EC2/on-premises ones validate fully. The pass counts are recorded for the report.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from shipline.deploy.appspec import (
    AppSpec,
    AppSpecError,
    Mode,
    parse_ace,
    parse_appspec,
    parse_selinux_range,
    read_document,
)
from tests.conformance.corpus import load_corpus, record_rate

CASES = "codedeploy_appspec_cases.json"
EXAMPLES = "appspec_examples.json"


def _mode_field(mode: Mode, name: str) -> object:
    if name in ("mode", "owner", "group", "world", "setuid", "setgid", "sticky"):
        return getattr(mode, name)
    who, _, what = name.partition("_")
    digit = int(getattr(mode, who))
    return bool(digit & {"readable": 4, "writable": 2, "executable": 1}[what])


class _Fields:
    """Evaluates the agent tests' `actual` expressions against a parsed AppSpec."""

    def __init__(self, spec: AppSpec) -> None:
        self.spec = spec
        self.mode_index = -1
        self.ace_index = -1
        modes = [p.mode for p in spec.permissions if p.mode is not None]
        self.modes = modes
        self.aces = [a for p in spec.permissions for a in (p.acls or ())]

    def value(self, actual: str) -> object:
        spec = self.spec
        if actual == "hooks)":
            return {k: list(v) for k, v in spec.hooks.items()}
        if actual == "files)":
            return list(spec.files)
        m = re.fullmatch(r'hooks\["(\w+)"\](?:\[\*\]\.(\w+))?', actual)
        if m:
            scripts = spec.hooks.get(m.group(1))
            if scripts is None or m.group(2) is None:
                return None if scripts is None else list(scripts)
            if m.group(2) == "sudo":
                return list(spec.sudo[m.group(1)])
            return [_number(getattr(s, m.group(2))) for s in scripts]
        m = re.fullmatch(r"files\[\*\]\.(\w+)", actual)
        if m:
            return [getattr(f, m.group(1)) for f in spec.files]
        if actual == "permissions.length":
            return len(spec.permissions)
        m = re.fullmatch(r"permissions\[(\d+)\]\.(\w+)(?:\.range\.(\w+))?", actual)
        if m:
            perm = spec.permissions[int(m.group(1))]
            if m.group(3):
                assert perm.context is not None and perm.context.range is not None
                return getattr(perm.context.range, m.group(3))
            return getattr(perm, m.group(2))
        m = re.fullmatch(r"permission\.(\w+)", actual)
        if m:
            value = getattr(
                spec.permissions[0], "except_" if m.group(1) == "except" else m.group(1)
            )
            return list(value) if isinstance(value, tuple) else value
        m = re.fullmatch(r"mode\.(\w+)", actual)
        if m:
            if m.group(1) == "mode":
                self.mode_index += 1
            mode = self.modes[self.mode_index]
            assert mode is not None
            return _mode_field(mode, m.group(1))
        if actual == "acl.aces.length":
            return len(self.aces)
        m = re.fullmatch(r"ace\.(\w+)", actual)
        if m:
            if m.group(1) == "default":  # each entry's checks start with `default`
                self.ace_index += 1
            return getattr(self.aces[self.ace_index], m.group(1))
        if actual == "categories.length":
            ctx = spec.permissions[0].context
            assert ctx is not None and ctx.range is not None and ctx.range.categories
            return len(ctx.range.categories)
        raise LookupError(actual)


def _number(value: object) -> object:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _unit_case(case: dict[str, Any]) -> str | None:
    """The cases that call the agent's ContextInfo/AceInfo directly, not via a file."""
    body = case["ruby_body"]
    if "ContextInfo.new" in body:
        text = re.search(r'"range"=>"([^"]+)"', body)
        assert text is not None
        got = parse_selinux_range(text.group(1)).text
        want = case["checks"][0]["expected"]
        return None if got == want else f"range {got!r} != {want!r}"
    if case["expect"] == "error":
        entry = re.search(r'AceInfo\.new\("([^"]+)"\)', case["error_stage"])
        assert entry is not None
        try:
            parse_ace(entry.group(1))
        except AppSpecError as exc:
            want = case["checks"][0]["message"]
            return None if str(exc) == want else f"message {exc} != {want}"
        return "no error"
    for entry, internal in re.findall(r'AceInfo\.new\("([^"]+)"(, true)?\)', body):
        ace = parse_ace(entry, internal=bool(internal))
        for check in case["checks"]:
            if f'"{entry}"' in check.get("actual", "") and ace.text != check["expected"]:
                return f"ace {ace.text!r} != {check['expected']!r}"
    return None


def _post_parse(spec: AppSpec, call: str) -> None:
    perm = spec.permissions[0]
    if call.endswith("validate_file_permission"):
        perm.validate_file_permission()
    else:
        perm.validate_file_acl("test")


def _case_problem(case: dict[str, Any]) -> str | None:
    if case["appspec"] is None:
        return _unit_case(case)
    stage = case.get("error_stage") or ""
    try:
        spec = parse_appspec(case["appspec"])
    except AppSpecError as exc:
        if case["expect"] != "error" or stage != "parse":
            return f"rejected: {exc}"
        # The corpus keeps one message's Ruby escaping (`{\"name\"=>...}`): compare unescaped.
        want = case["checks"][0]["message"].replace('\\"', '"')
        return None if str(exc) == want else f"message {exc!r} != {want!r}"
    if case["expect"] == "error":
        if not stage.startswith("post-parse"):
            return "accepted an invalid AppSpec"
        try:
            _post_parse(spec, case["checks"][0]["call"])
        except AppSpecError as exc:
            return None if str(exc) == case["checks"][0]["message"] else f"message {exc}"
        return "validation did not raise"
    fields = _Fields(spec)
    for check in case["checks"]:
        if check["op"] != "equal":
            continue  # `raw` Ruby assertions on the agent's internal ACL objects
        try:
            got = fields.value(check["actual"])
        except LookupError:
            continue  # @acl builder calls of the Ruby class, not fields of the file
        want = check["expected"]
        if isinstance(want, list) and isinstance(got, list):
            got = [_number(g) for g in got]
        if got != want:
            return f"{check['actual']}: {got!r} != {want!r}"
    return None


def test_codedeploy_agent_cases() -> None:
    cases = load_corpus(CASES)
    problems = {c["id"]: p for c in cases if (p := _case_problem(c)) is not None}
    passed = len(cases) - len(problems)
    record_rate("codedeploy-appspec", passed, len(cases), 1.0)
    assert problems == {}
    assert passed == len(cases) == 108


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: 0.0\nos: linux\nhooks:\n  AfterInstall:\n    - timeout: 5\n", "no location"),
        ("version: 1.0\nos: linux\n", "invalid version value (1.0)"),
        ("version: 0.0\nos: linux\nfiles:\n  - source: /\n", "only a source file (/)"),
    ],
)
def test_rejections_say_why(text: str, message: str) -> None:
    with pytest.raises(AppSpecError, match=re.escape(message)):
        parse_appspec(text)


def _complete_server_appspec(text: str) -> bool:
    return bool(re.search(r"^os: (linux|windows)\s*$", text, re.M)) and "source: \n" not in text


def test_aws_examples_parse() -> None:
    examples = load_corpus(EXAMPLES)
    problems: dict[str, str] = {}
    full = 0
    for ex in examples:
        if ex["expect"] == "fragment":
            # A syntax diagram with [n] markers, not YAML: it must be refused, not crash.
            with pytest.raises(AppSpecError):
                parse_appspec(ex["appspec"])
            continue
        if _complete_server_appspec(ex["appspec"]) and "Resources" not in ex["appspec"]:
            full += 1
            try:
                spec = parse_appspec(ex["appspec"])
            except AppSpecError as exc:
                problems[ex["id"]] = str(exc)
                continue
            assert spec.platform == "server"
        else:
            # Templates of the user guide (placeholders such as `os: operating-system-name`)
            # and ECS/Lambda files: they must read as AppSpec documents.
            try:
                read_document(ex["appspec"])
            except AppSpecError as exc:
                problems[ex["id"]] = str(exc)
    passed = len(examples) - len(problems)
    record_rate("appspec-examples", passed, len(examples), 1.0, f"{full} validated fully")
    assert problems == {}
    assert full >= 15
