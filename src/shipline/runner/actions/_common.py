"""Helpers the built-in actions share: reading `with:` inputs and keeping paths contained."""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path

from shipline.runner.ports import ActionCall, ActionFailed


def text(call: ActionCall, name: str, default: str = "") -> str:
    """A single-line input, stripped; `default` when absent or empty (as on GitHub)."""
    return call.inputs.get(name, "").strip() or default


def lines(call: ActionCall, name: str) -> list[str]:
    """A multi-line input: one entry per non-empty line, stripped."""
    return [line.strip() for line in call.inputs.get(name, "").splitlines() if line.strip()]


def flag(call: ActionCall, name: str, default: bool) -> bool:
    """A boolean input; like the actions toolkit, only true/false in any case are valid."""
    value = text(call, name).lower()
    if not value:
        return default
    if value not in ("true", "false"):
        raise ActionFailed(f"input {name!r} must be true or false, got {value!r}")
    return value == "true"


def home(call: ActionCall) -> Path:
    """The job's home directory (what `~` means in inputs)."""
    return Path(call.env.get("HOME") or Path.home())


def expand(call: ActionCall, raw: str, base: Path) -> Path:
    """An input path: `~` is the job's home, a relative path is relative to `base`."""
    if raw == "~" or raw.startswith("~/"):
        return home(call) / raw[2:]
    return base / raw


def is_inside(path: Path, root: Path) -> bool:
    """Whether `path`, with every symlink resolved, is `root` or below it."""
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root))


_MAGIC = frozenset("*?[")


def has_magic(pattern: str) -> bool:
    return any(c in _MAGIC for c in pattern)


def search_root(pattern: str) -> str:
    """The literal directory part of a glob: `dist/**/*.whl` -> `dist`; no glob: itself."""
    parts = pattern.split("/")
    for i, part in enumerate(parts):
        if has_magic(part):
            return "/".join(parts[:i]) or "/"
    return pattern


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A regex matching what the glob `pattern` matches, and everything below it.

    `*` and `?` stay within one path component, `**` spans components, `[...]` is a set
    (`[!...]` negated), as in @actions/glob.
    """
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        c = pattern[i]
        end = pattern.find("]", i + 2) if c == "[" else -1
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif end > 0:
            body = pattern[i + 1 : end].replace("\\", "\\\\")
            out.append("[^" + body[1:] + "]" if body.startswith("!") else "[" + body + "]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out).rstrip("/") + "(?:/.*)?")


def lexical(path: Path) -> Path:
    """`path` made absolute with `.` and `..` folded, without resolving symlinks (the
    path a user wrote, so containment can be checked on it and on its real path)."""
    return Path(os.path.normpath(Path.cwd() / path))


def glob_paths(pattern: Path) -> list[Path]:
    """Paths matching an absolute glob (`**` recursive), hidden names included."""
    if not has_magic(str(pattern)):
        return [pattern] if pattern.is_symlink() or pattern.exists() else []
    # Path.glob takes only relative patterns; glob.glob walks from the literal prefix.
    hits = glob.glob(str(pattern), recursive=True, include_hidden=True)  # noqa: PTH207
    return [Path(h) for h in sorted(hits)]
