"""What every lint rule receives: the file's YAML tree, its model and a diagnostics sink."""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Mapping as AbcMapping
from dataclasses import dataclass, field

from shipline.spec.diagnostics import Diagnostic, Severity
from shipline.spec.models import WorkflowSpec
from shipline.spec.yamlpos import Mapping, Node, Scalar, Sequence


@dataclass(slots=True)
class LintContext:
    """One lint run over one workflow file.

    `root` is the document's top mapping, `spec` the model the lenient loader could build
    (None when the file is unusable), `local_actions` maps `./path` to action.yml text.
    Rules append to `diagnostics` through `error` and `warning`.
    """

    file: str
    root: Mapping
    spec: WorkflowSpec | None
    local_actions: AbcMapping[str, str] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def error(
        self,
        at: Node | tuple[int, int],
        code: str,
        message: str,
        *,
        path: str = "",
        hint: str = "",
    ) -> None:
        self._add(Severity.ERROR, at, code, message, path=path, hint=hint)

    def warning(
        self,
        at: Node | tuple[int, int],
        code: str,
        message: str,
        *,
        path: str = "",
        hint: str = "",
    ) -> None:
        self._add(Severity.WARNING, at, code, message, path=path, hint=hint)

    def _add(
        self,
        severity: Severity,
        at: Node | tuple[int, int],
        code: str,
        message: str,
        *,
        path: str,
        hint: str,
    ) -> None:
        line, col = (at.line, at.col) if isinstance(at, Node) else at
        self.diagnostics.append(
            Diagnostic(code, severity, self.file, line, col, message, path, hint)
        )

    def jobs(self) -> Iterator[tuple[Scalar, Mapping]]:
        """Each job's key node and mapping (jobs that are not mappings are skipped)."""
        jobs = self.root.get("jobs")
        if isinstance(jobs, Mapping):
            for key, value in jobs.pairs:
                if isinstance(value, Mapping):
                    yield key, value

    def steps(self, job: Mapping) -> Iterator[tuple[int, Mapping]]:
        """Each step mapping of a job with its index."""
        steps = job.get("steps")
        if isinstance(steps, Sequence):
            for i, step in enumerate(steps.items):
                if isinstance(step, Mapping):
                    yield i, step


def string_value(node: Node | None) -> str | None:
    """The text of a non-null scalar, None for anything else."""
    if isinstance(node, Scalar) and node.value is not None:
        return node.text
    return None


def is_expression(text: str) -> bool:
    """Whether a value holds a `${{ }}` expression (and so is only known at run time)."""
    return "${{" in text
