"""AWS CodeBuild buildspec files (version 0.2), read into a `BuildspecSpec`.

Shipline runs a buildspec as one job; `shipline.plan.buildspec_script` turns the spec into
the driver script that runs its phases. This module only reads and checks the file: every
mistake becomes a `buildspec` diagnostic with its line and column, nothing raises.

How CodeBuild reads the file, and so how this module does:

- Version 0.2 only. AWS still accepts 0.1, but 0.1 runs every command in a fresh shell
  (no `cd` or variable survives a command); running a 0.1 file with 0.2's shared shell
  would silently change what it does, so it is an error that says how to migrate.
- CodeBuild's reader is YAML 1.1: booleans such as `discard-paths` also accept `yes`/`no`,
  and scalars where text is expected (commands, variable values, runtime versions) are
  taken as written, so `golang: 1.10` stays "1.10" and `- true` is the command `true`.
- parameter-store and secrets-manager values name things in AWS; they must be strings
  (a YAML boolean there is an error) and the runner provides the variables' values.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from shipline.spec.diagnostics import Diagnostic, Severity, has_errors, sort_key
from shipline.spec.yamlpos import Mapping, Node, Scalar, Sequence, describe, parse_yaml

PHASE_NAMES = ("install", "pre_build", "build", "post_build")
ON_FAILURE = ("ABORT", "CONTINUE")
SHELLS = ("bash", "/bin/sh")

_BATCH_KEYS = ("fast-fail", "build-list", "build-matrix", "build-graph", "build-fanout")
_BOOLEANS = {"yes": True, "true": True, "no": False, "false": False}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# A plain scalar that YAML 1.2 read as a number or boolean is one token on its line.
_TOKEN = re.compile(r"[^\s,\]}#]+")

_Entry = tuple[Scalar, Node]
_Read = Callable[[_Entry, str], Any]


@dataclass(frozen=True, slots=True)
class BuildPhase:
    """One of CodeBuild's four command phases, as written.

    `on_failure` is None when the file does not say: CodeBuild then follows its phase
    transitions (a failed `build` still runs `post_build`), which an explicit ABORT does not.
    """

    name: str
    commands: tuple[str, ...]
    finally_: tuple[str, ...] = ()
    on_failure: str | None = None
    run_as: str | None = None
    runtime_versions: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class BuildArtifacts:
    """What to collect after the build; `secondary` maps artifact identifiers to theirs."""

    files: tuple[str, ...]
    name: str | None = None
    base_directory: str | None = None
    discard_paths: bool = False
    exclude_paths: tuple[str, ...] = ()
    enable_symlinks: bool = False
    s3_prefix: str | None = None
    secondary: tuple[tuple[str, BuildArtifacts], ...] = ()


@dataclass(frozen=True, slots=True)
class BuildspecSpec:
    """A checked buildspec: what the user wrote, with phases in CodeBuild's order.

    `phases` holds only the phases present. `parameter_store` and `secrets_manager` map an
    environment variable to the AWS name its value comes from; values are never in the spec.
    """

    file: str
    version: str
    phases: tuple[BuildPhase, ...]
    shell: str = "bash"
    variables: tuple[tuple[str, str], ...] = ()
    parameter_store: tuple[tuple[str, str], ...] = ()
    secrets_manager: tuple[tuple[str, str], ...] = ()
    exported_variables: tuple[str, ...] = ()
    git_credential_helper: bool = False
    run_as: str | None = None
    artifacts: BuildArtifacts | None = None
    cache_paths: tuple[str, ...] = ()

    def phase(self, name: str) -> BuildPhase | None:
        """The phase called `name`, or None when the buildspec does not have it."""
        return next((p for p in self.phases if p.name == name), None)


def load_buildspec(
    text: str, file: str = "buildspec.yml"
) -> tuple[BuildspecSpec | None, list[Diagnostic]]:
    """Read and check a buildspec; the spec is None when any error was found."""
    root, diagnostics = parse_yaml(text, file)
    reader = _Reader(file)
    # A document the YAML parser rejected has no tree to check any further.
    spec = None if root is None and diagnostics else reader.root(root)
    diagnostics = sorted(diagnostics + reader.diagnostics, key=sort_key)
    return (None if has_errors(diagnostics) else spec), diagnostics


def _get(mapping: Mapping, key: str) -> _Entry | None:
    return next(((k, v) for k, v in mapping if k.text == key), None)


def _is_null(node: Node) -> bool:
    # An empty value (`key:` and nothing) is a plain null; the parser may give it style "".
    return isinstance(node, Scalar) and node.value is None and not node.style


def _source_text(node: Scalar) -> str:
    """A scalar as written: YAML 1.2 turns `1.10` into 1.1, CodeBuild keeps "1.10"."""
    if isinstance(node.value, str):
        return node.value
    if node.style is None and 0 < node.line <= len(node.lines):
        match = _TOKEN.match(node.lines[node.line - 1], node.col - 1)
        if match:
            return match.group(0)
    return node.text


class _Reader:
    """Reads the tree section by section; a read that finds a mistake reports it.

    Readers take an entry (key, value) so that a missing value (`commands:` alone) is
    reported at its key, where the user will look for it.
    """

    def __init__(self, file: str) -> None:
        self.file = file
        self.diagnostics: list[Diagnostic] = []

    def report(self, at: Node, path: str, msg: str, hint: str = "", warn: bool = False) -> None:
        severity = Severity.WARNING if warn else Severity.ERROR
        self.diagnostics.append(
            Diagnostic("buildspec", severity, self.file, at.line, at.col, msg, path, hint)
        )

    def wrong(self, entry: _Entry, path: str, wanted: str, hint: str = "") -> None:
        key, value = entry
        where = key if _is_null(value) else value
        self.report(where, path, f"{path} must be {wanted}, not {describe(value)}", hint)

    def mapping(self, entry: _Entry, path: str, keys: Iterable[str] | None) -> Mapping | None:
        """A non-empty mapping; keys outside `keys` (None: any) are reported."""
        node = entry[1]
        if not isinstance(node, Mapping) or not node.pairs:
            self.wrong(entry, path or "the buildspec", "a mapping with entries")
            return None
        valid = tuple(keys) if keys is not None else tuple(node.keys())
        for k, _ in node:
            if k.text not in valid:
                close = difflib.get_close_matches(k.text, valid, n=1)
                hint = f'did you mean "{close[0]}"?' if close else "valid: " + ", ".join(valid)
                message = f'unknown key "{k.text}" in {path or "the buildspec"}'
                self.report(k, f"{path}.{k.text}" if path else k.text, message, hint)
        return node

    def text(self, entry: _Entry, path: str, strict: bool = False) -> str | None:
        """A scalar as text; `strict` refuses YAML numbers and booleans (names in AWS)."""
        node = entry[1]
        if not isinstance(node, Scalar) or node.value is None:
            self.wrong(entry, path, "a string")
            return None
        if strict and not isinstance(node.value, str):
            self.wrong(entry, path, "a string", f'quote it if "{_source_text(node)}" is meant')
            return None
        value = _source_text(node)
        if "\0" in value:
            self.report(node, path, f"{path} contains a NUL character, which a shell cannot pass")
            return None
        return value

    def boolean(self, entry: _Entry, path: str) -> bool:
        value = entry[1].value if isinstance(entry[1], Scalar) else None
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _BOOLEANS:
            return _BOOLEANS[value.lower()]
        self.wrong(entry, path, "yes/no or true/false")
        return False

    def texts(self, entry: _Entry, path: str, one_ok: bool = False) -> tuple[str, ...]:
        """A non-empty list of scalars (or, with `one_ok`, a single scalar)."""
        node = entry[1]
        if one_ok and isinstance(node, Scalar) and node.value is not None:
            one = self.text(entry, path)
            return () if one is None else (one,)
        if not isinstance(node, Sequence) or not node.items:
            self.wrong(entry, path, "a list with entries")
            return ()
        values: list[str] = []
        for i, item in enumerate(node):
            item_path = f"{path}[{i}]"
            if isinstance(item, Mapping):
                hint = 'YAML reads ": " as a key; quote the whole entry'
                self.report(item, item_path, f"{item_path} must be a string, not a mapping", hint)
            elif (value := self.text((entry[0], item), item_path)) is not None:
                values.append(value)
        return tuple(values)

    def pairs(
        self, entry: _Entry, path: str, strict: bool = False, env: bool = True
    ) -> tuple[tuple[str, str], ...]:
        """A mapping of names to texts; `env` checks the names are shell variable names."""
        result: list[tuple[str, str]] = []
        for k, v in self.mapping(entry, path, None) or ():
            if env and not _ENV_NAME.match(k.text):
                hint = "use letters, digits and _, not starting with a digit"
                self.report(k, f"{path}.{k.text}", f'"{k.text}" is not a variable name', hint)
            elif env and k.text.startswith("CODEBUILD_"):
                message = "the CODEBUILD_ prefix is reserved for CodeBuild's own variables"
                self.report(k, f"{path}.{k.text}", message, warn=True)
            if (value := self.text((k, v), f"{path}.{k.text}", strict)) is not None:
                result.append((k.text, value))
        return tuple(result)

    def root(self, root: Node | None) -> BuildspecSpec | None:
        origin = Scalar(1, 1, None)
        if root is None:
            self.report(origin, "", "the buildspec is empty")
            return None
        schema: dict[str, _Read] = {"version": self._version, "phases": self._phases}
        schema |= {"env": self._env, "run-as": self._run_as, "artifacts": self._artifacts}
        schema |= {"cache": self._cache, "proxy": self._proxy, "reports": self._reports}
        schema |= {"batch": lambda e, p: self.mapping(e, p, _BATCH_KEYS)}
        schema["eb_codebuild_settings"] = lambda e, p: None  # the Elastic Beanstalk CLI's
        read = self.section((origin, root), "", schema, required=("version", "phases"))
        if not (read.get("version") and read.get("phases")):
            return None
        return BuildspecSpec(
            self.file, read["version"], read["phases"], **read.get("env", {}),
            run_as=read.get("run-as"), artifacts=read.get("artifacts"),
            cache_paths=read.get("cache", ()),
        )  # fmt: skip

    def _version(self, entry: _Entry, path: str) -> str | None:
        value = self.text(entry, path)
        if value == "0.1":
            message = "version 0.1 runs each command in its own shell; Shipline runs only 0.2"
            hint = "use `version: 0.2`; its commands share one shell, so cd and variables last"
            self.report(entry[1], path, message, hint)
        elif value not in ("0.2", None):
            message = f'unsupported buildspec version "{value}"'
            self.report(entry[1], path, message, "Shipline supports version 0.2")
        return value if value == "0.2" else None

    def _phases(self, entry: _Entry, path: str) -> tuple[BuildPhase, ...] | None:
        phases = self.mapping(entry, path, PHASE_NAMES)
        if phases is None:
            return None
        found = {k.text: (k, v) for k, v in phases}
        read = [self._phase(name, found[name]) for name in PHASE_NAMES if name in found]
        return tuple(p for p in read if p is not None) if all(read) else None

    def _phase(self, name: str, entry: _Entry) -> BuildPhase | None:
        path, count = f"phases.{name}", len(self.diagnostics)
        schema: dict[str, _Read] = {"commands": self.texts, "finally": self.texts}
        schema |= {"on-failure": self._on_failure, "run-as": self._run_as}
        schema["runtime-versions"] = lambda e, p: self._runtimes(e, p, name)
        read = self.section(entry, path, schema)
        if (
            read
            and "commands" not in read
            and (name != "install" or "runtime-versions" not in read)
        ):
            # The reference lets only install go without commands (runtime-versions alone).
            self.report(entry[0], path, f"phase {name} has no commands", "add `commands:`")
        if not read or has_errors(self.diagnostics[count:]):
            return None
        return BuildPhase(
            name, read.get("commands", ()), read.get("finally", ()), read.get("on-failure"),
            read.get("run-as"), read.get("runtime-versions", ()),
        )  # fmt: skip

    def _on_failure(self, entry: _Entry, path: str) -> str | None:
        value = self.text(entry, path)
        if value is not None and value not in ON_FAILURE:
            self.report(entry[1], path, f'unknown on-failure "{value}"', "use ABORT or CONTINUE")
        return value

    def _runtimes(self, entry: _Entry, path: str, phase: str) -> tuple[tuple[str, str], ...]:
        if phase != "install":
            self.report(entry[0], path, "runtime-versions belongs in the install phase")
        return self.pairs(entry, path, env=False)

    def _run_as(self, entry: _Entry, path: str) -> str | None:
        user = self.text(entry, path)
        if user is not None:
            message = "run-as is not supported: commands run as the job's user"
            self.report(entry[1], path, message, warn=True)
        return user

    def _env(self, entry: _Entry, path: str) -> dict[str, Any]:
        """The env section as BuildspecSpec fields."""
        schema: dict[str, _Read] = {"shell": self._shell, "variables": self.pairs}
        schema |= dict.fromkeys(("parameter-store", "secrets-manager"), self._aws_names)
        schema |= {"exported-variables": self._names, "git-credential-helper": self.boolean}
        read = self.section(entry, path, schema)
        return {k.replace("-", "_"): v for k, v in read.items() if v is not None}

    def _shell(self, entry: _Entry, path: str) -> str | None:
        shell = self.text(entry, path)
        if shell == "/bin/sh":
            message = "commands run in bash, which runs sh scripts too (dash is not used)"
            self.report(entry[1], path, message, warn=True)
        elif shell is not None and shell not in SHELLS:
            hint = "Shipline runs Linux jobs: use bash or /bin/sh"
            self.report(entry[1], path, f'unsupported shell "{shell}"', hint)
        return shell if shell in SHELLS else None

    def _aws_names(self, entry: _Entry, path: str) -> tuple[tuple[str, str], ...]:
        if pairs := self.pairs(entry, path, strict=True):
            names = ", ".join(name for name, _ in pairs)
            message = f"{entry[0].text} needs AWS: the runner must set {names} for the job"
            self.report(entry[0], path, message, warn=True)
        return pairs

    def _names(self, entry: _Entry, path: str) -> tuple[str, ...]:
        names = self.texts(entry, path)
        for i, name in enumerate(names):
            if not _ENV_NAME.match(name):
                self.report(entry[1], f"{path}[{i}]", f'"{name}" is not a variable name')
        return names

    def _artifacts(self, entry: _Entry, path: str, top: bool = True) -> BuildArtifacts | None:
        schema: dict[str, _Read] = {"files": self.texts, "discard-paths": self.boolean}
        schema |= dict.fromkeys(("name", "base-directory", "s3-prefix"), self.text)
        schema["enable-symlinks"] = self.boolean
        schema["exclude-paths"] = lambda e, p: self.texts(e, p, one_ok=True)
        if top:
            schema["secondary-artifacts"] = self._secondary
        read = self.section(entry, path, schema)
        if not read:
            return None
        if "files" not in read and read.get("secondary-artifacts"):
            # The reference says files is always required, yet AWS's multi-runtime sample
            # leaves it out when it only produces secondary artifacts.
            message = f"{path} has no files: only the secondary artifacts are collected"
            self.report(entry[0], f"{path}.files", message, warn=True)
        elif "files" not in read:
            self.report(entry[0], f"{path}.files", f"{path} has no files", "add `files:`")
        fields = {k.replace("-", "_"): v for k, v in read.items() if v is not None}
        fields["secondary"] = fields.pop("secondary_artifacts", ())
        return BuildArtifacts(**{"files": (), **fields})

    def _secondary(self, entry: _Entry, path: str) -> tuple[tuple[str, BuildArtifacts], ...]:
        found = [(k.text, self._artifacts((k, v), f"{path}.{k.text}", top=False))
                 for k, v in self.mapping(entry, path, None) or ()]  # fmt: skip
        return tuple((name, one) for name, one in found if one is not None)

    def _cache(self, entry: _Entry, path: str) -> tuple[str, ...]:
        schema = {"paths": self.texts, "key": self.text, "fallback-keys": self.texts}
        read = self.section(entry, path, {**schema, "action": self.text}, required=("paths",))
        paths = read.get("paths")
        return paths if isinstance(paths, tuple) else ()

    def section(
        self, entry: _Entry, path: str, schema: dict[str, _Read], required: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        """Checks a mapping against `schema` (key -> reader); returns what the readers read."""
        body = self.mapping(entry, path, schema)
        if body is None:
            return {}
        for key in required:
            if not _get(body, key):
                where = f"{path} has" if path else "the buildspec has"
                self.report(entry[0], f"{path}.{key}" if path else key, f"{where} no {key}")
        return {
            k.text: schema[k.text]((k, v), f"{path}.{k.text}" if path else k.text)
            for k, v in body
            if k.text in schema
        }

    def _proxy(self, entry: _Entry, path: str) -> None:
        self.section(entry, path, dict.fromkeys(("upload-artifacts", "logs"), self.boolean))

    def _reports(self, entry: _Entry, path: str) -> None:
        """Report groups are not collected by Shipline; checked so that typos are caught."""
        report: dict[str, _Read] = {"files": self.texts, "discard-paths": self.boolean}
        report |= dict.fromkeys(("base-directory", "file-format"), self.text)
        for k, v in self.mapping(entry, path, None) or ():
            self.section((k, v), f"{path}.{k.text}", report, required=("files",))
