"""A step's output, line by line: workflow commands, then masking, then the log.

Output arrives as chunks that may split lines (and multi-byte characters) anywhere; the
processor re-assembles whole lines first, so a secret written in two pieces is still masked.
Workflow commands (`::add-mask::`, `::group::`, `::error file=..,line=..::`, ...) are read
from the assembled lines. `::set-output`, `::set-env`, `::add-path` and `::save-state` are
refused with a warning: they let anything a step prints change the job (CVE-2020-15228).
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from dataclasses import dataclass

from shipline.security.masking import Masker

# Longest partial line kept before it is emitted anyway (a progress bar without newlines).
MAX_PENDING = 64 * 1024
REFUSED = ("set-output", "set-env", "add-path", "save-state")


@dataclass(frozen=True, slots=True)
class Annotation:
    """An `::error`, `::warning` or `::notice` a step printed."""

    level: str
    message: str
    file: str | None = None
    line: int | None = None
    col: int | None = None
    title: str | None = None


def _unescape_data(text: str) -> str:
    return text.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


def _unescape_property(text: str) -> str:
    return _unescape_data(text).replace("%3A", ":").replace("%2C", ",")


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


class OutputProcessor:
    """Turns a step's raw output into masked log lines, handling workflow commands.

    `emit` receives lists of finished lines (without newlines); `annotate` each annotation;
    `debug` tells whether `::debug::` lines are shown.
    """

    def __init__(
        self,
        masker: Masker,
        emit: Callable[[list[str]], None],
        annotate: Callable[[Annotation], None] | None = None,
        *,
        debug: bool = False,
    ) -> None:
        self.masker = masker
        self.emit = emit
        self.annotate = annotate or (lambda a: None)
        self.debug = debug
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self._stop_token: str | None = None

    def feed(self, data: bytes) -> None:
        text = self._pending + self._decoder.decode(data)
        if "\n" not in text:
            if len(text) > MAX_PENDING:
                self._pending = ""
                self._lines([text])
            else:
                self._pending = text
            return
        end = text.rfind("\n")
        self._pending = text[end + 1 :]
        block = text[:end]
        if "::" not in block and self._stop_token is None:
            # Fast path: no command can be in this block. Mask line by line, as `_lines`
            # does: masking the block whole would fold a multi-line secret into one `***`.
            lines = block.split("\n")
            if "\r" in block:
                lines = [line.rstrip("\r") for line in lines]
            self.emit(self.masker.mask_lines(block, lines) if self.masker else lines)
            return
        self._lines(block.split("\n"))

    def close(self) -> None:
        rest = self._pending + self._decoder.decode(b"", final=True)
        self._pending = ""
        if rest:
            self._lines([rest])

    def _lines(self, lines: list[str]) -> None:
        out: list[str] = []
        for raw in lines:
            line = raw.rstrip("\r")
            stripped = line.lstrip()
            shown: list[str] = [line]
            if stripped.startswith("::"):
                text = self._command(stripped)
                if text is None:
                    continue
                # Not a command (`  ::std::cout`, IPv6 `::1`): keep the line as printed.
                # An unescaped `%0A` makes several log lines; each is masked on its own.
                shown = [line] if text == stripped else text.split("\n")
            out.extend([self.masker.mask(part) for part in shown] if self.masker else shown)
        if out:
            self.emit(out)

    def _masked(self, text: str | None) -> str | None:
        return self.masker.mask(text) if text is not None and self.masker else text

    def _command(self, line: str) -> str | None:
        """Handle one `::cmd props::data` line; returns the text to log, or None."""
        end = line.find("::", 2)
        if end < 0:
            return line
        head, data = line[2:end], line[end + 2 :]
        name, _, props_text = head.partition(" ")
        if self._stop_token is not None:
            if name == self._stop_token:
                self._stop_token = None
                return None
            return line
        props: dict[str, str] = {}
        for item in props_text.split(","):
            key, eq, value = item.partition("=")
            if eq:
                props[key.strip()] = _unescape_property(value)
        if name == "add-mask":
            self.masker.add(_unescape_data(data).strip())
            return None
        if name == "stop-commands":
            self._stop_token = data.strip() or None
            return None
        if name in ("group", "endgroup"):
            return f"▶ {_unescape_data(data)}" if name == "group" else None
        if name in ("error", "warning", "notice"):
            message = _unescape_data(data)
            self.annotate(
                Annotation(
                    level=name,
                    message=self.masker.mask(message),
                    file=self._masked(props.get("file")),
                    line=_int(props.get("line")),
                    col=_int(props.get("col")),
                    title=self._masked(props.get("title")),
                )
            )
            where = ""
            if props.get("file"):
                where = f" ({props['file']}"
                if props.get("line"):
                    where += f":{props['line']}"
                where += ")"
            return f"{name.capitalize()}{where}: {message}"
        if name == "debug":
            return f"Debug: {_unescape_data(data)}" if self.debug else None
        if name in REFUSED:
            return (
                f"Warning: the `{name}` command is disabled (it lets printed output change "
                f"the job); use the GITHUB_OUTPUT / GITHUB_ENV / GITHUB_PATH / GITHUB_STATE files"
            )
        if name == "echo":
            return None
        return line
