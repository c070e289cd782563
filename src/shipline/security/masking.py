"""Masking secret values in everything a run prints.

Masking is defence in depth, not a boundary: it hides the value and its common encodings
(base64 at the three byte alignments, URL and JSON/XML escaping, shell quoting, each line
of a multi-line value) from logs, but a step that wants to leak a secret can always
transform it further (hex, reversed, double base64, a piece at a time).
"""

from __future__ import annotations

import base64
import html
import json
import re
from bisect import bisect_right
from itertools import accumulate
from urllib.parse import quote, quote_plus

from ahocorasick_rs import AhoCorasick, BytesAhoCorasick, Implementation, MatchKind

MASK = "***"
MAX_DFA_PATTERN_CHARS = 64 * 1024
# Forms per detecting automaton (see `Masker._build`), and how many such automata at most.
DETECT_GROUP = 64
MAX_DETECT_GROUPS = 8
# Up to this many forms (a secret or two) are looked for one by one, without automata.
FEW_FORMS = 24
# Shorter values would turn ordinary words of the log into `***`.
MIN_LENGTH = 3


def _base64_forms(value: bytes) -> set[str]:
    forms = set()
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + value).decode().rstrip("=")
        start = (shift * 4 + 2) // 3
        end = len(encoded)
        if (shift + len(value)) % 3:
            end -= 1  # the last character also depends on whatever follows the value
        form = encoded[start:end]
        if len(form) >= 6:
            forms.add(form)
    return forms


# What bash's `printf %q` leaves unescaped in a word.
_SHELL_WORD_SAFE = frozenset("+=:@%/._-~#")
_PERCENT = re.compile(r"%[0-9A-F]{2}")


def _shell_forms(value: str) -> set[str]:
    """The value as shells and shell-quoting libraries write it in a command line."""
    forms = set()
    if "'" in value:
        forms.add(value.replace("'", "'\\''"))  # POSIX sh inside '...'
        forms.add(value.replace("'", "'\"'\"'"))  # Python's shlex.quote
    # Inside "...": backslash before \ " $ `
    forms.add(re.sub(r'([\\"$`])', r"\\\1", value))
    if value.isprintable():
        # bash `printf %q`: a backslash before every character that is not a plain word's.
        forms.add("".join(c if c.isalnum() or c in _SHELL_WORD_SAFE else "\\" + c for c in value))
    return forms


def _url_forms(value: str) -> set[str]:
    strict = quote(value, safe="")
    return {
        strict,
        _PERCENT.sub(lambda m: m.group(0).lower(), strict),  # lower-case hex escapes
        quote(value),  # `/` left alone (urllib's default)
        quote_plus(value),  # form encoding: space as `+`
    }


def encoded_forms(value: str) -> set[str]:
    """The value and the encodings of it that masking catches."""
    forms: set[str] = set()
    parts = [value]
    if "\n" in value or "\r" in value:
        parts += [line for line in re.split(r"\r?\n", value) if line.strip()]
    for part in parts:
        stripped = part.strip()
        if len(stripped) < MIN_LENGTH:
            continue
        forms.add(stripped)
        forms |= _base64_forms(stripped.encode())
        forms |= _url_forms(stripped)
        forms |= _shell_forms(stripped)
        forms.add(json.dumps(stripped)[1:-1])
        # Most JSON writers (JavaScript's JSON.stringify, jq) leave non-ASCII unescaped.
        forms.add(json.dumps(stripped, ensure_ascii=False)[1:-1])
        forms.add(html.escape(stripped))
        # XML writers spell the apostrophe `&apos;`, html.escape `&#x27;`.
        forms.add(html.escape(stripped).replace("&#x27;", "&apos;"))
    return {f for f in forms if len(f) >= MIN_LENGTH}


