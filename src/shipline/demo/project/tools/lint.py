"""A small linter for this repository (standard library only, so it runs anywhere):
Python files must parse and import nothing they do not use, lines stay under 100
characters without trailing whitespace or tabs, and shell scripts must parse (`sh -n`).

    python3 tools/lint.py        # exit 1 and one line per problem when something is wrong
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_LINE = 100


def unused_imports(tree: ast.Module) -> list[tuple[int, str]]:
    imported: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                imported[(alias.asname or alias.name).split(".")[0]] = node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            for alias in node.names:
                imported[alias.asname or alias.name] = node.lineno
    used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    return sorted((line, name) for name, line in imported.items() if name not in used)


def check_python(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    name = path.relative_to(ROOT)
    try:
        tree = ast.parse(text, filename=str(name))
    except SyntaxError as exc:
        return [f"{name}:{exc.lineno}: syntax error: {exc.msg}"]
    problems = [
        f"{name}:{line}: '{what}' imported but unused" for line, what in unused_imports(tree)
    ]
    for number, line in enumerate(text.splitlines(), start=1):
        if len(line) > MAX_LINE:
            problems.append(f"{name}:{number}: line longer than {MAX_LINE} characters")
        if line != line.rstrip() or "\t" in line:
            problems.append(f"{name}:{number}: trailing whitespace or a tab")
    return problems


def check_shell(path: Path) -> list[str]:
    result = subprocess.run(["sh", "-n", str(path)], capture_output=True, text=True, check=False)
    return [f"{path.relative_to(ROOT)}: {result.stderr.strip()}"] if result.returncode else []


def main() -> int:
    problems: list[str] = []
    python = sorted(p for p in ROOT.rglob("*.py") if "dist" not in p.parts)
    shell = sorted(ROOT.glob("scripts/*.sh"))
    for path in python:
        problems += check_python(path)
    for path in shell:
        problems += check_shell(path)
    for problem in problems:
        print(problem)
    print(f"{len(python)} Python file(s), {len(shell)} shell script(s): {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
