"""Filter patterns of `on.<event>`: `branches`, `tags`, `paths` and their `-ignore` forms.

The syntax is GitHub's "filter pattern cheat sheet", which is a glob dialect of its own, not
fnmatch and not a regular expression:

- `*` matches zero or more characters except `/`; `**` matches zero or more of any
  character, and `**/` also matches zero directories (`docs/**/*.md` matches `docs/a.md`);
- `?` makes the preceding character (or `[]` set) optional, `+` repeats it one or more times;
- `[0-9a-z]` matches one character of a set or range;
- `\\` escapes the special characters `[ ? + * \\ !`; before any other character it is a
  literal backslash (file names may contain one);
- a leading `!` negates the pattern: in a list, the last matching pattern decides.

`validate_pattern` reports syntax errors (the rules actionlint checks, plus the git ref-name
rules it leaves out); `compile_pattern` never raises, so a workflow with a broken pattern
still gets a defined, documented behaviour at trigger time.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "PatternError",
    "compile_pattern",
    "match_patterns",
    "paths_allowed",
    "ref_allowed",
    "validate_pattern",
]

_ESCAPABLE = frozenset("[?+*\\!")
# `git check-ref-format`: characters a ref name can never contain. `[ ? *` are also
# forbidden but unescaped they are glob syntax, so they are checked only when escaped.
_BAD_REF_CHARS = frozenset(" \t~^:\\")
_NEVER = "(?!)"


@dataclass(frozen=True, slots=True)
class PatternError:
    """One syntax error in a filter pattern.

    `offset` counts from 0 inside the pattern as written (a leading `!` included), so a
    linter adds it to the column where the scalar's text starts.
    """

    message: str
    offset: int


def validate_pattern(pattern: str, *, kind: Literal["ref", "path"]) -> list[PatternError]:
    """Syntax errors of one filter pattern; an empty list when it is valid.

    `kind="ref"` is for `branches`/`tags` (and their `-ignore` forms): besides the glob
    syntax, the literal parts must be possible in a git ref name (no spaces, `~ ^ : \\`,
    no `..` or `@{`, not starting with `/`, not ending with `/` or `.`), because a pattern
    that needs them can never match, which is usually a regular expression written by
    mistake. `kind="path"` is for `paths`: no leading or trailing whitespace and no `.`
    or `..` at the start, because GitHub compares against paths relative to the
    repository root and never normalises them.
    """
    if pattern == "":
        return [PatternError("filter pattern cannot be empty", 0)]
    start = 1 if pattern.startswith("!") else 0
    body = pattern[start:]
    if start and body == "":
        return [PatternError("'!' must be followed by a pattern to negate", 0)]
    if kind == "path":
        errors = _path_errors(pattern, body)
        if errors:
            # One error per root cause: the glob checks below would only repeat it.
            return errors
    _, errors = _translate(pattern, start, is_ref=kind == "ref")
    if kind == "ref":
        errors.extend(_ref_shape_errors(pattern, start))
        errors.sort(key=lambda e: e.offset)
    return errors


@functools.lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    """The regular expression that matches exactly what `pattern` matches, anchored.

    `pattern` is one pattern without its list-level `!` (see `match_patterns`); an `!`
    here is literal. Errors that `validate_pattern` reports degrade instead of raising:
    an unclosed `[` and a misplaced `?` or `+` are literal characters, an empty set or a
    reversed range matches nothing.
    """
    source, _ = _translate(pattern, 0, is_ref=False)
    return re.compile(source, re.DOTALL)


def match_patterns(name: str, patterns: Sequence[str]) -> bool:
    """Whether `name` is selected by an ordered list of patterns.

    Patterns are evaluated in order and the last one that matches decides: a positive
    pattern includes, an `!pattern` excludes. Nothing matching means not selected, so a
    list of only negative patterns selects nothing (GitHub requires a positive one).
    """
    selected = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern[1:] if negated else pattern
        if compile_pattern(body).fullmatch(name):
            selected = not negated
    return selected


def ref_allowed(name: str, include: Sequence[str] | None, ignore: Sequence[str] | None) -> bool:
    """Whether a branch or tag filter lets an event for ref `name` through.

    `name` is the short name (`main`, `v1.2.0`, not `refs/heads/main`). With neither
    filter every ref passes; `include` is `branches`/`tags`, `ignore` their `-ignore`
    form. GitHub rejects both forms on one event; if both are given anyway, both must
    agree. Which filter pair applies (branches for a branch push, tags for a tag push, and
    "only one kind defined means the other kind never runs") is the caller's decision.
    """
    if include is not None and not match_patterns(name, include):
        return False
    return ignore is None or not match_patterns(name, ignore)


def paths_allowed(
    changed: Sequence[str] | None, include: Sequence[str] | None, ignore: Sequence[str] | None
) -> bool:
    """Whether a `paths`/`paths-ignore` filter lets an event with these changed files run.

    As GitHub documents it:

    - no filter: runs;
    - `changed is None` means the list is unknown (GitHub: more than 1,000 commits pushed,
      or the diff timed out; also tag pushes, where path filters are not evaluated): runs;
    - `paths`: runs if at least one changed path is selected by `match_patterns`;
    - `paths-ignore`: runs if at least one changed path is not selected by it, so it is
      skipped only when every changed path is ignored;
    - an empty `changed` list with a filter: does not run ("if there are no files
      changed, the workflow will not run"), for `paths` and `paths-ignore` alike.

    GitHub only looks at the first 300 changed files; truncating is the caller's job.
    Both filters at once are rejected by GitHub; given anyway, one path must pass both.
    """
    if include is None and ignore is None:
        return True
    if changed is None:
        return True
    return any(
        (include is None or match_patterns(path, include))
        and (ignore is None or not match_patterns(path, ignore))
        for path in changed
    )


def _path_errors(pattern: str, body: str) -> list[PatternError]:
    errors = []
    if pattern != pattern.strip():
        errors.append(
            PatternError("leading and trailing whitespace is not allowed in a path pattern", 0)
        )
    stripped = body.strip()
    if stripped in {".", ".."} or stripped.startswith(("./", "../")):
        errors.append(
            PatternError(
                "'.' and '..' are not allowed in a path pattern: paths are matched relative "
                "to the repository root, without a leading './'",
                0,
            )
        )
    return errors


def _ref_shape_errors(pattern: str, start: int) -> list[PatternError]:
    """Git ref-name rules about the whole name rather than single characters."""
    errors = []
    if pattern[start] == "/":
        errors.append(_ref_error("/", start, "a ref name cannot start with '/'"))
    last = len(pattern) - 1
    # A lone "/" was reported as a start already.
    if pattern[last] == "." or (pattern[last] == "/" and last > start):
        errors.append(_ref_error(pattern[last], last, "a ref name cannot end with '/' or '.'"))
    for seq in ("..", "@{"):
        at = pattern.find(seq, start)
        while at != -1:
            errors.append(_ref_error(pattern[at + 1], at + 1, f"a ref name cannot contain {seq!r}"))
            at = pattern.find(seq, at + 2)
    return errors


def _ref_error(char: str, offset: int, why: str) -> PatternError:
    shown = f"'{char}'" if char.isprintable() else repr(char)
    return PatternError(
        f"character {shown} is invalid in branch and tag names: {why} (see "
        "`git check-ref-format`); note that regular expressions are not supported",
        offset,
    )


def _translate(pattern: str, start: int, *, is_ref: bool) -> tuple[str, list[PatternError]]:
    """Regex source for `pattern[start:]` and the syntax errors met on the way.

    One scanner serves both validation and compilation so that what lint accepts and what
    the trigger matches can never drift apart.
    """
    out: list[str] = []
    errors: list[PatternError] = []
    # Whether the last emitted piece is one atom that `?` or `+` may apply to.
    atom = False
    i, n = start, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n and pattern[i + 1] in _ESCAPABLE:
            i += 1
            escaped = pattern[i]
            if is_ref and escaped in "[?*\\":
                errors.append(_ref_error(escaped, i, "a ref name cannot contain it"))
            out.append(re.escape(escaped))
            atom = True
        elif c == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                # `**/` may match zero directories only where it starts a path segment:
                # `a/**/b` matches `a/b`, but `a**/b` must not match `ab`.
                segment_start = i == start or pattern[i - 1] == "/"
                while i + 1 < n and pattern[i + 1] == "*":
                    i += 1
                if segment_start and i + 1 < n and pattern[i + 1] == "/":
                    i += 1
                    out.append("(?:.*/)?")
                else:
                    out.append(".*")
            else:
                out.append("[^/]*")
            atom = False
        elif c in "?+":
            if atom:
                out.append(c)
            else:
                errors.append(
                    PatternError(
                        f"{c!r} applies to the preceding character, which must not be a "
                        "special character or the start of the pattern (escape it as "
                        f"'\\{c}' to match it literally)",
                        i,
                    )
                )
                out.append(re.escape(c))
            atom = False
        elif c == "[":
            end, piece, set_errors = _translate_set(pattern, i)
            errors.extend(set_errors)
            if end is None:
                # Unclosed: the rest is literal text; scanning on would only add noise.
                out.append(re.escape(pattern[i:]))
                break
            out.append(piece)
            i = end
            atom = True
        else:
            if c in "\r\n":
                errors.append(PatternError("a pattern cannot contain a line break", i))
            elif is_ref and (c in _BAD_REF_CHARS or not c.isprintable()):
                why = (
                    "only [ ? + * \\ ! can be escaped with '\\'"
                    if c == "\\"
                    else "a ref name cannot contain spaces, control characters, ~ ^ : or \\"
                )
                errors.append(_ref_error(c, i, why))
            out.append(re.escape(c))
            atom = True
        i += 1
    return "".join(out), errors


def _translate_set(pattern: str, i: int) -> tuple[int | None, str, list[PatternError]]:
    """Translate the `[...]` starting at `pattern[i]`.

    Returns the offset of the closing `]` (None when there is none), the regex piece and
    the errors. Inside a set every character is literal; `a-z` is a range.
    """
    errors: list[PatternError] = []
    n = len(pattern)
    if i + 1 < n and pattern[i + 1] == "]":
        errors.append(PatternError("a character set [] cannot be empty", i + 1))
        return i + 1, _NEVER, errors
    members: list[str] = []
    count = 0
    j = i + 1
    while j < n and pattern[j] != "]":
        c = pattern[j]
        if j + 1 < n and pattern[j + 1] == "-":
            count += 2
            if j + 2 >= n:
                j += 2
                break
            last = pattern[j + 2]
            if last == "]":
                errors.append(PatternError(f"the range '{c}-' in [] has no end", j + 2))
                members += [re.escape(c), re.escape("-")]
                j += 2
                break
            if c > last:
                errors.append(
                    PatternError(
                        f"the range '{c}-{last}' in [] is reversed: {c!r} (U+{ord(c):04X}) "
                        f"comes after {last!r} (U+{ord(last):04X})",
                        j + 2,
                    )
                )
            else:
                members.append(f"{re.escape(c)}-{re.escape(last)}")
            j += 3
        else:
            count += 1
            members.append(re.escape(c))
            j += 1
    if j >= n:
        errors.append(PatternError(f"missing ']' to close the '[' at offset {i}", n - 1))
        return None, "", errors
    if count == 1:
        errors.append(
            PatternError(
                f"a character set with one character is useless: write {pattern[i + 1]!r} "
                f"instead of {pattern[i : j + 1]!r}",
                j,
            )
        )
    return j, f"[{''.join(members)}]" if members else _NEVER, errors
