"""A step's output, line by line: workflow commands, then masking, then the log.

Output arrives as chunks that may split lines (and multi-byte characters) anywhere; the
processor re-assembles whole lines first, so a secret written in two pieces is still masked.
Lines are assembled as bytes (a newline never falls inside a UTF-8 character) and each
chunk's block of whole lines is searched for secrets once, before it is decoded.
Workflow commands (`::add-mask::`, `::group::`, `::error file=..,line=..::`, ...) are read
from the assembled lines. `::set-output`, `::set-env`, `::add-path` and `::save-state` are
refused with a warning: they let anything a step prints change the job (CVE-2020-15228).
"""

from __future__ import annotations

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


def _char_boundary(data: bytes) -> int:
    """The length of `data` without a UTF-8 character cut at its end."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 == 0x80:  # a continuation byte: look further back
            continue
        if byte >= 0xC0:  # the lead byte of a character of 2, 3 or 4 bytes
            size = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return len(data) - back if size > back else len(data)
        return len(data)
    return len(data)


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
        self._pending = b""  # the start of a line whose end has not arrived yet
        self._stop_token: str | None = None

    def feed(self, data: bytes) -> None:
        if self._pending:
            data = self._pending + data
        end = data.rfind(b"\n")
        if end < 0:
            if len(data) > MAX_PENDING:
                cut = _char_boundary(data)
                self._pending = data[cut:]
                self._lines([data[:cut].decode("utf-8", errors="replace")])
            else:
                self._pending = data
            return
        self._pending = data[end + 1 :]
        block = data[:end]
        if b"::" not in block and self._stop_token is None:
            # Fast path: no command can be in this block. Masked line by line, as `_lines`
            # does (masking the block whole would fold a multi-line secret into one `***`),
            # after one search of the raw block.
            self.emit(self.masker.lines_of(block))
            return
        self._lines(block.decode("utf-8", errors="replace").split("\n"))

    def close(self) -> None:
        rest = self._pending.decode("utf-8", errors="replace")
        self._pending = b""
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
