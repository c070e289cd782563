"""Diagnostics: what lint and the loaders return instead of raising."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One finding about a file.

    `code` is a stable identifier (`unknown-key`, `expression`, ...), `path` the key path
    inside the document (`jobs.build.steps[0].run`), `hint` an optional suggestion such as
    the closest valid key. Lines and columns count from 1.
    """

    code: str
    severity: Severity
    file: str
    line: int
    col: int
    message: str
    path: str = ""
    hint: str = ""

    def format(self) -> str:
        text = f"{self.file}:{self.line}:{self.col}: {self.severity} {self.code}: {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text

    def to_json(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "severity": str(self.severity),
            "code": self.code,
            "message": self.message,
            "path": self.path,
            "hint": self.hint,
        }


def has_errors(diagnostics: list[Diagnostic]) -> bool:
    return any(d.severity is Severity.ERROR for d in diagnostics)


def sort_key(d: Diagnostic) -> tuple[str, int, int, str]:
    return (d.file, d.line, d.col, d.code)
