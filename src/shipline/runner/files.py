"""The files a step writes to talk to the runner: GITHUB_OUTPUT, GITHUB_ENV, GITHUB_PATH.

`name=value` lines, or multi-line values as `name<<DELIMITER` ... `DELIMITER`, exactly as
GitHub reads them. These files are the only way a step changes the job (no stdout commands).
"""

from __future__ import annotations

from pathlib import Path


class CommandFileError(ValueError):
    """A malformed line in a command file; the message says which file and line."""


def parse_key_values(text: str, what: str) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i].rstrip("\r")
        i += 1
        if not line.strip():
            continue
        eq = line.find("=")
        heredoc = line.find("<<")
        if heredoc > 0 and (eq < 0 or heredoc < eq):
            name, delimiter = line[:heredoc], line[heredoc + 2 :]
            if not name or not delimiter:
                raise CommandFileError(f"{what}: line {i}: invalid heredoc line {line!r}")
            value: list[str] = []
            while True:
                if i >= len(lines):
                    raise CommandFileError(
                        f"{what}: matching delimiter not found '{delimiter}' for {name}"
                    )
                current = lines[i].rstrip("\r")
                i += 1
                if current == delimiter:
                    break
                value.append(current)
            pairs.append((name, "\n".join(value)))
        elif eq > 0:
            pairs.append((line[:eq], line[eq + 1 :]))
        else:
            raise CommandFileError(
                f"{what}: line {i}: expected NAME=value or NAME<<EOF, got {line!r}"
            )
    return pairs


def read_key_values(path: Path, what: str) -> list[tuple[str, str]]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    return parse_key_values(text, what)


def read_paths(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    return [line.strip() for line in text.splitlines() if line.strip()]
