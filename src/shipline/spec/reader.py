"""Typed reading of YAML nodes that turns every mistake into a diagnostic.

The loaders (workflows, buildspecs) use one `Reader` per file: it checks keys against the
allowed set (with the closest valid key as a hint), checks scalar types, and collects
diagnostics instead of raising, so one pass reports every problem at once.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from shipline.spec.diagnostics import Diagnostic, Severity
from shipline.spec.yamlpos import Mapping, Node, Scalar, Sequence, describe


class Reader:
    """Collects diagnostics for one file while its nodes are read."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.diagnostics: list[Diagnostic] = []

    def error(
        self,
        node: Node,
        message: str,
        *,
        code: str = "syntax-check",
        path: str = "",
        hint: str = "",
    ) -> None:
        self.diagnostics.append(
            Diagnostic(code, Severity.ERROR, self.file, node.line, node.col, message, path, hint)
        )

    def warning(
        self,
        node: Node,
        message: str,
        *,
        code: str = "syntax-check",
        path: str = "",
        hint: str = "",
    ) -> None:
        self.diagnostics.append(
            Diagnostic(code, Severity.WARNING, self.file, node.line, node.col, message, path, hint)
        )

    def mapping(self, node: Node | None, path: str, what: str) -> Mapping | None:
        if node is None:
            return None
        if isinstance(node, Mapping):
            return node
        if isinstance(node, Scalar) and node.value is None:
            return Mapping(node.line, node.col)
        self.error(
            node, f'"{what}" section must be a mapping, but it is {describe(node)}', path=path
        )
        return None

    def check_keys(
        self,
        node: Mapping,
        allowed: Iterable[str],
        path: str,
        section: str,
        *,
        required: Iterable[str] = (),
        lenient: bool = False,
        ignore: Iterable[str] = (),
    ) -> None:
        """Report unknown keys (with the closest valid one) and missing required keys.

        `lenient`: unknown keys are warnings, for sections where GitHub ignores them.
        """
        allowed_list = list(allowed)
        skipped = set(ignore)
        for key, _ in node.pairs:
            if key.text not in allowed_list and key.text not in skipped:
                close = difflib.get_close_matches(key.text, allowed_list, n=1, cutoff=0.6)
                hint = f'did you mean "{close[0]}"?' if close else ""
                expected = ", ".join(f'"{k}"' for k in sorted(allowed_list))
                report = self.warning if lenient else self.error
                report(
                    key,
                    f'unexpected key "{key.text}" for "{section}" section. '
                    f"expected one of {expected}",
                    path=_join(path, key.text),
                    hint=hint,
                )
        for name in required:
            if name not in node:
                self.error(
                    node,
                    f'"{name}" section is missing in "{section}" section',
                    path=_join(path, name),
                )

    def string(self, node: Node | None, path: str, *, allow_null: bool = False) -> str | None:
        """A scalar as a string (numbers and booleans are converted, as GitHub does)."""
        if node is None:
            return None
        if isinstance(node, Scalar):
            if node.value is None:
                if not allow_null:
                    self.error(node, f'"{_last(path)}" must not be empty', path=path)
                return None
            return node.text
        self.error(node, f'"{_last(path)}" must be a string, but it is {describe(node)}', path=path)
        return None

    def strings(self, node: Node | None, path: str) -> tuple[str, ...] | None:
        """A string or a sequence of strings, as a tuple."""
        if node is None:
            return None
        if isinstance(node, Scalar):
            if node.value is None:
                return ()
            return (node.text,)
        if isinstance(node, Sequence):
            out: list[str] = []
            for i, item in enumerate(node.items):
                text = self.string(item, f"{path}[{i}]")
                if text is not None:
                    out.append(text)
            return tuple(out)
        self.error(
            node,
            f'"{_last(path)}" must be a string or a sequence of strings, '
            f"but it is {describe(node)}",
            path=path,
        )
        return None

    def string_map(self, node: Node | None, path: str, section: str) -> tuple[tuple[str, str], ...]:
        """A mapping of names to scalar values (env, with, outputs); an expression also fits."""
        if node is None:
            return ()
        if isinstance(node, Scalar) and isinstance(node.value, str) and "${{" in node.value:
            return (("", node.value),)
        mapping = self.mapping(node, path, section)
        if mapping is None:
            return ()
        out: list[tuple[str, str]] = []
        for key, value in mapping.pairs:
            if isinstance(value, Scalar):
                out.append((key.text, value.text))
            else:
                self.error(
                    value,
                    f'value of "{key.text}" in "{section}" must be a string, '
                    f"but it is {describe(value)}",
                    path=_join(path, key.text),
                )
        return tuple(out)

    def boolean_or_expr(self, node: Node | None, path: str, default: bool) -> bool | str:
        if node is None:
            return default
        if isinstance(node, Scalar):
            if isinstance(node.value, bool):
                return node.value
            if isinstance(node.value, str) and "${{" in node.value:
                return node.value
        self.error(
            node,
            f'"{_last(path)}" must be a boolean or an expression, but it is {describe(node)}',
            path=path,
        )
        return default

    def number_or_expr(self, node: Node | None, path: str) -> float | str | None:
        if node is None:
            return None
        if isinstance(node, Scalar):
            v = node.value
            if isinstance(v, int | float) and not isinstance(v, bool):
                if v <= 0:
                    # GitHub accepts it (and never times out); it is surely a mistake.
                    self.warning(
                        node, f'value at "{_last(path)}" must be greater than zero: {v}', path=path
                    )
                    return None
                # Integers too large for a float mean "no limit" in practice.
                return float(v) if v < 10**300 else float("inf")
            if isinstance(v, str) and "${{" in v:
                return v
        self.error(
            node,
            f'"{_last(path)}" must be a number or an expression, but it is {describe(node)}',
            path=path,
        )
        return None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _last(path: str) -> str:
    return path.rsplit(".", 1)[-1] if path else "value"
