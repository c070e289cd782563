"""A log line with terminal escape sequences, turned into inert text segments with classes.

Only SGR colours and styles (`ESC [ ... m`) are kept, as CSS classes from a fixed table
(never from the input). Everything else a terminal would obey is dropped: cursor movement
and erasing (other CSI sequences), OSC strings such as OSC 8 hyperlinks and window titles
(their visible text stays, the link does not), DCS/PM/APC strings, other escapes and
control characters. A carriage return keeps what was written last, as a terminal shows a
progress bar. Unicode bidirectional overrides (the "trojan source" trick) are shown as
visible `<U+202E>` markers instead of reordering the text. Each line starts with no style.

The segments' text is still text: templates escape it, `live.js` sets it as `textContent`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Segment", "plain", "render_line"]

_TOKEN = re.compile(
    r"(?P<csi>(?:\x1b\[|\x9b)(?P<params>[\x30-\x3f]*)[\x20-\x2f]*(?P<final>[\x40-\x7e]))"
    r"|(?P<str>(?:\x1b[\]P^_X]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?)"
    r"|(?P<esc>\x1b[\x20-\x2f]*[\x30-\x7e]?)"
    r"|(?P<bidi>[\u202a-\u202e\u2066-\u2069])"
    r"|(?P<ctl>[\x00-\x08\x0a-\x1f\x7f-\x9f])"
)
# Anything that needs the tokenizer: escapes, controls, bidi overrides (a plain line does not).
_SPECIAL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_SGR_PARAMS = re.compile(r"[0-9;:]*")
_SEPARATOR = re.compile(r"[;:]")
_NAMES = ("black", "red", "green", "yellow", "blue", "magenta", "cyan", "white")
# xterm's default palette, to map 256-colour and true-colour codes to the nearest of 16.
_PALETTE = (
    (0, 0, 0), (205, 0, 0), (0, 205, 0), (205, 205, 0),
    (0, 0, 238), (205, 0, 205), (0, 205, 205), (229, 229, 229),
    (127, 127, 127), (255, 0, 0), (0, 255, 0), (255, 255, 0),
    (92, 92, 255), (255, 0, 255), (0, 255, 255), (255, 255, 255),
)  # fmt: skip
_STYLES = {1: "bold", 2: "dim", 3: "italic", 4: "underline", 9: "strike"}
_STYLE_OFF = {
    21: ("bold",),
    22: ("bold", "dim"),
    23: ("italic",),
    24: ("underline",),
    29: ("strike",),
}


@dataclass(frozen=True, slots=True)
class Segment:
    """A run of text shown with the same CSS classes (`ansi-fg-red`, `ansi-bold`, ...)."""

    text: str
    classes: tuple[str, ...] = ()

    @property
    def css(self) -> str:
        return " ".join(self.classes)


def _colour_name(index: int) -> str:
    return _NAMES[index] if index < 8 else f"bright-{_NAMES[index - 8]}"


def _nearest(rgb: tuple[int, int, int]) -> str:
    best = min(
        range(16), key=lambda i: sum((a - b) ** 2 for a, b in zip(_PALETTE[i], rgb, strict=True))
    )
    return _colour_name(best)


def _from_256(n: int) -> str | None:
    if not 0 <= n <= 255:
        return None
    if n < 16:
        return _colour_name(n)
    if n < 232:
        n -= 16
        steps = (0, 95, 135, 175, 215, 255)
        return _nearest((steps[n // 36], steps[n // 6 % 6], steps[n % 6]))
    grey = 8 + (n - 232) * 10
    return _nearest((grey, grey, grey))


class _Style:
    """The SGR state while a line is read."""

    def __init__(self) -> None:
        self.fg: str | None = None
        self.bg: str | None = None
        self.flags: set[str] = set()

    def reset(self) -> None:
        self.fg = None
        self.bg = None
        self.flags = set()

    def classes(self) -> tuple[str, ...]:
        found = [f"ansi-{flag}" for flag in sorted(self.flags)]
        if self.fg is not None:
            found.append(f"ansi-fg-{self.fg}")
        if self.bg is not None:
            found.append(f"ansi-bg-{self.bg}")
        return tuple(found)

    def apply(self, params: str) -> None:
        if not _SGR_PARAMS.fullmatch(params):
            return  # a private sequence (`ESC [ ? ...`): not SGR
        codes = [int(p) if p else 0 for p in _SEPARATOR.split(params)] if params else [0]
        i = 0
        while i < len(codes):
            code = codes[i]
            i += 1
            if code == 0:
                self.reset()
            elif code in _STYLES:
                self.flags.add(_STYLES[code])
            elif code in _STYLE_OFF:
                self.flags.difference_update(_STYLE_OFF[code])
            elif 30 <= code <= 37 or 90 <= code <= 97:
                self.fg = _colour_name(code - 30 if code < 90 else code - 90 + 8)
            elif 40 <= code <= 47 or 100 <= code <= 107:
                self.bg = _colour_name(code - 40 if code < 100 else code - 100 + 8)
            elif code == 39:
                self.fg = None
            elif code == 49:
                self.bg = None
            elif code in (38, 48):
                colour, i = self._extended(codes, i)
                if code == 38:
                    self.fg = colour
                else:
                    self.bg = colour

    @staticmethod
    def _extended(codes: list[int], i: int) -> tuple[str | None, int]:
        """`38;5;n` or `38;2;r;g;b` (and 48): the nearest basic colour, and where to go on."""
        if i < len(codes) and codes[i] == 5 and i + 1 < len(codes):
            return _from_256(codes[i + 1]), i + 2
        if i < len(codes) and codes[i] == 2 and i + 3 < len(codes):
            r, g, b = (min(255, c) for c in codes[i + 1 : i + 4])
            return _nearest((r, g, b)), i + 4
        return None, len(codes)


def _last_written(line: str) -> str:
    """What a terminal shows of a line redrawn with carriage returns."""
    if "\r" not in line:
        return line
    parts = [p for p in line.split("\r") if p]
    return parts[-1] if parts else ""


def render_line(line: str) -> tuple[Segment, ...]:
    """The line's visible text as segments; escape sequences never reach the output."""
    if not _SPECIAL.search(line):
        return (Segment(line),) if line else ()
    style = _Style()
    segments: list[Segment] = []

    def add(text: str, classes: tuple[str, ...]) -> None:
        if not text:
            return
        if segments and segments[-1].classes == classes:
            segments[-1] = Segment(segments[-1].text + text, classes)
        else:
            segments.append(Segment(text, classes))

    text = _last_written(line.rstrip("\n"))
    pos = 0
    for match in _TOKEN.finditer(text):
        add(text[pos : match.start()], style.classes())
        pos = match.end()
        if match.group("csi") is not None and match.group("final") == "m":
            style.apply(match.group("params"))
        elif match.group("bidi") is not None:
            add(f"<U+{ord(match.group('bidi')):04X}>", ("ansi-control",))
    add(text[pos:], style.classes())
    return tuple(segments)


def _visible(match: re.Match[str]) -> str:
    bidi = match.group("bidi")
    return f"<U+{ord(bidi):04X}>" if bidi is not None else ""


def plain(line: str) -> str:
    """The line's visible text without any styling (for search and downloads): the text of
    `render_line`'s segments, without building them."""
    if not _SPECIAL.search(line):
        return line
    return _TOKEN.sub(_visible, _last_written(line.rstrip("\n")))
