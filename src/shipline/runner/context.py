"""The expression contexts of a running job, and evaluation with positions in errors."""

from __future__ import annotations

import hashlib
import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from shipline.spec.expressions.conditions import condition_expression
from shipline.spec.expressions.errors import ExpressionError

# The parser and evaluator load on the first `${{ }}` (and the first `if:` that is not the
# default `success()`): a job without expressions never pays for them.


class EvaluationFailed(Exception):
    """An expression could not be evaluated; the message names the file, line and column."""


@dataclass
class JobState:
    """What status functions see: the job's status and whether the run is cancelled."""

    failed: bool = False
    cancelled: bool = False
    workspace: Path = field(default_factory=Path)

    def status_function(self, name: str) -> bool:
        if name == "always":
            return True
        if name == "cancelled":
            return self.cancelled
        if name == "failure":
            return self.failed and not self.cancelled
        return not self.failed and not self.cancelled  # success

    def hash_files(self, patterns: list[str]) -> str:
        return hash_files(self.workspace, patterns)


def hash_files(root: Path, patterns: list[str]) -> str:
    """GitHub's hashFiles: SHA-256 over the SHA-256 of each matching file, in path order."""
    from shipline.spec.filters import match_patterns

    includes = [p for p in patterns if p.strip()]
    if not includes:
        return ""
    matched: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if match_patterns(rel, [p.removeprefix("./") for p in includes]):
                matched.append(path)
    if not matched:
        return ""
    total = hashlib.sha256()
    for path in sorted(matched):
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        total.update(digest.digest())
    return total.hexdigest()


def runner_context(temp: Path, tool_cache: Path, debug: bool) -> dict[str, object]:
    machine = platform.machine().lower()
    arch = {"x86_64": "X64", "amd64": "X64", "aarch64": "ARM64", "arm64": "ARM64"}.get(
        machine, machine.upper()
    )
    return {
        "os": "Linux" if platform.system() == "Linux" else platform.system(),
        "arch": arch,
        "name": f"shipline-{platform.node()}",
        "environment": "self-hosted",
        "temp": str(temp),
        "tool_cache": str(tool_cache),
        "debug": "1" if debug else "",
    }


class Evaluator:
    """Evaluates templates and conditions of one job against its contexts."""

    def __init__(self, contexts: dict[str, object], state: JobState, file: str) -> None:
        self.contexts = contexts
        self.state = state
        self.file = file

    def condition(
        self, text: str | None, where: str, line: int, default: str = "success()"
    ) -> bool:
        if not text and default == "success()":
            return self.state.status_function("success")
        from shipline.spec.expressions import evaluate, truthy

        source = condition_expression(text) if text else default
        try:
            return truthy(evaluate(source, self.contexts, self.state))  # type: ignore[arg-type]
        except ExpressionError as exc:
            raise EvaluationFailed(f"{self.file}:{line}: {where}: {exc}") from exc

    def value(self, text: str, where: str, line: int) -> object:
        if "${{" not in text:
            return text
        from shipline.spec.expressions import evaluate_template, parse_template

        try:
            return evaluate_template(parse_template(text), self.contexts, self.state)  # type: ignore[arg-type]
        except ExpressionError as exc:
            raise EvaluationFailed(f"{self.file}:{line}: {where}: {exc}") from exc

    def string(self, text: str, where: str, line: int) -> str:
        value = self.value(text, where, line)
        if isinstance(value, str):
            return value
        from shipline.spec.expressions import to_string

        return to_string(value)  # type: ignore[arg-type]

    def env(self, pairs: tuple[tuple[str, str], ...], where: str, line: int) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, text in pairs:
            if name == "":
                value = self.value(text, where, line)
                if isinstance(value, Mapping):
                    for k, v in value.items():
                        out[str(k)] = v if isinstance(v, str) else str(v)
                continue
            out[name] = self.string(text, f"{where}.{name}", line)
        return out