class Masker:
    """Replaces every registered secret (and its encodings) by `***`.

    All forms are searched at once with an Aho-Corasick automaton (leftmost-longest, so a
    longer form wins over a shorter one starting at the same place): the cost per
    character does not grow with the number of secrets, as a regex alternation's does.
    """

    def __init__(self, values: list[str] | None = None) -> None:
        self._forms: set[str] = set()
        # The forms sorted, and as UTF-8: kept current by `_register`.
        self._sorted: list[str] = []
        self._encoded: list[bytes] = []
        self._automaton: AhoCorasick | None = None
        # The same forms as UTF-8 in groups of at most `DETECT_GROUP`, to tell whether a
        # block of raw output holds any form at all (`may_match`, `lines_of`).
        self._detectors: list[BytesAhoCorasick] = []
        self._built = 0  # how many forms the automata were built with
        for v in values or []:
            self._register(v)

    def add(self, value: str) -> bool:
        """Register a value; False when it is too short to be masked safely."""
        return self._register(value)

    def _register(self, value: str) -> bool:
        if len(value.strip()) < MIN_LENGTH:
            return False
        forms = encoded_forms(value)
        if not forms <= self._forms:
            self._forms |= forms
            self._sorted = sorted(self._forms)
            self._encoded = [f.encode("utf-8", errors="surrogatepass") for f in self._sorted]
        return True

    def _few(self) -> bool:
        """Whether the forms are few enough to look for one by one (`in`), which costs
        less than building automata: a job's masker usually holds only its own token,
        which its output usually never shows, so the automata are never needed."""
        return len(self._sorted) <= FEW_FORMS

    def _build(self) -> AhoCorasick | None:
        """The automaton of the forms registered so far (built when first needed, and
        again after `add` brought new forms)."""
        forms = self._sorted
        if not forms or (self._automaton is not None and len(forms) == self._built):
            return self._automaton
        self._built = len(forms)
        # A DFA searches fastest but grows with the patterns: large values (long PEM
        # keys, many add-masks) get the compact NFA instead.
        small = sum(len(f) for f in forms) <= MAX_DFA_PATTERN_CHARS
        implementation = Implementation.DFA if small else Implementation.ContiguousNFA
        self._automaton = AhoCorasick(
            forms, matchkind=MatchKind.LeftmostLongest, implementation=implementation
        )
        encoded = self._encoded
        # Up to 64 patterns the automaton is preceded by a SIMD prefilter (Teddy) that
        # skips text no pattern can start in: several such passes cost less than one
        # pass of a DFA over all forms (20 secrets: 140 forms, 3 passes ~7x faster).
        groups = -(-len(encoded) // DETECT_GROUP)
        if groups > MAX_DETECT_GROUPS:
            groups = 1
        size = -(-len(encoded) // groups)
        self._detectors = [
            BytesAhoCorasick(
                encoded[i : i + size],
                matchkind=MatchKind.LeftmostFirst,
                implementation=implementation,
            )
            for i in range(0, len(encoded), size)
        ]
        return self._automaton

    def may_match(self, data: bytes) -> bool:
        """Whether a form may be in `data`, UTF-8 output; False means none is."""
        if self._few():
            return any(form in data for form in self._encoded)
        self._build()
        return any(d.find_matches_as_indexes(data) for d in self._detectors)

    def __bool__(self) -> bool:
        return bool(self._sorted)

    def _search(self, text: str) -> list[tuple[int, int, int]]:
        """The forms found in `text` (leftmost-longest): (form, start, end)."""
        if self._few() and not any(form in text for form in self._sorted):
            return []
        automaton = self._build()
        return [] if automaton is None else automaton.find_matches_as_indexes(text)

    def mask(self, text: str) -> str:
        found = self._search(text)
        if not found:
            return text
        parts: list[str] = []
        at = 0
        for _, start, end in found:
            parts.append(text[at:start])
            parts.append(MASK)
            at = end
        parts.append(text[at:])
        return "".join(parts)

    def mask_lines(self, block: str, lines: list[str]) -> list[str]:
        """`lines` of `block` (its `split("\\n")`, each maybe without a trailing `\\r`),
        each masked on its own as `mask` would: the block is searched once, and only the
        lines a form touches are masked again line by line. Far faster than a search per
        line when, as usual, nothing matches."""
        found = self._search(block)
        if not found:
            return lines
        # A form a search of the block skipped overlaps one it found, so lies on a line
        # the found one touches: masking the touched lines one by one finds it.
        starts = list(accumulate((len(line) + 1 for line in block.split("\n")), initial=0))
        touched: set[int] = set()
        for _, start, end in found:
            first = bisect_right(starts, start) - 1
            last = bisect_right(starts, max(start, end - 1)) - 1
            touched.update(range(first, last + 1))
        return [self.mask(line) if i in touched else line for i, line in enumerate(lines)]

    def lines_of(self, block: bytes) -> list[str]:
        """The masked lines of `block`: whole lines of UTF-8 output joined by `\\n`
        (without the last one's), each without a trailing `\\r`, decoded with
        replacement characters; the same lines as `mask_lines` of the decoded block.

        The raw bytes are searched first: no decoded line can hold a form whose UTF-8 is
        not in the bytes, so the usual answer — nothing matches — costs one pass of the
        byte automaton and no work per line. (Invalid UTF-8 decodes to U+FFFD, which the
        bytes do not contain: such a block takes the search of the decoded text.)
        """
        text = block.decode("utf-8", errors="replace")
        lines = text.split("\n")
        if "\r" in text:
            lines = [line.rstrip("\r") for line in lines]
        if not self._sorted:
            return lines
        if "\ufffd" not in text and not self.may_match(block):
            return lines
        return self.mask_lines(text, lines)
